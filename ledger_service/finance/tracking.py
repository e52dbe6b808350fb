"""Quarterly tracking of a financed project's emission reductions against its plan.

A carbon-reduction loan finances a project that promises reductions quarter by
quarter. The actual reduction of a quarter is the project's baseline emissions minus
the emissions its inventories show for that quarter (CCER-style: baseline minus project
emissions). A quarter is ``on_track`` when the actual reduction reaches the plan,
``behind`` otherwise, and ``pending`` while no inventory covers it. Cumulative figures
run over the quarters reported so far, which is what a bank's covenant usually reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from carbon_protocol.inventory import Inventory
from carbon_protocol.models import parse_utc

from ..errors import InvalidInputError
from ._numbers import EXACT
from .facts import CHINA_STANDARD_TIME

__all__ = ["QuarterProgress", "quarter_of", "quarterly_emissions", "track_reductions"]

_QUARTER = re.compile(r"^[0-9]{4}-Q[1-4]$")
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")


class QuarterProgress(BaseModel):
    """One quarter of the plan: planned and actual reduction (tCO2e), and the verdict."""

    model_config = ConfigDict(frozen=True)

    quarter: str
    planned: Decimal
    actual: Decimal | None
    achieved_pct: Decimal | None
    """Actual as a percentage of planned, two decimals (``None`` while pending)."""
    status: Literal["on_track", "behind", "pending"]
    cumulative_planned: Decimal
    """Planned reductions of every quarter up to this one that has been reported."""
    cumulative_actual: Decimal
    cumulative_pct: Decimal | None


def quarter_of(moment: datetime, tz: tzinfo = CHINA_STANDARD_TIME) -> str:
    """The local calendar quarter (``YYYY-Qn``) of an aware time."""
    t = moment.astimezone(tz)
    return f"{t.year:04d}-Q{(t.month - 1) // 3 + 1}"


def quarterly_emissions(
    inventories: Sequence[Inventory], tz: tzinfo = CHINA_STANDARD_TIME
) -> dict[str, Decimal]:
    """Total emissions (tCO2e) per local quarter from inventories that each lie in one.

    An inventory whose period spans two quarters is refused (its emissions cannot be
    split honestly), and so are two inventories of one gateway whose periods overlap
    (their readings would count twice). Raises :class:`InvalidInputError`.
    """
    out: dict[str, Decimal] = {}
    seen: dict[str, list[tuple[str, str]]] = {}
    for inv in inventories:
        p = inv.period
        q = quarter_of(parse_utc(p.start), tz)
        if quarter_of(parse_utc(p.end) - timedelta(seconds=1), tz) != q:
            raise InvalidInputError(
                f"inventory {p.label} of {inv.gateway} spans quarters "
                f"({p.start} to {p.end}): track with monthly or quarterly inventories")
        for start, end in seen.get(inv.gateway, []):
            if p.start < end and start < p.end:
                raise InvalidInputError(
                    f"inventories of {inv.gateway} overlap: {start}..{end} and "
                    f"{p.start}..{p.end}")
        seen.setdefault(inv.gateway, []).append((p.start, p.end))
        out[q] = out.get(q, Decimal(0)) + Decimal(inv.totals.total)
    return out


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    """Percentage to two decimals, half-even (display only: statuses compare exactly)."""
    return EXACT.divide(EXACT.multiply(part, _HUNDRED), whole).quantize(
        _CENT, rounding=ROUND_HALF_EVEN, context=EXACT)


def track_reductions(
    plan: Mapping[str, Decimal],
    baseline: Mapping[str, Decimal],
    emissions: Mapping[str, Decimal],
) -> list[QuarterProgress]:
    """Compare each planned quarter's reduction (``baseline - emissions``) with the plan.

    ``plan`` and ``baseline`` must name the same quarters (``YYYY-Qn``), with a planned
    reduction > 0; ``emissions`` (from :func:`quarterly_emissions`) may lack quarters
    not reported yet, but must not name quarters outside the plan. Quarters come back
    in order. Raises :class:`InvalidInputError`.
    """
    bad = [q for q in (*plan, *baseline, *emissions) if not _QUARTER.match(q)]
    if bad:
        raise InvalidInputError(f"quarters must be written YYYY-Qn, got {bad[:5]}")
    if set(plan) != set(baseline):
        raise InvalidInputError("plan and baseline must cover the same quarters, differing in "
                                f"{sorted(set(plan) ^ set(baseline))}")
    stray = sorted(set(emissions) - set(plan))
    if stray:
        raise InvalidInputError(f"emissions reported for quarters outside the plan: {stray}")
    if any(v <= 0 for v in plan.values()):
        raise InvalidInputError("every planned quarterly reduction must be > 0")
    out = []
    cum_plan = cum_actual = Decimal(0)
    for q in sorted(plan):
        planned = plan[q]
        if q not in emissions:
            out.append(QuarterProgress(
                quarter=q, planned=planned, actual=None, achieved_pct=None, status="pending",
                cumulative_planned=cum_plan, cumulative_actual=cum_actual,
                cumulative_pct=_pct(cum_actual, cum_plan) if cum_plan else None))
            continue
        actual = baseline[q] - emissions[q]
        cum_plan += planned
        cum_actual += actual
        out.append(QuarterProgress(
            quarter=q, planned=planned, actual=actual, achieved_pct=_pct(actual, planned),
            status="on_track" if actual >= planned else "behind",
            cumulative_planned=cum_plan, cumulative_actual=cum_actual,
            cumulative_pct=_pct(cum_actual, cum_plan)))
    return out
