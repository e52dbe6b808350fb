"""Gather the integrity facts of an enterprise and period from the ledger database.

What the ledger records today, this reads: the accepted readings of every device of
every site of the enterprise whose interval ends in the period ``(start, end]`` (the
inventory rule), their sequence numbers and values, and the readings of those devices
refused for their signature or key (:mod:`ledger_service.rejections`). The rest the
caller passes in, explicitly, because it comes from elsewhere (:mod:`.eligibility`
gathers it):

* ``bills``: supplier bills, declared as ``supplier_bill`` log records (:mod:`.inputs`);
* ``attested_months``: months every graded inventory of which a verifier attested
  (:func:`.inputs.verified_months`).

Missing sequence numbers are counted per device inside the range of sequence numbers
seen in the period (``last - first + 1 - distinct``), not summed from ``gap_before``:
a reading that arrives late fills its gap, but the ``gap_before`` of the reading after
it was stored when the gap was open and is never lowered.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period
from carbon_protocol.models import parse_utc

from .._internal.db import devices, readings, sites
from ..errors import InvalidInputError
from ..rejections import signature_failures as count_signature_failures
from .integrity import BillCheck, IntegrityFacts

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["Bill", "DeviceSeries", "period_months", "gather_integrity_facts"]

CHINA_STANDARD_TIME = ZoneInfo("Asia/Shanghai")


class Bill(BaseModel):
    """A supplier's bill for one meter over the whole period, in a unit its readings use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: IdentifierStr
    billed: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    unit: Annotated[str, Field(min_length=1, max_length=8)]


DeviceSeries = dict[str, list[Decimal]]
"""Interval values per device, in sequence order: the input of jump detection."""


def period_months(period: Period, tz: tzinfo = CHINA_STANDARD_TIME) -> list[str]:
    """Every local month (``YYYY-MM``) that ``[start, end)`` touches, in order."""
    start = parse_utc(period.start).astimezone(tz)
    last = (parse_utc(period.end) - timedelta(microseconds=1)).astimezone(tz)
    out = []
    year, month = start.year, start.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def gather_integrity_facts(
    ledger: Ledger,
    enterprise: str,
    period: Period,
    *,
    signature_failures: int | None = None,
    bills: Sequence[Bill] = (),
    attested_months: Collection[str] = (),
    tz: tzinfo = CHINA_STANDARD_TIME,
) -> tuple[IntegrityFacts, DeviceSeries]:
    """The facts :func:`.integrity.evaluate_integrity` takes, and the series for jumps.

    ``signature_failures`` overrides the count of refused readings the ledger kept
    (``None``: count them). Raises :class:`InvalidInputError` for a bill of a device that is not the
    enterprise's or in a unit its readings in the period do not use.
    """
    if signature_failures is not None and signature_failures < 0:
        raise InvalidInputError(f"signature_failures must be >= 0, got {signature_failures}")
    query = (
        select(readings.c.device_id, readings.c.seq, readings.c.leaf_data)
        .join(devices, devices.c.id == readings.c.device_id)
        .join(sites, sites.c.id == devices.c.site_id)
        .where(sites.c.enterprise_id == enterprise,
               readings.c.measured_at > period.start, readings.c.measured_at <= period.end)
        .order_by(readings.c.device_id, readings.c.seq)
    )
    series: DeviceSeries = {}
    units: dict[str, set[str]] = {}
    totals: dict[tuple[str, str], Decimal] = {}
    seqs: dict[str, list[int]] = {}
    with ledger.reader.connect() as conn:
        owned = set(conn.scalars(
            select(devices.c.id).join(sites, sites.c.id == devices.c.site_id)
            .where(sites.c.enterprise_id == enterprise)))
        for row in conn.execute(query):
            reading = json.loads(bytes(row.leaf_data))["reading"]
            value = Decimal(reading["value"])
            series.setdefault(row.device_id, []).append(value)
            seqs.setdefault(row.device_id, []).append(row.seq)
            units.setdefault(row.device_id, set()).add(reading["unit"])
            key = (row.device_id, reading["unit"])
            totals[key] = totals.get(key, Decimal(0)) + value
        if signature_failures is None:
            signature_failures = count_signature_failures(conn, enterprise, period)
    missing = sum(s[-1] - s[0] + 1 - len(set(s)) for s in seqs.values())
    checks = []
    for bill in bills:
        if bill.device not in owned:
            raise InvalidInputError(f"bill for {bill.device}: not a device of {enterprise}",
                                    device=bill.device)
        other = units.get(bill.device, set()) - {bill.unit}
        if other:
            raise InvalidInputError(
                f"bill for {bill.device} is in {bill.unit} but its readings in the period are "
                f"in {sorted(other)}: convert the bill", device=bill.device)
        checks.append(BillCheck(label=bill.device, billed=bill.billed,
                                metered=totals.get((bill.device, bill.unit), Decimal(0))))
    months = period_months(period, tz)
    return IntegrityFacts(
        readings=sum(len(v) for v in series.values()),
        missing_sequence_numbers=missing,
        signature_failures=signature_failures,
        bills=checks,
        months=months,
        unverified_months=[m for m in months if m not in set(attested_months)],
    ), series
