"""What an enterprise declares for grading, as log records: output and supplier bills.

Intensity needs the enterprise's output, and the meter-vs-bill rule needs the supplier's
bills; the ledger cannot measure either, so the enterprise declares them and each
declaration is a log record (:mod:`ledger_service.log_records`). A grade therefore
rests on statements the enterprise cannot later deny or quietly change: a correction is
a new record that names the one it supersedes, and the old one stays in the log.

Record ids are ``<prefix>/out.<16 hex>`` and ``<prefix>/bill.<16 hex>``, the start of
the suite hash of the record's RFC 8785 document. The document names the record it
supersedes (``null`` for the first), so declaring what is already in force appends
nothing (a retried request is idempotent), while going back to an earlier value is a
new record after the one it replaces.

A month counts as verified (:func:`verified_months`) when every inventory graded for it
stands attested by the verification workflow
(:func:`ledger_service.verification.workflow.attested_inventories`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from carbon_protocol.canonical import canonical_json
from carbon_protocol.finance_records import (
    BILL_FORMAT,
    OUTPUT_FORMAT,
    ProductionOutput,
    SupplierBill,
)
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period
from carbon_protocol.models import parse_utc
from carbon_protocol.suites import digest

from .._internal.db import devices, sites
from ..errors import InvalidInputError
from ..log_records import LoggedRecord, append_record, list_records
from ._numbers import wire_decimal
from .config import OutputUnit, parse_period
from .facts import Bill

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["OUTPUT_KIND", "BILL_KIND", "OutputDeclaration", "BillDeclaration",
           "Declared", "declare_output", "current_output", "declare_bill", "current_bills",
           "covered", "verified_months"]

OUTPUT_KIND: Final = "production_output"
BILL_KIND: Final = "supplier_bill"

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=40)]


class OutputDeclaration(BaseModel):
    """``PUT /v1/finance/output/{enterprise}/{period}``: the period's output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: PositiveDecimal
    unit: OutputUnit
    """``t`` (tonnes of product), ``MWh``, or ``10^4CNY`` (10k CNY of revenue)."""
    note: Annotated[str, StringConstraints(max_length=500)] = ""
    """Where the figure comes from (production ledger, invoice, audited accounts)."""


class BillDeclaration(BaseModel):
    """``POST /v1/finance/bills/{enterprise}``: a supplier's bill for one meter over the
    whole period, in the unit of its readings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: Annotated[str, StringConstraints(min_length=4, max_length=10)]
    """The period label the bill covers (``2026-01``), in the configured calendar."""
    device: IdentifierStr
    billed: PositiveDecimal
    unit: Annotated[str, StringConstraints(min_length=1, max_length=8)]
    reference: Annotated[str, StringConstraints(max_length=200)] = ""
    """The supplier's bill number."""


class Declared(BaseModel):
    """A declaration as logged: whether this request appended it, and the record."""

    model_config = ConfigDict(frozen=True)

    created: bool
    record: LoggedRecord


def _latest(ledger: Ledger, kind: str, enterprise: str, **match: str) -> LoggedRecord | None:
    found = None
    for r in list_records(ledger, enterprise_id=enterprise, kinds=(kind,)):
        if all(r.document.get(k) == v for k, v in match.items()):
            found = r  # log order: the last one is in force
    return found


def _declare(ledger: Ledger, kind: str, tag: str, enterprise: str, body: dict[str, Any],
             current: LoggedRecord | None,
             model: type[ProductionOutput] | type[SupplierBill]) -> Declared:
    if current is not None and {k: current.document.get(k) for k in body} == body:
        return Declared(created=False, record=current)
    document = model.model_validate(
        {**body, "supersedes": None if current is None else current.record_id}
    ).model_dump(mode="json")
    hexid = digest(ledger.settings.log_suite, canonical_json(document))[:8].hex()
    created, record = append_record(ledger, kind=kind, enterprise_id=enterprise,
                                    record_id=f"{ledger.settings.prefix}/{tag}.{hexid}",
                                    document=document)
    return Declared(created=created, record=record)


