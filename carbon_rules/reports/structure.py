"""The inventory report: its structure, how it is built, and the bytes that are hashed.

The sections follow GB/T 32151.1-2015 (温室气体排放核算与报告要求 第1部分: reporting
entity, boundary, sources, activity data and their sources, factors and their sources,
emissions, data quality) and ISO 14064-1:2018 clause 9 (organisational and operational
boundaries, base period, scopes/categories, methodology, uncertainty/quality), with what
makes this ledger's reports checkable added: every activity figure names the readings
it came from (device, sequence range, Merkle leaf ranges), every inventory its log leaf
and anchor, the methodology its on-chain registry and parameters hash; quotas and
offsets are kept beside gross emissions, never folded into them.

The report is deterministic: built only from its inputs (no clock, no randomness),
lists in a fixed order, numbers as exact 18-decimal strings. Its bytes are RFC 8785
JSON (:func:`report_bytes`), which the ledger appends to its log as one leaf
(``H(0x00 || bytes)``) and anchors; :func:`report_hash` names it. The hash cannot sit
inside the report it hashes, so the proof link (``proof_base`` + report id +
``/proof``, where the ledger serves the leaf's inclusion proof) is printed beside the
JSON, in the PDF and its QR code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from carbon_protocol.canonical import canonical_json
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import (
    DataQuality,
    FixedStr,
    Inventory,
    LeafRange,
    Period,
    RuleVersionRef,
    Scope,
    SourceKind,
)
from carbon_protocol.models import AnchorRef, parse_utc
from carbon_protocol.suites import SuiteName, hash_fn

from ..errors import ReportError
from ..fixed_point import Fixed, add, mul_ratio, parse, to_decimal
from ..offsets_ledger import NettingResult
from ..quotas_reconcile import Reconciliation

__all__ = [
    "REPORT_FORMAT",
    "STANDARDS",
    "Boundary",
    "EnterpriseInfo",
    "InventoryReport",
    "LoggedInventory",
    "ReportInput",
    "SiteInfo",
    "build_report",
    "report_bytes",
    "report_hash",
    "report_id",
    "proof_link",
]

REPORT_FORMAT: Literal["carbon-ledger/inventory-report/v1"] = "carbon-ledger/inventory-report/v1"
STANDARDS = ("GB/T 32151.1-2015", "ISO 14064-1:2018")

Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- inputs ---------------------------------------------------------------------------


class SiteInfo(_Model):
    """A site inside the organisational boundary."""

    id: IdentifierStr
    name: Text


class EnterpriseInfo(_Model):
    """The reporting entity (GB/T 32151 报告主体)."""

    id: IdentifierStr
    name: Text
    credit_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{18}$")] | None = None
    """统一社会信用代码 (unified social credit code)."""
    industry: Text | None = None
    address: Text | None = None


class Boundary(_Model):
    """Organisational and operational boundary (ISO 14064-1 5.1, 5.2)."""

    approach: Literal["operational_control", "financial_control", "equity_share"] = (
        "operational_control")
    sites: list[SiteInfo] = Field(min_length=1, max_length=10_000)
    exclusions: list[Text] = Field(default_factory=list, max_length=100)
    """Sources knowingly left out, each with its reason (e.g. scope 3 not reported)."""


class LoggedInventory(_Model):
    """An inventory as the ledger logged it: its id, leaf and (once final) anchor."""

    id: IdentifierStr
    leaf_index: int | None = Field(default=None, ge=0)
    anchor: AnchorRef | None = None
    inventory: Inventory


class ReportInput(_Model):
    """Everything a report is built from; the report adds nothing else."""

    enterprise: EnterpriseInfo
    boundary: Boundary
    period: Period
    inventories: list[LoggedInventory] = Field(min_length=1, max_length=10_000)
    quota: Reconciliation | None = None
    offsets: NettingResult | None = None
    prepared_by: Text
    proof_base: Annotated[str, StringConstraints(min_length=1, max_length=256,
                                                 pattern=r"^[\x21-\x7e]+$")]
    """Where the report's proof is served, e.g. ``https://ledger.example/v1/reports``;
    the proof link is ``<proof_base>/<report id>``."""


# -- the report -----------------------------------------------------------------------


class Methodology(_Model):
    """A rule version used, as published on chain."""

    rule: RuleVersionRef
    formulas: list[str]


class SourceRow(_Model):
    """One emission source (one line of one inventory)."""

    ref: str
    """``<inventory id>#<line>``."""
    source: SourceKind
    scope: Scope
    device: IdentifierStr
    site: IdentifierStr | None
    formula: str
    period: str


class ActivityRow(_Model):
    """Activity data of a source with its provenance: the exact readings used."""

    ref: str
    value: FixedStr
    unit: str
    metered: FixedStr
    metered_unit: str
    device: IdentifierStr
    first_seq: int
    last_seq: int
    readings: int
    leaves: list[LeafRange]
    inventory_leaf: int | None
    anchor_tx: str | None


