"""The columnar path: the rules of :mod:`~carbon_rules.activity.registers` on numpy arrays.

For tens of millions of readings (an enterprise's year of 15-minute data), per-reading
Python objects are too slow and too big. Here a chunk of readings is a set of columns
(:class:`ReadingColumns`) whose decimal values are int64 scaled by ``10**decimals``
(a meter with 0.001 kWh resolution needs ``decimals=3``). Every step is integer
arithmetic: deltas, rollovers, gap fills and bucket sums are exact, and the bucket
sums are widened to 18-decimal Python ints before unit conversion, so the result is
bit-identical to :func:`carbon_rules.activity.compute_activity` (a property test
checks it on random data with rollovers, gaps and replacements).

Chunks: pass an iterable of :class:`ReadingColumns` to bound memory; each device's
readings must all be in one chunk (its register deltas need its neighbours). Values
that could overflow int64 raise :class:`ColumnarRangeError` before anything is summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import (
    ActivityInputError,
    ColumnarRangeError,
    DuplicateReadingError,
    IncompatibleUnitsError,
    ReadingOrderError,
    RegisterAnomalyError,
)
from ..fixed_point import DECIMALS, parse
from .aggregate import ActivityData, LeafRanges, leaf_ranges, merge_ranges
from .exact import check_device_unit, one_quantity, replacements_by_device
from .model import QUALITIES, ActivityConfig, ReadingPoint
from .periods import LocalCalendar
from .registers import COUNTS, FLAGS, SEQ_SLACK

__all__ = ["ReadingColumns", "compute_activity_columnar"]

I64 = npt.NDArray[np.int64]
_LIMIT = 2**62  # headroom below int64's 2**63 for one more addition


@dataclass(frozen=True, eq=False)
class ReadingColumns:
    """A chunk of readings as columns (one row per reading).

    ``device`` holds codes into ``devices`` (and ``units``, each device's unit);
    ``value`` and ``cumulative`` are scaled by ``10**decimals`` (``cumulative`` is
    ignored where ``has_cumulative`` is false); ``quality`` holds indices into
    :data:`~carbon_rules.activity.QUALITIES`; ``measured_at`` is UTC epoch seconds;
    ``quantity`` is what every row measures, if known.
    """

    decimals: int
    devices: tuple[str, ...]
    units: tuple[str, ...]
    device: npt.NDArray[np.int32]
    seq: I64
    measured_at: I64
    value: I64
    cumulative: I64
    has_cumulative: npt.NDArray[np.bool_]
    quality: npt.NDArray[np.int8]
    leaf: I64
    quantity: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= DECIMALS:
            raise ActivityInputError(f"decimals must be in 0..{DECIMALS}")
        if len(self.devices) != len(self.units) or len(set(self.devices)) != len(self.devices):
            raise ActivityInputError("devices must be distinct, one unit each")
        n = len(self.device)
        columns = (self.seq, self.measured_at, self.value, self.cumulative,
                   self.has_cumulative, self.quality, self.leaf)
        if any(len(c) != n for c in columns):
            raise ActivityInputError("columns differ in length")
        if n == 0:
            return
        if int(self.device.min()) < 0 or int(self.device.max()) >= len(self.devices):
            raise ActivityInputError("device code out of range")
        if int(self.quality.min()) < 0 or int(self.quality.max()) >= len(QUALITIES):
            raise ActivityInputError("quality code out of range")
        if int(self.value.min()) < 0 or int(self.cumulative[self.has_cumulative].min(
                initial=0)) < 0:
            raise ActivityInputError("values and registers must not be negative")
        if int(self.seq.min()) < 1 or int(self.leaf.min()) < 0:
            raise ActivityInputError("seq must be >= 1 and leaf >= 0")
        if max(int(self.value.max()), int(self.cumulative.max())) >= _LIMIT:
            raise ColumnarRangeError("a scaled value exceeds 2**62")

    def __len__(self) -> int:
        return len(self.device)

    @classmethod
    def from_points(cls, points: Sequence[ReadingPoint], decimals: int) -> ReadingColumns:
        """Columns of ``points``; :class:`ColumnarRangeError` if a value has more
        than ``decimals`` places or does not fit."""
        devices = sorted({p.device for p in points})
        code = {d: i for i, d in enumerate(devices)}
        units: dict[str, set[str]] = {d: set() for d in devices}
        for p in points:
            units[p.device].add(p.unit)
        for d, us in units.items():
            if len(us) != 1:
                raise IncompatibleUnitsError(f"{d} reports in several units", device=d)
        step: int = 10 ** (DECIMALS - decimals)

        def scaled(x: int) -> int:
            if x % step:
                raise ColumnarRangeError(
                    f"{x / 10**DECIMALS} has more than {decimals} decimals")
            return x // step

        quality = {q: i for i, q in enumerate(QUALITIES)}
        return cls(
            decimals=decimals,
            devices=tuple(devices),
            units=tuple(next(iter(units[d])) for d in devices),
            device=np.asarray([code[p.device] for p in points], dtype=np.int32),
            seq=np.asarray([p.seq for p in points], dtype=np.int64),
            measured_at=np.asarray([p.measured_at for p in points], dtype=np.int64),
            value=np.asarray([scaled(p.value) for p in points], dtype=np.int64),
            cumulative=np.asarray([0 if p.cumulative is None else scaled(p.cumulative)
                                   for p in points], dtype=np.int64),
            has_cumulative=np.asarray([p.cumulative is not None for p in points], dtype=bool),
            quality=np.asarray([quality[p.quality] for p in points], dtype=np.int8),
            leaf=np.asarray([p.leaf for p in points], dtype=np.int64),
            quantity=one_quantity(p.quantity for p in points),
        )


@dataclass
class _Partial:
    devices: list[str]
    units: list[str]
    device: I64
    day: I64
    band: I64
    amount: npt.NDArray[np.object_]
    counts: I64
    leaves: LeafRanges
    flagged: dict[str, LeafRanges]
    quantity: str | None


def _scaled(value: int, step: int, what: str, *, floor: bool = False) -> int:
    if value % step and not floor:
        raise ColumnarRangeError(f"{what} needs more decimals than the columns carry")
    return value // step


def _meter_arrays(cols: ReadingColumns, config: ActivityConfig, step: int) -> tuple[I64, I64]:
    """Per device code: scaled rollover modulus (-1 if none) and max rollover delta."""
    mods, limits = [], []
    for d in cols.devices:
        meter = config.meter(d)
        mod, limit = meter.modulus, meter.max_rollover
        if mod is None or limit is None:
            mods.append(-1)
            limits.append(-1)
            continue
        mods.append(_scaled(mod, step, f"{d}'s rollover modulus"))
        limits.append(_scaled(limit, step, f"{d}'s max rollover", floor=True))
    if max(mods, default=0) >= _LIMIT:
        raise ColumnarRangeError("rollover modulus too large for int64")
    return np.asarray(mods, dtype=np.int64), np.asarray(limits, dtype=np.int64)


def _delta(cur: int, prev: int, mod: int, limit: int) -> tuple[int | None, bool]:
    delta = cur - prev
    if delta >= 0:
        return delta, False
    if mod >= 0 and 0 <= delta + mod <= limit:
        return delta + mod, True
    return None, False


def _reduce(values: npt.NDArray[Any], starts: I64) -> I64:
    return np.add.reduceat(values.astype(np.int64, copy=False), starts)


def _group(
    dev: I64, day: I64, band: I64, amount: npt.NDArray[Any], counts: I64, *, scale: int = 1,
) -> tuple[I64, I64, I64, npt.NDArray[np.object_], I64]:
    """Sum rows with equal ``(dev, day, band)``, sorted by that key; amounts become
    18-decimal Python ints (``amount x scale``)."""
    order = np.lexsort((band, day, dev))
    dev, day, band = dev[order], day[order], band[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (dev[1:] != dev[:-1]) | (day[1:] != day[:-1]) | (band[1:] != band[:-1])
    starts = np.nonzero(new)[0]
    summed = np.add.reduceat(amount[order], starts).astype(object)
    if scale != 1:
        summed = summed * scale
    return (dev[starts], day[starts], band[starts], summed,
            np.add.reduceat(counts[order], starts, axis=0))


def _gap_contributions(
    dev: I64, t: I64, prev_t: I64, missing: I64, bridged: npt.NDArray[np.bool_],
    amount: I64, fill: I64, step: int,
) -> tuple[I64, I64, npt.NDArray[np.object_], I64]:
    """``(device, end time, 18-decimal amount, counts)`` of each gap-closing row and of
    each missing interval before it (rules in :mod:`~carbon_rules.activity.registers`)."""
    total = amount.astype(object) * step
    share = total // (missing + 1)
    closing = np.where(bridged, total - share * missing, total)
    per_missing = np.where(bridged, share, fill.astype(object) * step)
    rep = np.repeat(np.arange(len(missing)), missing)
    j = np.arange(len(rep)) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    ends = prev_t[rep] + j * (t - prev_t)[rep] // (missing[rep] + 1)
    counts = np.zeros((len(rep) + len(missing), len(COUNTS)), dtype=np.int64)
    counts[: len(rep), COUNTS.index("missing_bridged")] = bridged[rep]
    counts[: len(rep), COUNTS.index("missing_filled")] = ~bridged[rep]
    return (np.concatenate((dev[rep], dev)), np.concatenate((ends, t)),
            np.concatenate((per_missing[rep], closing)), counts)


def _chunk(cols: ReadingColumns, config: ActivityConfig) -> _Partial | None:
    n = len(cols)
    if n == 0:
        return None
    step: int = 10 ** (DECIMALS - cols.decimals)
    for d, unit in zip(cols.devices, cols.units, strict=True):
        check_device_unit(d, {unit}, config)
    order = np.lexsort((cols.seq, cols.device))
    dev = cols.device[order].astype(np.int64)
    seq, t = cols.seq[order], cols.measured_at[order]
    value, cum = cols.value[order], cols.cumulative[order]
    has_cum, quality, leaf = cols.has_cumulative[order], cols.quality[order], cols.leaf[order]
    del order

    cont = np.zeros(n, dtype=bool)
    cont[1:] = dev[1:] == dev[:-1]
    if np.any(cont[1:] & (seq[1:] == seq[:-1])):
        i = int(np.nonzero(cont[1:] & (seq[1:] == seq[:-1]))[0][0]) + 1
        raise DuplicateReadingError(f"{cols.devices[dev[i]]}: seq {seq[i]} appears twice",
                                    device=cols.devices[dev[i]], seq=int(seq[i]))
    if np.any(cont[1:] & (t[1:] <= t[:-1])):
        i = int(np.nonzero(cont[1:] & (t[1:] <= t[:-1]))[0][0]) + 1
        raise ReadingOrderError(
            f"{cols.devices[dev[i]]}: seq {seq[i]} is not measured after seq {seq[i - 1]}",
            device=cols.devices[dev[i]], seq=int(seq[i]), leaf=int(leaf[i]))

    # gaps: missing intervals before each reading (0 for a device's first reading)
    missing = np.zeros(n, dtype=np.int64)
    intervals = np.asarray([config.interval_of(d) for d in cols.devices], dtype=np.int64)
    interval = intervals[dev]
    elapsed = (t[1:] - t[:-1]) // interval[1:]
    jump = cont[1:] & (seq[1:] - seq[:-1] > 2 * elapsed + SEQ_SLACK)
    if jump.any():
        i = int(np.nonzero(jump)[0][0]) + 1
        raise ReadingOrderError(
            f"{cols.devices[dev[i]]}: seq jumps from {seq[i - 1]} to {seq[i]} in "
            f"{elapsed[i - 1]} intervals: a broken counter, not missing readings",
            device=cols.devices[dev[i]], seq=int(seq[i]), leaf=int(leaf[i]))
    gap = np.maximum(seq[1:] - seq[:-1] - 1, elapsed - 1)
    missing[1:] = np.where(cont[1:], np.maximum(gap, 0), 0)
    del gap, elapsed, jump
    prev_value = np.empty_like(value)
    prev_value[0] = 0
    prev_value[1:] = value[:-1]

    # register deltas, rollovers, anomalies
    both = cont.copy()
    both[1:] &= has_cum[1:] & has_cum[:-1]
    delta = np.zeros(n, dtype=np.int64)
    delta[1:] = cum[1:] - cum[:-1]
    mods, limits = _meter_arrays(cols, config, step)
    mod, limit = mods[dev], limits[dev]
    wrapped = delta + mod
    negative = both & (delta < 0)
    roll = negative & (mod >= 0) & (wrapped >= 0) & (wrapped <= limit)
    anomaly = negative & ~roll
    register = np.where(roll, wrapped, delta)
    del wrapped, mod, limit

    # declared replacements: few, so row by row
    swap = np.zeros(n, dtype=bool)
    swaps = replacements_by_device(config)
    bounds = np.searchsorted(dev, np.arange(len(cols.devices) + 1), side="left")
    for code, device in enumerate(cols.devices):
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        for first_seq, r in sorted(swaps.get(device, {}).items()):
            i = lo + int(np.searchsorted(seq[lo:hi], first_seq, side="left"))
            if not lo < i < hi:
                continue
            if swap[i]:
                raise ReadingOrderError(
                    f"{device}: two replacements between seq {seq[i - 1]} and {seq[i]}",
                    device=device, seq=int(seq[i]))
            swap[i] = True
            if not both[i]:
                continue
            old_final = _scaled(parse(r.old_final), step, "a replacement's old_final")
            new_initial = _scaled(parse(r.new_initial), step, "a replacement's new_initial")
            m, lim = int(mods[code]), int(limits[code])
            old, r1 = _delta(old_final, int(cum[i - 1]), m, lim)
            new, r2 = _delta(int(cum[i]), new_initial, m, lim)
            ok = old is not None and new is not None
            register[i] = (old or 0) + (new or 0) if ok else 0
            anomaly[i] = not ok
            roll[i] = ok and (r1 or r2)
    if config.on_anomaly == "error" and anomaly.any():
        i = int(np.nonzero(anomaly)[0][0])
        raise RegisterAnomalyError(
            f"{cols.devices[dev[i]]}: register went backwards at seq {seq[i]} without a "
            "rollover or declared replacement",
            device=cols.devices[dev[i]], seq=int(seq[i]), leaf=int(leaf[i]))

    use_register = both & ~anomaly
    amount = np.where(use_register, register, value)
    roll &= use_register
    del register, delta, both
    # Rows closing a gap book their amount, and each missing interval its share, at
    # 18 decimals through _gap_contributions; their own int64 amount becomes 0.
    gap_rows = np.nonzero(missing)[0]
    extra = _gap_contributions(
        dev[gap_rows], t[gap_rows], t[gap_rows - 1], missing[gap_rows],
        use_register[gap_rows], amount[gap_rows], np.maximum(value, prev_value)[gap_rows],
        step)
    amount[gap_rows] = 0
    del prev_value
    if int(amount.max()) >= _LIMIT // max(n, 1):
        raise ColumnarRangeError("bucket sums could exceed int64; use smaller chunks")

    # buckets: rows are sorted by device then time, so equal keys form runs
    starts_t = t - interval
    del interval
    calendar = LocalCalendar(config.timezone, config.tariff, int(starts_t.min()),
                             int(starts_t.max()))
    day, band = calendar.locate_many(starts_t)
    del starts_t
    band64 = band.astype(np.int64)
    change = np.ones(n, dtype=bool)
    change[1:] = (dev[1:] != dev[:-1]) | (day[1:] != day[:-1]) | (band64[1:] != band64[:-1])
    runs = np.nonzero(change)[0]
    del change
    none = np.zeros(len(runs), dtype=np.int64)
    run_counts = np.stack(
        [_reduce(quality == q, runs) for q in range(len(QUALITIES))]
        + [none, none] + [_reduce(x, runs) for x in (roll, swap, anomaly)], axis=1)
    keys = (dev[runs], day[runs], band64[runs])
    g_dev, g_day, g_band, amounts, counts = _group(
        *keys, _reduce(amount, runs), run_counts, scale=step)
    if len(extra[0]):
        e_dev, e_end, e_amount, e_counts = extra
        e_day, e_band = calendar.locate_many(e_end - intervals[e_dev])
        g_dev, g_day, g_band, amounts, counts = _group(
            np.concatenate((g_dev, e_dev)), np.concatenate((g_day, e_day)),
            np.concatenate((g_band, e_band.astype(np.int64))),
            np.concatenate((amounts, e_amount)), np.concatenate((counts, e_counts)))

    flags = {"gap": missing > 0, "rollover": roll, "replacement": swap,
             "anomaly": anomaly}
    for q in ("estimated", "manual", "substituted"):
        flags[q] = quality == QUALITIES.index(q)
    used = dev[np.nonzero(np.diff(dev, prepend=-1))[0]]  # dev is sorted
    leaves = leaf_ranges(leaf)
    if sum(b - a + 1 for a, b in leaves) != n:
        raise DuplicateReadingError("a Merkle leaf appears twice in one chunk")
    return _Partial(
        devices=[cols.devices[int(c)] for c in used],
        units=[cols.units[int(c)] for c in used],
        device=np.searchsorted(used, g_dev).astype(np.int64),
        day=g_day.astype(np.int64),
        band=g_band,
        amount=amounts,
        counts=counts.astype(np.int64),
        leaves=leaves,
        flagged={name: leaf_ranges(leaf[mask]) for name, mask in flags.items()},
        quantity=cols.quantity,
    )


def compute_activity_columnar(
    chunks: ReadingColumns | Iterable[ReadingColumns], config: ActivityConfig
) -> ActivityData:
    """Activity data from columns, bit-identical to
    :func:`~carbon_rules.activity.compute_activity` on the same readings."""
    parts: list[_Partial] = []
    quantities: set[str | None] = set()
    for cols in [chunks] if isinstance(chunks, ReadingColumns) else chunks:
        part = _chunk(cols, config)
        if part is not None:
            parts.append(part)
            quantities.add(part.quantity)
    quantity = one_quantity(quantities)
    names = [d for p in parts for d in p.devices]
    if len(set(names)) != len(names):
        raise ActivityInputError("a device's readings are split across chunks")
    devices = sorted(names)
    code = {d: i for i, d in enumerate(devices)}
    unit_of = {d: u for p in parts for d, u in zip(p.devices, p.units, strict=True)}
    bands = config.tariff.bands
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return ActivityData(config, [], [], bands, empty, empty, empty,
                            np.zeros(0, dtype=object), np.zeros((0, len(COUNTS)), np.int64),
                            (), {}, quantity=quantity)
    dev = np.concatenate([np.asarray([code[d] for d in p.devices], dtype=np.int64)[p.device]
                          for p in parts])
    day = np.concatenate([p.day for p in parts])
    band = np.concatenate([p.band for p in parts])
    order = np.lexsort((band, day, dev))
    return ActivityData(
        config, devices, [unit_of[d] for d in devices], bands,
        dev[order], day[order], band[order],
        np.concatenate([p.amount for p in parts])[order],
        np.concatenate([p.counts for p in parts])[order],
        merge_ranges(p.leaves for p in parts),
        {name: merge_ranges(p.flagged[name] for p in parts) for name in FLAGS},
        quantity=quantity,
    )

