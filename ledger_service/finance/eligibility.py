"""Loan eligibility: grade, integrity code and a signed financing code, logged.

For an enterprise and a period this gathers everything a grade rests on from what the
ledger can prove (:mod:`.inputs`, :mod:`.facts`), grades it with the configuration in
force (:mod:`.config`), and signs the code with the ledger's log key. Each code issued
is appended to the log as a record of kind ``financing_code`` (id
``<prefix>/fc.<16 hex>``, the start of the suite hash of the code's RFC 8785 bytes;
document: the :class:`~carbon_protocol.financing_code.SignedFinancingCode`), so a code
a bank holds can be proved to have been issued, and when.

Asking again while nothing changed returns the code already issued rather than a new
one, as long as more than half its validity remains: a bank that polls does not fill
the log, and never receives a code about to expire. Anything that changes the verdict
(a new inventory, a bill, an attestation, another configuration) gives a new code.

Signature and key failures are the readings of the enterprise's devices the ledger
refused for their signature or key, each once (:mod:`ledger_service.rejections`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from carbon_protocol.financing_code import (
    SignedFinancingCode,
    encode_qr_payload,
    financing_code_bytes,
)
from carbon_protocol.inventory import Period
from carbon_protocol.models import parse_utc
from carbon_protocol.suites import digest

from .._internal.db import devices, gateways, inventories, readings, sites
from ..errors import ConflictError
from ..log_records import LoggedRecord, append_record, get_record, list_records
from ..registry import get_enterprise
from ..verification.workflow import attested_inventories
from ._numbers import wire_decimal
from .config import FinanceFile, load_finance_config, output_unit_of, parse_period
from .errors import (
    IncompleteInventoriesError,
    NoInventoryError,
    NoOutputError,
    OutputUnitError,
    OverlappingInventoriesError,
)
from .facts import gather_integrity_facts, period_months
from .grading import GradeResult, green_grade
from .inputs import covered, current_bills, current_output, verified_months
from .integrity import IntegrityFacts, IntegrityResult, evaluate_integrity
from .issuing import issue_financing_code

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["CODE_KIND", "UsedInventory", "Eligibility", "eligibility", "enterprise_inventories",
           "uncovered_gateways"]

CODE_KIND: Final = "financing_code"


class UsedInventory(BaseModel):
    """An inventory whose total is part of the emissions graded."""

    model_config = ConfigDict(frozen=True)

    id: str
    gateway: str
    period: Period
    total: str
    """tCO2e."""
    leaf_index: int


class Eligibility(BaseModel):
    """What ``GET /v1/finance/eligibility/{enterprise}`` answers: the verdicts, what they
    were computed from (each input a log leaf), and the signed code."""

    model_config = ConfigDict(frozen=True)

    enterprise: str
    period: Period
    grade: GradeResult
    integrity: IntegrityResult
    facts: IntegrityFacts
    emissions: str
    """tCO2e: the sum of the inventories' totals."""
    inventories: list[UsedInventory]
    output: LoggedRecord
    """The output declaration in force (a ``production_output`` record)."""
    bills: list[LoggedRecord]
    attested: list[Period]
    """Periods of the graded inventories that stand attested (an ``attest`` verdict and
    no ``reject``); a month is verified when every graded inventory in it is."""
    financing_code: SignedFinancingCode
    qr_payload: str
    code_record: LoggedRecord
    """The ``financing_code`` record holding the code."""
    code_created: bool
    """``False`` when an equal code issued earlier (still valid) was returned."""


def enterprise_inventories(ledger: Ledger, enterprise: str, span: Period) -> list[UsedInventory]:
    """The inventories of the enterprise's gateways whose period lies inside ``span``.

    Raises :class:`OverlappingInventoriesError` when two of one gateway overlap (a day
    and its month, say): their sum would count readings twice.
    """
    query = (select(inventories.c.id, inventories.c.gateway_id, inventories.c.period_label,
                    inventories.c.period_start, inventories.c.period_end,
                    inventories.c.total, inventories.c.leaf_index)
             .join(gateways, gateways.c.id == inventories.c.gateway_id)
             .where(gateways.c.enterprise_id == enterprise,
                    inventories.c.period_start >= span.start,
                    inventories.c.period_end <= span.end)
             .order_by(inventories.c.gateway_id, inventories.c.period_start))
    with ledger.reader.connect() as conn:
        rows = conn.execute(query).all()
    out = [UsedInventory(id=r.id, gateway=r.gateway_id, total=r.total,
                         leaf_index=int(r.leaf_index),
                         period=Period(label=r.period_label, start=r.period_start,
                                       end=r.period_end)) for r in rows]
    for a, b in zip(out, out[1:], strict=False):
        if a.gateway == b.gateway and b.period.start < a.period.end:
            raise OverlappingInventoriesError(
                f"inventories {a.id} and {b.id} of {a.gateway} overlap ({a.period.label}, "
                f"{b.period.label}): their readings would count twice",
                inventories=[a.id, b.id])
    return out


def uncovered_gateways(ledger: Ledger, enterprise: str, span: Period,
                       used: list[UsedInventory]) -> list[str]:
    """Gateways of the enterprise with readings in ``span`` whose inventories there do not
    cover all of it. Emissions of such a period would be understated (a day's inventory
    graded against a month's output), so they are not graded or tracked."""
    query = (select(devices.c.gateway_id).distinct()
             .join(readings, readings.c.device_id == devices.c.id)
             .join(sites, sites.c.id == devices.c.site_id)
             .where(sites.c.enterprise_id == enterprise, devices.c.gateway_id.is_not(None),
                    readings.c.measured_at > span.start, readings.c.measured_at <= span.end))
    with ledger.reader.connect() as conn:
        active = sorted(str(g) for g in conn.scalars(query))
    return [g for g in active
            if not covered(span, [i.period for i in used if i.gateway == g])]


