"""The per-reading path: readings in, :class:`ActivityData` out, in exact integers.

This is the reference: every rule is written once, per reading, in
:mod:`carbon_rules.activity.registers`. The columnar path
(:mod:`carbon_rules.activity.columnar`) must agree with it bit for bit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from ..errors import DuplicateReadingError, IncompatibleUnitsError
from .aggregate import ActivityData, leaf_ranges
from .model import QUALITIES, ActivityConfig, MeterReplacement, ReadingPoint
from .periods import LocalCalendar
from .registers import COUNTS, device_intervals
from .units import ratio

__all__ = ["check_device_unit", "compute_activity", "one_quantity", "replacements_by_device"]

_QUALITY_COLUMN = {q: COUNTS.index(q) for q in QUALITIES}
_BRIDGED, _FILLED, _ROLL, _SWAP, _ANOMALY = (
    COUNTS.index(n) for n in
    ("missing_bridged", "missing_filled", "rollovers", "replacements", "anomalies"))


def replacements_by_device(
    config: ActivityConfig,
) -> Mapping[str, Mapping[int, MeterReplacement]]:
    """The declared replacements of each device, by first sequence number."""
    out: dict[str, dict[int, MeterReplacement]] = defaultdict(dict)
    for r in config.replacements:
        out[r.device][r.first_seq] = r
    return out


def one_quantity(quantities: Iterable[str | None]) -> str | None:
    """The one quantity the readings measure (None if none says); refuses a mixture."""
    named = sorted({q for q in quantities if q is not None})
    if len(named) > 1:
        raise IncompatibleUnitsError(
            f"readings of different quantities ({', '.join(named)}) cannot be summed; "
            "compute each separately", quantities=named)
    return named[0] if named else None


def check_device_unit(device: str, units: set[str], config: ActivityConfig) -> str:
    """The one unit of ``device``'s readings, convertible to the target unit."""
    if len(units) != 1:
        raise IncompatibleUnitsError(
            f"{device} reports in several units ({', '.join(sorted(units))})",
            device=device, units=sorted(units))
    (unit,) = units
    ratio(unit, config.target_unit)
    return unit


def compute_activity(points: Iterable[ReadingPoint], config: ActivityConfig) -> ActivityData:
    """Activity data from ``points`` (any order), under ``config``."""
    by_device: dict[str, list[ReadingPoint]] = defaultdict(list)
    seen_leaves: set[int] = set()
    for p in points:
        if p.leaf in seen_leaves:
            raise DuplicateReadingError(f"leaf {p.leaf} appears twice", leaf=p.leaf)
        seen_leaves.add(p.leaf)
        by_device[p.device].append(p)
    quantity = one_quantity(p.quantity for rows in by_device.values() for p in rows)
    devices = sorted(by_device)
    units = [check_device_unit(d, {p.unit for p in by_device[d]}, config) for d in devices]
    swaps = replacements_by_device(config)
    bands = config.tariff.bands
    if not devices:
        empty = np.zeros(0, dtype=np.int64)
        return ActivityData(config, [], [], bands, empty, empty, empty,
                            np.zeros(0, dtype=object), np.zeros((0, len(COUNTS)), np.int64),
                            (), {}, quantity=quantity)
    starts = [p.measured_at - config.interval_of(device)
              for device, rows in by_device.items() for p in rows]
    calendar = LocalCalendar(config.timezone, config.tariff, min(starts), max(starts))

    buckets: dict[tuple[int, int, int], list[int]] = {}
    flagged: dict[str, list[int]] = defaultdict(list)
    for code, device in enumerate(devices):
        rows = sorted(by_device[device], key=lambda p: p.seq)
        for a, b in zip(rows, rows[1:], strict=False):
            if a.seq == b.seq:
                raise DuplicateReadingError(
                    f"{device}: seq {a.seq} appears twice (leaves {a.leaf}, {b.leaf})",
                    device=device, seq=a.seq)
        intervals = device_intervals(
            rows, config.meter(device), swaps.get(device, {}), config.interval_of(device),
            raise_anomalies=config.on_anomaly == "error")
        for iv in intervals:
            p = iv.point
            gap_column = 1 + (_BRIDGED if iv.missing_bridged else _FILLED)
            for end, share in iv.gap_shares:
                day, band = calendar.locate(end - config.interval_of(device))
                bucket = buckets.setdefault((code, day, band), [0] * (len(COUNTS) + 1))
                bucket[0] += share
                bucket[gap_column] += 1
            day, band = calendar.locate(p.measured_at - config.interval_of(device))
            counts = buckets.setdefault((code, day, band), [0] * (len(COUNTS) + 1))
            counts[0] += iv.amount
            counts[1 + _QUALITY_COLUMN[p.quality]] += 1
            counts[1 + _ROLL] += iv.rollover
            counts[1 + _SWAP] += iv.replacement
            counts[1 + _ANOMALY] += iv.anomaly
            if p.quality != "measured":
                flagged[p.quality].append(p.leaf)
            if iv.missing_bridged or iv.missing_filled:
                flagged["gap"].append(p.leaf)
            if iv.rollover:
                flagged["rollover"].append(p.leaf)
            if iv.replacement:
                flagged["replacement"].append(p.leaf)
            if iv.anomaly:
                flagged["anomaly"].append(p.leaf)

    keys = sorted(buckets)
    return ActivityData(
        config, devices, units, bands,
        np.asarray([k[0] for k in keys], dtype=np.int64),
        np.asarray([k[1] for k in keys], dtype=np.int64),
        np.asarray([k[2] for k in keys], dtype=np.int64),
        np.asarray([buckets[k][0] for k in keys] + [None], dtype=object)[:-1],
        np.asarray([buckets[k][1:] for k in keys], dtype=np.int64).reshape(-1, len(COUNTS)),
        leaf_ranges(np.fromiter(seen_leaves, dtype=np.int64, count=len(seen_leaves))),
        {k: leaf_ranges(np.asarray(v, dtype=np.int64)) for k, v in flagged.items()},
        quantity=quantity,
    )
