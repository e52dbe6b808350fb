"""The result: consumption per device, local day and tariff band, and its totals.

:class:`ActivityData` keeps the finest buckets, ``(device, local day, band)``, each
with the exact consumption in the device's own unit and its data-quality counters.
:meth:`ActivityData.totals` rolls them up to a device, site or the enterprise per day,
month, quarter or year (optionally per band).

Conversion rule: a device's consumption over a reported period (and band) is summed
exactly in the device's unit and converted to the target unit once, rounding half up;
site and enterprise totals are exact sums of their devices' converted totals. For kWh
to MWh the conversion is exact, so nothing rounds at all.

The buckets are sorted (device, day, band), so the same readings in any order, through
either path, give identical results; :meth:`ActivityData.canonical` is the JSON-ready
form to compare or hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import ActivityInputError, DuplicateReadingError
from ..fixed_point import Fixed, to_decimal
from .model import ActivityConfig
from .periods import Period, period_label
from .registers import COUNTS, FLAGS
from .units import convert

__all__ = [
    "UNASSIGNED_SITE",
    "ActivityData",
    "Level",
    "LeafRanges",
    "QualityCounts",
    "Totals",
    "leaf_ranges",
]

Level = Literal["device", "site", "enterprise"]
LeafRanges = tuple[tuple[int, int], ...]
"""Inclusive ``(first, last)`` Merkle leaf index ranges, sorted and disjoint."""
UNASSIGNED_SITE = "-"


@dataclass(frozen=True)
class QualityCounts:
    """How the intervals behind a total were obtained.

    ``measured`` .. ``substituted``: intervals by the quality of the closing reading;
    ``missing_bridged``: absent intervals a register delta covered;
    ``missing_filled``: absent intervals filled conservatively (no register);
    ``rollovers``, ``replacements``, ``anomalies``: register events.
    """

    measured: int = 0
    estimated: int = 0
    manual: int = 0
    substituted: int = 0
    missing_bridged: int = 0
    missing_filled: int = 0
    rollovers: int = 0
    replacements: int = 0
    anomalies: int = 0

    @classmethod
    def of(cls, values: Iterable[int]) -> QualityCounts:
        """From values in :data:`~carbon_rules.activity.registers.COUNTS` order."""
        return cls(*(int(v) for v in values))

    @property
    def clean(self) -> bool:
        """True if every interval was measured and nothing was filled or anomalous
        (rollovers are routine and bridged gaps lose nothing, but both still count)."""
        return not (self.estimated or self.manual or self.substituted
                    or self.missing_filled or self.anomalies)

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {name: getattr(self, name) for name in COUNTS}


@dataclass(frozen=True)
class Totals:
    """One rolled-up line: ``amount`` (fixed point) in ``unit`` and its quality."""

    amount: Fixed
    unit: str
    quality: QualityCounts

    @property
    def decimal(self) -> str:
        """``amount`` as an exact decimal string."""
        return to_decimal(self.amount)


def distinct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The sorted distinct ``values`` (a sort, unlike numpy 2's hash-based ``unique``,
    which is several times slower on millions of int64)."""
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def leaf_ranges(leaves: npt.NDArray[np.int64]) -> LeafRanges:
    """Sorted unique ``leaves`` as inclusive ranges."""
    if leaves.size == 0:
        return ()
    ordered = distinct(leaves)
    breaks = np.nonzero(np.diff(ordered) != 1)[0]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [ordered.size - 1]))
    return tuple((int(ordered[s]), int(ordered[e])) for s, e in zip(starts, ends, strict=True))


def merge_ranges(parts: Iterable[LeafRanges]) -> LeafRanges:
    """The union of disjoint range lists; :class:`DuplicateReadingError` on overlap."""
    flat = sorted(r for part in parts for r in part)
    out: list[tuple[int, int]] = []
    for first, last in flat:
        if out and first <= out[-1][1]:
            raise DuplicateReadingError("a Merkle leaf is used twice", leaf=first)
        if out and first == out[-1][1] + 1:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return tuple(out)