class FactorRow(_Model):
    """An emission factor (or parameter) as applied, with its source document."""

    id: str
    value: FixedStr
    unit: str
    measured: bool
    source: str
    year: int
    used_by: list[str]


class EmissionRow(_Model):
    ref: str
    source: SourceKind
    scope: Scope
    emissions: FixedStr


class ScopeTotals(_Model):
    scope1: FixedStr
    scope2: FixedStr
    total: FixedStr


class PeriodRow(ScopeTotals):
    """Emissions of one inventory period (the chart's points)."""

    label: str
    start: str
    end: str


class SourceKindRow(_Model):
    source: SourceKind
    emissions: FixedStr


class Emissions(_Model):
    by_source: list[EmissionRow]
    by_source_kind: list[SourceKindRow]
    by_scope: ScopeTotals
    by_period: list[PeriodRow]


class Quality(DataQuality):
    """Data quality over every reading used; ``measured_share`` = measured / readings."""

    measured_share: FixedStr


class AnchorRow(_Model):
    inventory: IdentifierStr
    period: str
    leaf_index: int | None
    anchor: AnchorRef | None


class InventoryReport(_Model):
    """The report (see the module docstring for the structure)."""

    format: Literal["carbon-ledger/inventory-report/v1"] = REPORT_FORMAT
    standards: list[str]
    enterprise: EnterpriseInfo
    reporting_period: Period
    boundary: Boundary
    scopes_reported: list[Scope]
    methodology: list[Methodology]
    emission_sources: list[SourceRow]
    activity_data: list[ActivityRow]
    emission_factors: list[FactorRow]
    emissions: Emissions
    data_quality: Quality
    anchors: list[AnchorRow]
    quota: Reconciliation | None
    offsets: NettingResult | None
    prepared_by: str
    proof_base: str


def _within(inner: Period, outer: Period) -> bool:
    return (parse_utc(outer.start) <= parse_utc(inner.start)
            and parse_utc(inner.end) <= parse_utc(outer.end))


def _totals(values: Iterable[tuple[int, Fixed]]) -> ScopeTotals:
    s1 = s2 = Fixed(0)
    for scope, value in values:
        if scope == 1:
            s1 = add(s1, value)
        else:
            s2 = add(s2, value)
    return ScopeTotals(scope1=to_decimal(s1), scope2=to_decimal(s2), total=to_decimal(add(s1, s2)))


def _check(data: ReportInput) -> list[LoggedInventory]:
    sites = {s.id for s in data.boundary.sites}
    ids: set[str] = set()
    for logged in data.inventories:
        inv = logged.inventory
        if logged.id in ids:
            raise ReportError(f"inventory {logged.id} is given twice", inventory=logged.id)
        ids.add(logged.id)
        if not _within(inv.period, data.period):
            raise ReportError(f"inventory {logged.id} covers {inv.period.label} "
                              f"({inv.period.start}..{inv.period.end}), outside the reporting "
                              f"period {data.period.label}", inventory=logged.id)
        for line in inv.lines:
            if line.site is not None and line.site not in sites:
                raise ReportError(f"inventory {logged.id} line {line.line}: site {line.site} is "
                                  "outside the organisational boundary", inventory=logged.id,
                                  site=line.site)
    # two inventories may not count the same device over overlapping periods
    seen: dict[str, list[Period]] = {}
    for logged in data.inventories:
        inv = logged.inventory
        for device in inv.devices():
            for other in seen.get(device, []):
                if (parse_utc(inv.period.start) < parse_utc(other.end)
                        and parse_utc(other.start) < parse_utc(inv.period.end)):
                    raise ReportError(f"device {device} is counted twice: {other.label} and "
                                      f"{inv.period.label} overlap", device=device)
            seen.setdefault(device, []).append(inv.period)
    return sorted(data.inventories, key=lambda x: (parse_utc(x.inventory.period.start), x.id))


