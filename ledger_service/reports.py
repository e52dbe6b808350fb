"""Reports, quotas and offsets as the ledger serves them (issue 4, items 5 to 7).

The accounting lives in :mod:`carbon_rules` (quota book, reconciliation, offsets
ledger, report structure and PDF); this module feeds it from the ledger: inventories
by id with their log leaf and anchor, the ledger's chain for the ``QuotaRegistry``,
``<data_dir>/offsets.sqlite`` for consumed offsets. Errors of the rule package leave as
:class:`ReportServiceError`, a :class:`LedgerError` with the rule error's code.

A built report is anchored like an inventory: its RFC 8785 bytes
(:func:`carbon_rules.reports.report_bytes`) are appended to the ledger's Merkle log as
one leaf and kept in the ``reports`` table, so the next anchor covers it and
:func:`proof` proves it (the link its PDF's QR code carries). Building the same report
again finds the same leaf: a report's id is its hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, select

from carbon_protocol.errors import ProtocolError
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import FixedStr, Period
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import Address, AnchorRef, PublicKeyInfo, SignedTreeHead
from carbon_protocol.suites import hash_fn
from carbon_rules.errors import (
    OffsetDoubleClaimError,
    QuotaNotIssuedError,
    QuotaUnauthorizedError,
    RegistryUnavailableError,
    RulesError,
)
from carbon_rules.fixed_point import parse
from carbon_rules.offsets import CN_ETS_RULES, Claim, NettingRules
from carbon_rules.offsets_ledger import NettingResult, OffsetLedger, gross_of
from carbon_rules.quotas import InternalQuota, QuotaBook, Year
from carbon_rules.quotas_client import QuotaRegistryClient
from carbon_rules.quotas_reconcile import (
    ForecastMethod,
    Reconciliation,
    monthly_totals,
    reconcile,
)
from carbon_rules.reports import (
    Boundary,
    EnterpriseInfo,
    InventoryReport,
    LoggedInventory,
    ReportInput,
    build_report,
    report_bytes,
    report_hash,
    report_id,
)

from ._internal.clock import utc_text
from ._internal.db import reports
from .errors import LedgerError, NotFoundError
from .inventories import anchor_covering
from .ledger import Ledger

__all__ = [
    "BuiltReport",
    "OffsetClaimRequest",
    "QuotaRequest",
    "ReportProof",
    "ReportRequest",
    "ReportServiceError",
    "ReportStoreError",
    "anchor_report",
    "build",
    "claim_offsets",
    "get",
    "load_report",
    "logged_inventories",
    "proof",
    "quota_client",
]

_STATUS: tuple[tuple[type[RulesError], int], ...] = (
    (QuotaNotIssuedError, 404),
    (QuotaUnauthorizedError, 403),
    (OffsetDoubleClaimError, 409),
    (RegistryUnavailableError, 503),
)
_REPORT_ID = re.compile(r"^[0-9.]+/rpt\.[0-9a-f]{32}$")


class ReportServiceError(LedgerError):
    """A rule-package error on its way out of the service: same code, message, details."""

    def __init__(self, error: RulesError) -> None:
        d = error.diagnostics()
        super().__init__(d["message"], **d.get("details", {}))
        self.code = d["code"]
        self.http_status = next((s for cls, s in _STATUS if isinstance(error, cls)), 422)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuotaRequest(_Request):
    """Reconcile against the quota of ``year``: the regulator's on the ``registry``
    (a ``QuotaRegistry`` on the ledger's chain; default: the ledger's own, if it has
    one) if issued there, else ``internal``."""

    year: Year
    registry: Address | None = None
    internal: FixedStr | None = None
    """An internal planning quota (tCO2e)."""
    previous_year: dict[int, FixedStr] = Field(default_factory=dict)
    """Last year's monthly emissions (month -> tCO2e), for the ``last_year`` forecast."""
    method: ForecastMethod = "auto"