def _same_verdict(a: SignedFinancingCode, b: SignedFinancingCode) -> bool:
    skip = {"issued_at", "expires_at"}
    return (a.financing_code.model_dump(exclude=skip)
            == b.financing_code.model_dump(exclude=skip))


def _reusable(ledger: Ledger, fresh: SignedFinancingCode, enterprise: str,
              now: datetime) -> LoggedRecord | None:
    """The latest logged code with ``fresh``'s verdict and more than half its validity left."""
    found = None
    for r in list_records(ledger, enterprise_id=enterprise, kinds=(CODE_KIND,)):
        old = SignedFinancingCode.model_validate(r.document)
        issued = parse_utc(old.financing_code.issued_at)
        expires = parse_utc(old.financing_code.expires_at)
        if _same_verdict(old, fresh) and issued <= now < issued + (expires - issued) / 2:
            found = r
    return found


def _log_code(ledger: Ledger, signed: SignedFinancingCode) -> tuple[bool, LoggedRecord]:
    code = signed.financing_code
    hexid = digest(ledger.settings.log_suite, financing_code_bytes(code))[:8].hex()
    record_id = f"{ledger.settings.prefix}/fc.{hexid}"
    try:
        return append_record(ledger, kind=CODE_KIND, record_id=record_id,
                             enterprise_id=code.enterprise,
                             document=signed.model_dump(mode="json"))
    except ConflictError:
        # The same code in the same second from a concurrent request, signed with
        # another (randomised) signature: the one logged first is the code.
        return False, get_record(ledger, record_id)


def _grade(ledger: Ledger, cfg: FinanceFile, enterprise: str, span: Period, label: str
           ) -> tuple[GradeResult, LoggedRecord, list[UsedInventory], Decimal]:
    benchmark = cfg.benchmark_for(enterprise)
    output = current_output(ledger, enterprise, label)
    if output is None:
        raise NoOutputError(f"{enterprise} declared no output for {label}: PUT "
                            f"/v1/finance/output/{enterprise}/{label}", enterprise=enterprise,
                            period=label)
    unit = output_unit_of(benchmark)
    if output.document["unit"] != unit:
        raise OutputUnitError(
            f"the output of {enterprise} for {label} is declared in {output.document['unit']}, "
            f"but its benchmark ({benchmark.industry}) is in {benchmark.unit}: declare it in "
            f"{unit}", enterprise=enterprise, period=label)
    used = enterprise_inventories(ledger, enterprise, span)
    if not used:
        raise NoInventoryError(f"the ledger holds no inventory of {enterprise} inside {label} "
                               f"({span.start} to {span.end})", enterprise=enterprise,
                               period=label)
    missing = uncovered_gateways(ledger, enterprise, span, used)
    if missing:
        raise IncompleteInventoriesError(
            f"gateways {missing} of {enterprise} have readings in {label} but no inventories "
            f"covering all of it ({span.start} to {span.end}): the emissions would be "
            "understated", enterprise=enterprise, period=label, gateways=missing)
    emissions = sum((Decimal(i.total) for i in used), Decimal(0))
    grade = green_grade(emissions, Decimal(output.document["value"]), benchmark,
                        cfg.finance.grade)
    return grade, output, used, emissions


def eligibility(ledger: Ledger, enterprise: str, label: str, *,
                now: datetime | None = None) -> Eligibility:
    """Grade ``enterprise`` for the period ``label`` and issue (or reuse) its signed code.

    Raises :class:`~ledger_service.errors.NotFoundError` for an unknown enterprise, and the
    :mod:`.errors` family for what is missing (benchmark, output, inventories).
    """
    moment = now or datetime.now(UTC)
    cfg = load_finance_config(ledger)
    span = parse_period(label, cfg.timezone)
    with ledger.reader.connect() as conn:
        get_enterprise(conn, enterprise)  # NotFoundError for an unknown one
    grade, output, used, emissions = _grade(ledger, cfg, enterprise, span, label)
    months = period_months(span, cfg.zone)
    attested_ids = attested_inventories(ledger, enterprise)
    verified = verified_months([(i.id, i.period) for i in used], attested_ids, months,
                               cfg.timezone)
    attested = [i.period for i in used if i.id in attested_ids]
    bills = current_bills(ledger, enterprise, label)
    facts, series = gather_integrity_facts(ledger, enterprise, span,
                                           bills=[b for _, b in bills],
                                           attested_months=verified, tz=cfg.zone)
    integrity = evaluate_integrity(facts, series, cfg.finance.integrity)
    fresh = issue_financing_code(key=ledger.log_key, issuer=ledger.settings.log_id,
                                 enterprise=enterprise, period=span, grade=grade,
                                 integrity=integrity, config=cfg.finance, issued_at=moment)
    reused = _reusable(ledger, fresh, enterprise, moment)
    if reused is not None:
        created, record = False, reused
    else:
        created, record = _log_code(ledger, fresh)
    signed = SignedFinancingCode.model_validate(record.document)
    return Eligibility(
        enterprise=enterprise, period=span, grade=grade, integrity=integrity, facts=facts,
        emissions=wire_decimal(emissions), inventories=used, output=output,
        bills=[r for r, _ in bills], attested=attested, financing_code=signed,
        qr_payload=encode_qr_payload(signed), code_record=record, code_created=created)