class ActivityData:
    """Activity data computed from readings under one :class:`ActivityConfig`."""

    def __init__(
        self,
        config: ActivityConfig,
        devices: Sequence[str],
        units: Sequence[str],
        bands: Sequence[str],
        bucket_device: npt.NDArray[np.int64],
        bucket_day: npt.NDArray[np.int64],
        bucket_band: npt.NDArray[np.int64],
        bucket_amount: npt.NDArray[np.object_],
        bucket_counts: npt.NDArray[np.int64],
        leaves: LeafRanges,
        flagged: dict[str, LeafRanges],
        *,
        quantity: str | None = None,
    ) -> None:
        self.config = config
        self.devices = tuple(devices)
        """Device identifiers, sorted; bucket device codes index this."""
        self.units = tuple(units)
        """Each device's reading unit."""
        self.bands = tuple(bands)
        """Tariff band names, sorted; bucket band codes index this."""
        self.bucket_device = bucket_device
        self.bucket_day = bucket_day
        """Local day of each bucket as a proleptic Gregorian ordinal."""
        self.bucket_band = bucket_band
        self.bucket_amount = bucket_amount
        """Exact consumption per bucket, fixed point in the device's unit (Python ints)."""
        self.bucket_counts = bucket_counts
        """Per bucket, the :data:`COUNTS` counters."""
        self.leaves = leaves
        """Every Merkle leaf whose reading was used."""
        self.flagged = {name: flagged.get(name, ()) for name in FLAGS}
        """Leaves flagged per reason (:data:`FLAGS`)."""
        self.quantity = quantity
        """What the readings measure (``"active_energy"``...), if they said."""

    @property
    def quality(self) -> QualityCounts:
        """The counters over everything."""
        return QualityCounts.of(self.bucket_counts.sum(axis=0) if len(self.bucket_counts)
                                else [0] * len(COUNTS))

    @property
    def reading_count(self) -> int:
        """The number of readings used."""
        return sum(last - first + 1 for first, last in self.leaves)

    def total(self) -> Totals:
        """The enterprise's total over all the readings, in the target unit."""
        lines = self.totals("enterprise", None)
        if not lines:
            empty = QualityCounts()
            return Totals(Fixed(0), self.config.target_unit, empty)
        (line,) = lines.values()
        return line

    def site_of(self, device: str) -> str:
        """The site a device belongs to (:data:`UNASSIGNED_SITE` if not configured)."""
        return self.config.meter(device).site or UNASSIGNED_SITE

    def totals(
        self, level: Level = "enterprise", period: Period | None = "month", *,
        by_band: bool = False,
    ) -> dict[tuple[str, str, str], Totals]:
        """Totals keyed ``(entity, period label, band)``, sorted by key.

        ``entity`` is the device, its site, or ``config.enterprise``; the period label
        is ``"*"`` when ``period`` is None (the whole span), the band ``"*"`` unless
        ``by_band``.
        """
        if level not in ("device", "site", "enterprise"):
            raise ActivityInputError(f"unknown level {level!r}")
        n = len(self.bucket_day)
        if n == 0:
            return {}
        if period is None:
            codes = np.zeros(n, dtype=np.int64)
            labels = ["*"]
        else:
            days = distinct(self.bucket_day)
            inverse = np.searchsorted(days, self.bucket_day)
            day_labels = [period_label(date.fromordinal(int(d)), period) for d in days]
            labels = sorted(set(day_labels))
            index = {label: i for i, label in enumerate(labels)}
            codes = np.asarray([index[x] for x in day_labels], dtype=np.int64)[inverse]
        bands = self.bucket_band if by_band else np.zeros(n, dtype=np.int64)
        order = np.lexsort((bands, codes, self.bucket_device))
        dev, code, band = self.bucket_device[order], codes[order], bands[order]
        change = (np.diff(dev) != 0) | (np.diff(code) != 0) | (np.diff(band) != 0)
        starts = np.concatenate(([0], np.nonzero(change)[0] + 1))
        amounts = np.add.reduceat(self.bucket_amount[order], starts)
        counts = np.add.reduceat(self.bucket_counts[order], starts, axis=0)
        target = self.config.target_unit
        acc: dict[tuple[str, str, str], tuple[int, npt.NDArray[np.int64]]] = {}
        for i, s in enumerate(starts):
            device = self.devices[int(dev[s])]
            entity = (device if level == "device" else self.site_of(device)
                      if level == "site" else self.config.enterprise)
            key = (entity, labels[int(code[s])],
                   self.bands[int(band[s])] if by_band else "*")
            amount = convert(int(amounts[i]), self.units[int(dev[s])], target)
            if key in acc:
                old_amount, old_counts = acc[key]
                acc[key] = (old_amount + amount, old_counts + counts[i])
            else:
                acc[key] = (amount, counts[i])
        return {key: Totals(Fixed(acc[key][0]), target, QualityCounts.of(acc[key][1]))
                for key in sorted(acc)}

    def lines(
        self, level: Level = "enterprise", period: Period | None = "month", *,
        by_band: bool = False,
    ) -> list[dict[str, Any]]:
        """:meth:`totals` as JSON-ready rows (decimal strings, named counters), for
        reports and APIs."""
        return [
            {"entity": entity, "period": label, "band": band, "amount": t.decimal,
             "unit": t.unit, "clean": t.quality.clean, "quality": t.quality.as_dict()}
            for (entity, label, band), t in self.totals(level, period, by_band=by_band).items()
        ]

    def canonical(self) -> dict[str, Any]:
        """Everything, JSON-ready and in a fixed order (compare or hash this)."""
        return {
            "quantity": self.quantity,
            "target_unit": self.config.target_unit,
            "timezone": self.config.timezone,
            "devices": [list(x) for x in zip(self.devices, self.units, strict=True)],
            "bands": list(self.bands),
            "buckets": [
                [self.devices[int(d)], date.fromordinal(int(day)).isoformat(),
                 self.bands[int(b)], to_decimal(int(a)), [int(c) for c in counts]]
                for d, day, b, a, counts in zip(
                    self.bucket_device, self.bucket_day, self.bucket_band,
                    self.bucket_amount, self.bucket_counts, strict=True)
            ],
            "leaves": [list(r) for r in self.leaves],
            "flagged": {k: [list(r) for r in v] for k, v in self.flagged.items()},
        }
