"""Interval consumption from one meter's readings: the exact, per-reading rules.

For a device's readings sorted by sequence number, reading *i* closes one interval:

1. The first reading in the input has no predecessor: its interval ``value`` counts.
2. Otherwise, if both it and its predecessor carry the register, the consumption is
   the register delta ``cur - prev``, or, if a **replacement** was declared between
   them, ``(old_final - prev) + (cur - new_initial)``. A negative delta (or part) is

   * a **rollover** if the meter's register wraps and ``cur - prev + modulus`` is at
     most the meter's ``max_rollover``;
   * otherwise an **anomaly**: never used. It is flagged (or raised, if configured)
     and the interval falls back to rule 3.
3. Without a usable register delta the reading's own interval ``value`` counts.

Gaps: ``missing = max(seq - prev_seq - 1, (t - prev_t) // interval - 1, 0)`` intervals
are absent before the reading. Missing interval *j* (1..missing) is placed at the
evenly spaced end time ``prev_t + j x (t - prev_t) // (missing + 1)`` and booked in its
own local day and tariff band, with its own flag count, so a gap across a month end
shows in both months:

* **bridged** (``missing_bridged``): a register delta spans the gap; each missing
  interval gets ``delta // (missing + 1)`` (fixed point, 18 decimals, rounded down)
  and the closing reading's interval the rest, so nothing is lost or invented;
* **filled** (``missing_filled``): without a register, each missing interval gets the
  larger of the two neighbouring interval values: of the values the data offers, the
  one that does not understate emissions. It is an estimate, not a bound (a missing
  interval can exceed both neighbours), which is why a total with
  ``missing_filled > 0`` is not clean.

The closing reading's leaf is flagged ``gap`` either way. A sequence jump far beyond
the elapsed time (more than ``2 x elapsed intervals + 16`` numbers) is a broken
counter, not missing readings: it is refused rather than filled with invented ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ReadingOrderError, RegisterAnomalyError
from ..fixed_point import parse, to_decimal
from .model import MeterConfig, MeterReplacement, ReadingPoint

__all__ = [
    "COUNTS", "FLAGS", "SEQ_SLACK", "Interval", "device_intervals", "gap_end_times",
    "register_delta",
]

#: The data-quality counters every total carries, in order.
COUNTS = (
    "measured", "estimated", "manual", "substituted",
    "missing_bridged", "missing_filled", "rollovers", "replacements", "anomalies",
)
#: Sequence numbers a jump may skip beyond twice the elapsed intervals.
SEQ_SLACK = 16
#: The reasons a reading's leaf can be flagged.
FLAGS = ("estimated", "manual", "substituted", "gap", "rollover", "replacement", "anomaly")


@dataclass(frozen=True)
class Interval:
    """The consumption booked for one reading, in the device's unit (fixed point).

    ``amount`` is booked in the reading's own interval; ``gap_shares`` holds
    ``(end time, amount)`` of each missing interval before it, booked at that time
    (bridged if ``missing_bridged``, else filled).
    """

    point: ReadingPoint
    amount: int
    missing_bridged: int = 0
    missing_filled: int = 0
    rollover: bool = False
    replacement: bool = False
    anomaly: bool = False
    gap_shares: tuple[tuple[int, int], ...] = ()


def gap_end_times(prev_t: int, t: int, missing: int) -> list[int]:
    """End times of the ``missing`` intervals between readings at ``prev_t`` and ``t``."""
    return [prev_t + j * (t - prev_t) // (missing + 1) for j in range(1, missing + 1)]


def register_delta(current: int, previous: int, meter: MeterConfig) -> tuple[int | None, bool]:
    """``(delta, rolled_over)``; ``delta`` is ``None`` when the step is an anomaly."""
    delta = current - previous
    if delta >= 0:
        return delta, False
    modulus, limit = meter.modulus, meter.max_rollover
    if modulus is not None and limit is not None and 0 <= delta + modulus <= limit:
        return delta + modulus, True
    return None, False


def device_intervals(
    points: Sequence[ReadingPoint],
    meter: MeterConfig,
    replacements: Mapping[int, MeterReplacement],
    interval_seconds: int,
    *,
    raise_anomalies: bool = False,
) -> list[Interval]:
    """The intervals of one device's readings, ``points`` sorted by ``seq``."""
    out: list[Interval] = []
    swaps = sorted(replacements)
    for i, cur in enumerate(points):
        if i == 0:
            out.append(Interval(cur, cur.value))
            continue
        prev = points[i - 1]
        if cur.measured_at <= prev.measured_at:
            raise ReadingOrderError(
                f"{cur.device}: seq {cur.seq} is not measured after seq {prev.seq}",
                device=cur.device, seq=cur.seq, leaf=cur.leaf)
        elapsed = (cur.measured_at - prev.measured_at) // interval_seconds
        if cur.seq - prev.seq > 2 * elapsed + SEQ_SLACK:
            raise ReadingOrderError(
                f"{cur.device}: seq jumps from {prev.seq} to {cur.seq} in {elapsed} "
                "intervals: a broken counter, not missing readings",
                device=cur.device, seq=cur.seq, leaf=cur.leaf)
        missing = max(cur.seq - prev.seq - 1, elapsed - 1, 0)
        inside = [s for s in swaps if prev.seq < s <= cur.seq]
        swap = replacements[inside[0]] if inside else None
        if len(inside) > 1:
            raise ReadingOrderError(
                f"{cur.device}: two replacements between seq {prev.seq} and {cur.seq}",
                device=cur.device, seq=cur.seq)
        amount: int | None = None
        rolled = False
        if cur.cumulative is not None and prev.cumulative is not None:
            if swap is None:
                amount, rolled = register_delta(cur.cumulative, prev.cumulative, meter)
            else:
                old, r1 = register_delta(parse(swap.old_final), prev.cumulative, meter)
                new, r2 = register_delta(cur.cumulative, parse(swap.new_initial), meter)
                amount = None if old is None or new is None else old + new
                rolled = r1 or r2
            if amount is None and raise_anomalies:
                raise RegisterAnomalyError(
                    f"{cur.device}: register went from {to_decimal(prev.cumulative)} to "
                    f"{to_decimal(cur.cumulative)} (seq {prev.seq} -> {cur.seq}) without a "
                    "rollover "
                    "or declared replacement",
                    device=cur.device, seq=cur.seq, leaf=cur.leaf)
        ends = gap_end_times(prev.measured_at, cur.measured_at, missing)
        if amount is not None:
            share = amount // (missing + 1)
            out.append(Interval(cur, amount - share * missing, missing_bridged=missing,
                                rollover=rolled, replacement=swap is not None,
                                gap_shares=tuple((end, share) for end in ends)))
        else:
            anomaly = cur.cumulative is not None and prev.cumulative is not None
            fill = max(cur.value, prev.value)
            out.append(Interval(cur, cur.value, missing_filled=missing,
                                replacement=swap is not None, anomaly=anomaly,
                                gap_shares=tuple((end, fill) for end in ends)))
    return out
