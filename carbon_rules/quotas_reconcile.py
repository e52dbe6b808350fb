"""Monthly reconciliation of emissions against the annual quota.

Given the emissions of months ``1..m`` of a compliance year (contiguous: a missing
month is refused rather than forecast over), the reconciliation reports emissions to
date, a year-end forecast and the surplus or deficit against the quota.

Forecast methods (``method``):

``run_rate``
    ``to_date x 12 / m``: the average month so far, for every month of the year.
``last_year``
    ``to_date + sum(last year's months m+1..12)``: the rest of the year as it went last
    year (seasonal loads such as heating are captured; growth is not).
``auto`` (default)
    ``last_year`` when last year's months ``m+1..12`` are all given, else ``run_rate``.

Offsets that compliance accepts (:mod:`carbon_rules.offsets`) may be passed in; the
position is then ``quota - (forecast - offsets)``. Every number is 18-decimal fixed
point, rounded half up once (the run-rate ratio); the rest are exact sums.

Worked example: quota 10,000 t, nine months at 900 t: to date 8,100 t, run-rate
forecast 8,100 x 12 / 9 = 10,800 t, deficit 800 t.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from carbon_protocol.inventory import FixedStr, Inventory

from .errors import QuotaInputError
from .fixed_point import Fixed, add, checked, mul_ratio, parse, to_decimal
from .quotas import ChainQuotaSource, EffectiveQuota, InternalQuota, QuotaBook, Year

__all__ = ["ForecastMethod", "MonthRow", "ReconcileInput", "Reconciliation", "monthly_totals",
           "reconcile"]

ForecastMethod = Literal["auto", "run_rate", "last_year"]
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MonthRow(_Model):
    """One month: its emissions and the cumulative total (tCO2e)."""

    month: int
    emissions: FixedStr
    cumulative: FixedStr


class Reconciliation(_Model):
    """Where an enterprise stands against its quota after ``months_reported`` months."""

    enterprise: str
    year: int
    quota: EffectiveQuota
    months_reported: int
    months: list[MonthRow]
    emissions_to_date: FixedStr
    forecast_method: Literal["run_rate", "last_year"]
    forecast: FixedStr
    """Year-end emissions forecast (tCO2e)."""
    offsets: FixedStr
    """Offsets accepted for compliance, deducted from the forecast."""
    position: Literal["surplus", "deficit", "balanced"]
    """Forecast against quota: ``surplus`` when the quota exceeds net forecast."""
    balance: FixedStr
    """``|quota - (forecast - offsets)|``; ``position`` carries the sign."""
    remaining_to_date: FixedStr
    """``max(quota - emissions_to_date, 0)``: allowance not yet used up."""


def _months(name: str, data: Mapping[int, Fixed]) -> dict[int, Fixed]:
    out: dict[int, Fixed] = {}
    for month, value in data.items():
        if not isinstance(month, int) or not 1 <= month <= 12:
            raise QuotaInputError(f"{name}: month {month!r} is not 1..12", month=month)
        out[month] = checked(value)
    return out


def reconcile(quota: EffectiveQuota, emissions: Mapping[int, Fixed], *,
              previous_year: Mapping[int, Fixed] | None = None,
              method: ForecastMethod = "auto", offsets: int = 0) -> Reconciliation:
    """Reconcile months ``1..m`` of ``emissions`` (month -> tCO2e) against ``quota``."""
    this = _months("emissions", emissions)
    last = _months("previous_year", previous_year or {})
    m = len(this)
    if m == 0:
        raise QuotaInputError("no monthly emissions to reconcile")
    if sorted(this) != list(range(1, m + 1)):
        missing = sorted(set(range(1, max(this) + 1)) - set(this))
        raise QuotaInputError(f"months must run from January without a hole; missing {missing}",
                              missing=missing)
    rows: list[MonthRow] = []
    to_date = Fixed(0)
    for month in range(1, m + 1):
        to_date = add(to_date, this[month])
        rows.append(MonthRow(month=month, emissions=to_decimal(this[month]),
                             cumulative=to_decimal(to_date)))
    rest = list(range(m + 1, 13))
    have_last = all(month in last for month in rest)
    if method == "last_year" and not have_last:
        missing = [month for month in rest if month not in last]
        raise QuotaInputError(f"last_year forecast needs last year's months {missing}",
                              missing=missing)
    chosen: Literal["run_rate", "last_year"] = (
        "last_year" if method == "last_year" or (method == "auto" and have_last and rest)
        else "run_rate")
    if chosen == "last_year":
        forecast = to_date
        for month in rest:
            forecast = add(forecast, last[month])
    else:
        forecast = mul_ratio(to_date, 12, m)
    allocation = quota.allocation_fixed
    net = max(forecast - checked(offsets), 0)
    diff = allocation - net
    position: Literal["surplus", "deficit", "balanced"] = (
        "surplus" if diff > 0 else "deficit" if diff < 0 else "balanced")
    return Reconciliation(
        enterprise=quota.enterprise, year=quota.year, quota=quota, months_reported=m,
        months=rows, emissions_to_date=to_decimal(to_date), forecast_method=chosen,
        forecast=to_decimal(forecast), offsets=to_decimal(offsets), position=position,
        balance=to_decimal(checked(abs(diff))),
        remaining_to_date=to_decimal(checked(max(allocation - to_date, 0))))


def monthly_totals(inventories: Iterable[Inventory], year: int) -> dict[int, Fixed]:
    """Total emissions per month of ``year`` from monthly inventories (period label
    ``YYYY-MM``, the enterprise's own calendar month); several inventories of one month
    (several gateways) add up. Inventories of other years are ignored; one that is not
    monthly is refused, since splitting it across months would be a guess."""
    out: dict[int, Fixed] = {}
    for inv in inventories:
        match = _MONTH.fullmatch(inv.period.label)
        if match is None:
            raise QuotaInputError(f"inventory period {inv.period.label!r} is not a month "
                                  "(YYYY-MM); reconciliation needs monthly inventories",
                                  period=inv.period.label)
        if int(match.group(1)) != year:
            continue
        month = int(match.group(2))
        out[month] = add(out.get(month, Fixed(0)), parse(inv.totals.total))
    return out


class ReconcileInput(_Model):
    """A reconciliation asked for from outside (API body, CLI file): monthly emissions
    and an optional internal quota; the on-chain quota, if any, comes from the caller's
    chain and overrides it."""

    enterprise: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    year: Year
    emissions: dict[int, FixedStr] = Field(min_length=1, max_length=12)
    """Month (1..12) -> tCO2e, from January without a hole."""
    internal: FixedStr | None = None
    previous_year: dict[int, FixedStr] = Field(default_factory=dict, max_length=12)
    method: ForecastMethod = "auto"
    offsets: FixedStr = "0"

    def run(self, chain: ChainQuotaSource | None) -> Reconciliation:
        """Reconcile against the quota in force (on ``chain`` if issued there)."""
        internal = [] if self.internal is None else [
            InternalQuota(enterprise=self.enterprise, year=self.year, allocation=self.internal)]
        quota = QuotaBook(chain, internal).effective(self.enterprise, self.year)
        return reconcile(quota, {m: parse(v) for m, v in self.emissions.items()},
                         previous_year={m: parse(v) for m, v in self.previous_year.items()},
                         method=self.method, offsets=parse(self.offsets))