class ReportRequest(_Request):
    """What to build a report from: inventories the ledger holds, by id."""

    enterprise: EnterpriseInfo
    boundary: Boundary
    period: Period
    inventory_ids: list[IdentifierStr] = Field(min_length=1, max_length=10_000)
    quota: QuotaRequest | None = None
    offsets_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Show the offsets recorded under this consumption key."""
    netting_rules: NettingRules = CN_ETS_RULES
    prepared_by: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    proof_base: Annotated[str, StringConstraints(min_length=1, max_length=256,
                                                 pattern=r"^[\x21-\x7e]+$")] = "/v1/reports"


class OffsetClaimRequest(_Request):
    """Claim offsets against the gross emissions of inventories the ledger holds."""

    consumption_key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    inventory_ids: list[IdentifierStr] = Field(min_length=1, max_length=10_000)
    claims: list[Claim] = Field(min_length=1, max_length=10_000)
    netting_rules: NettingRules = CN_ETS_RULES


class BuiltReport(BaseModel):
    """A built report, its identifier, hash (hex, of the log's hash function) and the
    log leaf holding its bytes."""

    report_id: str
    hash: str
    suite: Literal["sm", "intl"]
    leaf_index: int
    leaf_hash: str
    report: InventoryReport


class ReportProof(BaseModel):
    """What a report's QR code leads to: the report, its leaf (``H(0x00 || RFC 8785
    bytes)``), its inclusion in the first final anchored tree head covering it, the
    log key that signed that head and the anchor transaction. A stranger recomputes the
    leaf from ``report``, the root from the path, checks the head's signature and finds
    the root in the anchor contract."""

    report_id: str
    report_hash: str
    report: InventoryReport
    leaf_index: int
    leaf_hash: str
    inclusion_proof: list[str]
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef


def logged_inventories(ledger: Ledger, ids: list[str]) -> list[LoggedInventory]:
    """The inventories ``ids`` with their log leaf and, once final, their anchor."""
    out = []
    for inventory_id in ids:
        stored = ledger.inventory(inventory_id)
        try:
            anchor = ledger.inventory_proof(inventory_id).anchor
        except (LedgerError, ProtocolError):
            anchor = None  # not anchored (final) yet: the report says so
        out.append(LoggedInventory(id=inventory_id, leaf_index=stored.receipt.leaf_index,
                                   anchor=anchor, inventory=stored.signed_inventory.inventory))
    return out


def quota_client(ledger: Ledger, registry: str) -> QuotaRegistryClient:
    """A read-only client of the ``QuotaRegistry`` at ``registry`` on the ledger's chain."""
    return QuotaRegistryClient(ledger.rules().w3, registry, None,
                               endpoint=ledger.settings.chain)


def offset_ledger(ledger: Ledger) -> OffsetLedger:
    """The ledger's record of consumed offsets, ``<data_dir>/offsets.sqlite``."""
    path = Path(ledger.settings.data_dir) / "offsets.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return OffsetLedger(path)


def claim_offsets(ledger: Ledger, request: OffsetClaimRequest) -> NettingResult:
    """Record the claims (all or nothing) and return the netting under their key."""
    inventories = logged_inventories(ledger, request.inventory_ids)
    book = offset_ledger(ledger)
    try:
        return book.claim(request.consumption_key, gross_of(i.inventory for i in inventories),
                          request.claims, request.netting_rules)
    except RulesError as exc:
        raise ReportServiceError(exc) from exc
    finally:
        book.close()


def _reconciliation(ledger: Ledger, request: ReportRequest,
                    inventories: list[LoggedInventory], offsets: NettingResult | None
                    ) -> Reconciliation | None:
    q = request.quota
    if q is None:
        return None
    enterprise = request.enterprise.id
    registry = q.registry or ledger.quota_registry_address
    chain = None if registry is None else quota_client(ledger, registry)
    internal = [] if q.internal is None else [
        InternalQuota(enterprise=enterprise, year=q.year, allocation=q.internal)]
    quota = QuotaBook(chain, internal).effective(enterprise, q.year)
    monthly = monthly_totals((i.inventory for i in inventories), q.year)
    return reconcile(quota, monthly, method=q.method,
                     previous_year={m: parse(v) for m, v in q.previous_year.items()},
                     offsets=0 if offsets is None else parse(offsets.allowed_offsets))