def build_report(data: ReportInput) -> InventoryReport:
    """The report of ``data``; :class:`ReportError` when the inventories do not fit the
    period or boundary, or count a device twice."""
    logged = _check(data)
    methods: dict[tuple[int, str, str, int], Methodology] = {}
    sources: list[SourceRow] = []
    activity: list[ActivityRow] = []
    factors: dict[tuple[str, str, bool, str, int], list[str]] = {}
    factor_units: dict[tuple[str, str, bool, str, int], str] = {}
    rows: list[EmissionRow] = []
    periods: list[PeriodRow] = []
    kinds: dict[str, Fixed] = {}
    quality = dict.fromkeys(DataQuality.model_fields, 0)
    scopes: set[int] = set()
    for item in logged:
        inv = item.inventory
        rk = (inv.rule.chain_id, inv.rule.registry, inv.rule.methodology_id, inv.rule.version)
        method = methods.get(rk) or Methodology(rule=inv.rule, formulas=[])
        for line in inv.lines:
            ref = f"{item.id}#{line.line}"
            scopes.add(line.scope)
            if line.formula not in method.formulas:
                method = Methodology(rule=inv.rule, formulas=sorted([*method.formulas,
                                                                      line.formula]))
            sources.append(SourceRow(ref=ref, source=line.source, scope=line.scope,
                                     device=line.readings.device, site=line.site,
                                     formula=line.formula, period=inv.period.label))
            rs = line.readings
            activity.append(ActivityRow(
                ref=ref, value=line.activity.value, unit=line.activity.unit,
                metered=line.activity.metered, metered_unit=line.activity.metered_unit,
                device=rs.device, first_seq=rs.first_seq, last_seq=rs.last_seq,
                readings=rs.count, leaves=list(rs.leaves), inventory_leaf=item.leaf_index,
                anchor_tx=None if item.anchor is None else item.anchor.tx_hash))
            for f in line.factors:
                fk = (f.id, f.value, f.measured, f.source, f.year)
                factors.setdefault(fk, []).append(ref)
                factor_units[fk] = f.unit
            value = parse(line.emissions)
            rows.append(EmissionRow(ref=ref, source=line.source, scope=line.scope,
                                    emissions=line.emissions))
            kinds[line.source] = add(kinds.get(line.source, Fixed(0)), value)
        methods[rk] = method
        for k in quality:
            quality[k] += getattr(inv.quality, k)
        t = inv.totals
        periods.append(PeriodRow(label=inv.period.label, start=inv.period.start,
                                 end=inv.period.end, scope1=t.scope1, scope2=t.scope2,
                                 total=t.total))
    by_period = _merge_periods(periods)
    share = (mul_ratio(Fixed(10**18), quality["measured"], quality["readings"])
             if quality["readings"] else Fixed(0))
    return InventoryReport(
        standards=list(STANDARDS), enterprise=data.enterprise, reporting_period=data.period,
        boundary=data.boundary, scopes_reported=sorted(scopes),
        methodology=[methods[k] for k in sorted(methods)],
        emission_sources=sources, activity_data=activity,
        emission_factors=[FactorRow(id=k[0], value=k[1], unit=factor_units[k], measured=k[2],
                                    source=k[3], year=k[4], used_by=v)
                          for k, v in sorted(factors.items())],
        emissions=Emissions(
            by_source=rows,
            by_source_kind=[SourceKindRow(source=k, emissions=to_decimal(v))
                            for k, v in sorted(kinds.items())],
            by_scope=_totals((r.scope, parse(r.emissions)) for r in rows),
            by_period=by_period),
        data_quality=Quality(**quality, measured_share=to_decimal(share)),
        anchors=[AnchorRow(inventory=i.id, period=i.inventory.period.label,
                           leaf_index=i.leaf_index, anchor=i.anchor) for i in logged],
        quota=data.quota, offsets=data.offsets, prepared_by=data.prepared_by,
        proof_base=data.proof_base)


def _merge_periods(rows: Sequence[PeriodRow]) -> list[PeriodRow]:
    """One row per distinct period (several gateways may report the same month)."""
    merged: dict[tuple[str, str, str], PeriodRow] = {}
    for r in rows:
        key = (r.start, r.end, r.label)
        prev = merged.get(key)
        if prev is None:
            merged[key] = r
            continue
        s1 = add(parse(prev.scope1), parse(r.scope1))
        s2 = add(parse(prev.scope2), parse(r.scope2))
        merged[key] = PeriodRow(label=r.label, start=r.start, end=r.end, scope1=to_decimal(s1),
                                scope2=to_decimal(s2), total=to_decimal(add(s1, s2)))
    return [merged[k] for k in sorted(merged, key=lambda k: (parse_utc(k[0]), k[1], k[2]))]


def report_bytes(report: InventoryReport) -> bytes:
    """The report's RFC 8785 JSON: what is hashed, anchored and published."""
    return canonical_json(report.model_dump(mode="json"))


def report_hash(report: InventoryReport, suite: SuiteName = "sm") -> bytes:
    """The hash to append to the ledger's log and anchor: SM3 (``sm``) or SHA-256
    (``intl``) of :func:`report_bytes`, the log suite's hash."""
    return hash_fn(suite)(report_bytes(report))


def report_id(report: InventoryReport, suite: SuiteName = "sm") -> str:
    """The report's identifier: ``<enterprise prefix>/rpt.<first 16 bytes of the hash>``."""
    prefix = report.enterprise.id.split("/", 1)[0]
    return f"{prefix}/rpt.{report_hash(report, suite)[:16].hex()}"


def proof_link(report: InventoryReport, suite: SuiteName = "sm") -> str:
    """Where the report's inclusion proof is served: what the PDF's QR code carries."""
    return f"{report.proof_base.rstrip('/')}/{report_id(report, suite)}/proof"