def declare_output(ledger: Ledger, enterprise: str, period: str, zone: str,
                   declaration: OutputDeclaration) -> Declared:
    """Log the output of ``enterprise`` in ``period`` unless it is already the one in force."""
    parse_period(period, zone)
    body = {"format": OUTPUT_FORMAT, "enterprise": enterprise, "period": period,
            "value": wire_decimal(declaration.value), "unit": declaration.unit,
            "note": declaration.note}
    return _declare(ledger, OUTPUT_KIND, "out", enterprise, body,
                    _latest(ledger, OUTPUT_KIND, enterprise, period=period), ProductionOutput)


def current_output(ledger: Ledger, enterprise: str, period: str) -> LoggedRecord | None:
    """The output declaration in force for ``enterprise`` and ``period`` (the last one)."""
    return _latest(ledger, OUTPUT_KIND, enterprise, period=period)


def _device_owner(ledger: Ledger, device: str) -> str | None:
    from sqlalchemy import select

    with ledger.reader.connect() as conn:
        owner = conn.scalar(select(sites.c.enterprise_id)
                            .join(devices, devices.c.site_id == sites.c.id)
                            .where(devices.c.id == device))
    return None if owner is None else str(owner)


def declare_bill(ledger: Ledger, enterprise: str, zone: str,
                 declaration: BillDeclaration) -> Declared:
    """Log a bill of one of the enterprise's meters (the latest per meter and period counts)."""
    parse_period(declaration.period, zone)
    if _device_owner(ledger, declaration.device) != enterprise:
        raise InvalidInputError(f"bill for {declaration.device}: not a device of {enterprise}",
                                device=declaration.device)
    body = {"format": BILL_FORMAT, "enterprise": enterprise, "period": declaration.period,
            "device": declaration.device, "billed": wire_decimal(declaration.billed),
            "unit": declaration.unit, "reference": declaration.reference}
    return _declare(ledger, BILL_KIND, "bill", enterprise, body,
                    _latest(ledger, BILL_KIND, enterprise, period=declaration.period,
                            device=declaration.device), SupplierBill)


def current_bills(ledger: Ledger, enterprise: str, period: str
                  ) -> list[tuple[LoggedRecord, Bill]]:
    """The bills in force for the period: the last one per meter, in meter order."""
    last: dict[str, LoggedRecord] = {}
    for r in list_records(ledger, enterprise_id=enterprise, kinds=(BILL_KIND,)):
        if r.document.get("period") == period:
            last[str(r.document["device"])] = r
    return [(r, Bill(device=d, billed=Decimal(r.document["billed"]), unit=r.document["unit"]))
            for d, r in sorted(last.items())]


def covered(span: Period, periods: Iterable[Period]) -> bool:
    """Whether the union of ``periods`` covers ``[span.start, span.end)``."""
    start, end = parse_utc(span.start), parse_utc(span.end)
    for p in sorted(periods, key=lambda p: parse_utc(p.start)):
        if parse_utc(p.start) > start:
            break
        start = max(start, parse_utc(p.end))
        if start >= end:
            return True
    return start >= end


def verified_months(graded: Iterable[tuple[str, Period]], attested: Mapping[str, Period],
                    months: Iterable[str], zone: str) -> list[str]:
    """The ``months`` (``YYYY-MM`` in ``zone``) that count as verified: the ``graded``
    inventories (id, period) overlapping the month cover it, and every one of them is
    ``attested`` (:func:`ledger_service.verification.workflow.attested_inventories`).

    One gateway's attested inventory does not vouch for another gateway's figures in
    the same month: the month's emissions are their sum, so all must be attested."""
    spans = list(graded)
    out = []
    for month in months:
        span = parse_period(month, zone)
        start, end = parse_utc(span.start), parse_utc(span.end)
        inside = [(i, p) for i, p in spans
                  if parse_utc(p.start) < end and parse_utc(p.end) > start]
        if inside and all(i in attested for i, _ in inside) and covered(
                span, [p for _, p in inside]):
            out.append(month)
    return out