def build(ledger: Ledger, request: ReportRequest) -> tuple[bool, BuiltReport]:
    """Build the report and append it to the log (:func:`anchor_report`):
    ``(created, built)``, ``created`` false when the same report was built before."""
    inventories = logged_inventories(ledger, request.inventory_ids)
    try:
        offsets = None
        if request.offsets_key is not None:
            book = offset_ledger(ledger)
            try:
                offsets = book.result(request.offsets_key, gross_of(
                    i.inventory for i in inventories), request.netting_rules)
            finally:
                book.close()
        report = build_report(ReportInput(
            enterprise=request.enterprise, boundary=request.boundary, period=request.period,
            inventories=inventories, quota=_reconciliation(ledger, request, inventories, offsets),
            offsets=offsets, prepared_by=request.prepared_by, proof_base=request.proof_base))
    except RulesError as exc:
        raise ReportServiceError(exc) from exc
    return anchor_report(ledger, report)


def _row(conn: Connection, rid: str) -> Mapping[Any, Any] | None:
    return conn.execute(select(reports).where(reports.c.id == rid)).mappings().first()


def _built(row: Mapping[Any, Any], report: InventoryReport, suite: Literal["sm", "intl"]
           ) -> BuiltReport:
    return BuiltReport(report_id=row["id"], hash=bytes(row["report_hash"]).hex(), suite=suite,
                       leaf_index=int(row["leaf_index"]), leaf_hash=bytes(row["leaf_hash"]).hex(),
                       report=report)


def anchor_report(ledger: Ledger, report: InventoryReport) -> tuple[bool, BuiltReport]:
    """Append the report's RFC 8785 bytes to the log as one leaf and keep its row:
    ``(True, built)``; the same report again appends nothing and answers the leaf it
    already has, ``(False, built)``."""
    suite = ledger.settings.log_suite
    rid = report_id(report, suite)
    data = report_bytes(report)
    leaf = leaf_hash(hash_fn(suite), data)

    def write(conn: Connection, index: int) -> bytes:
        conn.execute(reports.insert().values(
            id=rid, enterprise_id=report.enterprise.id,
            period_label=report.reporting_period.label,
            report_hash=report_hash(report, suite), leaf_index=index, leaf_hash=leaf,
            leaf_data=data, created_at=utc_text()))
        return leaf

    with ledger.reader.connect() as conn:
        row = _row(conn, rid)
    created = row is None and ledger.append_leaf(
        write, unless=lambda conn: _row(conn, rid) is not None) is not None
    if row is None:
        with ledger.reader.connect() as conn:
            row = _row(conn, rid)
    assert row is not None
    return created, _built(row, report, suite)


def _stored(ledger: Ledger, rid: str) -> tuple[Mapping[Any, Any], InventoryReport]:
    if not _REPORT_ID.fullmatch(rid):
        raise NotFoundError(f"{rid!r} is not a report id", report_id=rid)
    with ledger.reader.connect() as conn:
        row = _row(conn, rid)
    if row is None:
        raise NotFoundError(f"no report {rid}", report_id=rid)
    data = bytes(row["leaf_data"])
    report = InventoryReport.model_validate_json(data)
    suite = ledger.settings.log_suite
    if (report_id(report, suite) != rid or report_bytes(report) != data
            or leaf_hash(hash_fn(suite), data) != bytes(row["leaf_hash"])):
        raise ReportStoreError(f"the stored report {rid} no longer hashes to its id",
                               report_id=rid)
    return row, report


def load_report(ledger: Ledger, rid: str) -> InventoryReport:
    """A report built earlier, by its id."""
    return _stored(ledger, rid)[1]


def get(ledger: Ledger, rid: str) -> BuiltReport:
    """A report built earlier with its hash and leaf."""
    row, report = _stored(ledger, rid)
    return _built(row, report, ledger.settings.log_suite)


def proof(ledger: Ledger, rid: str) -> ReportProof:
    """The report's inclusion proof against the first final anchor covering its leaf
    (``not_found`` until an anchor does)."""
    built = get(ledger, rid)
    anchor = anchor_covering(ledger, built.leaf_index, f"report {rid}")
    sth = ledger.tree_head(anchor.tree_size)
    assert sth is not None
    return ReportProof(
        report_id=rid, report_hash=built.hash, report=built.report,
        leaf_index=built.leaf_index, leaf_hash=built.leaf_hash,
        inclusion_proof=[p.hex() for p in ledger.inclusion_proof(built.leaf_index,
                                                                 anchor.tree_size)],
        signed_tree_head=sth, log_key=ledger.log_key_info(), anchor=anchor)


class ReportStoreError(LedgerError):
    """A stored report's bytes changed since it was built."""

    code = "report_tampered"
    http_status = 500
