"""Which local day and tariff band an instant falls in, and period labels.

A Chinese enterprise's month is a local month, so periods are computed in a configured
time zone (default ``Asia/Shanghai``). :class:`LocalCalendar` precomputes, for the span
of the data, the UTC instants at which a local day or a tariff band starts (from
:mod:`zoneinfo`, so zones with daylight saving work too); locating an instant is then
one binary search. The per-reading path (:mod:`bisect`) and the columnar path
(:func:`numpy.searchsorted`) share these edges, so they cannot disagree on a boundary.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from ..errors import ActivityInputError
from .tariffs import TariffSchedule

__all__ = ["DEFAULT_TIMEZONE", "PERIODS", "LocalCalendar", "Period", "period_label", "zone"]

DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The longest span of local days one computation covers (about 100 years).
MAX_SPAN_DAYS = 36_600
Period = Literal["day", "month", "quarter", "year"]
PERIODS: tuple[Period, ...] = ("day", "month", "quarter", "year")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`ActivityInputError` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ActivityInputError(f"unknown time zone {name!r}", timezone=name) from None


def period_label(day: date, period: Period) -> str:
    """``2026-01-31``, ``2026-01``, ``2026-Q1`` or ``2026`` for the local ``day``."""
    if period == "day":
        return day.isoformat()
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return f"{day.year:04d}"
    raise ActivityInputError(f"unknown period {period!r}; choose from {', '.join(PERIODS)}")


class LocalCalendar:
    """Day and band edges covering the UTC instants ``[first, last]`` (epoch seconds)."""

    def __init__(self, timezone: str, tariff: TariffSchedule, first: int, last: int) -> None:
        tz = zone(timezone)
        band_index = {band: i for i, band in enumerate(tariff.bands)}
        start_day = datetime.fromtimestamp(first, tz).date() - timedelta(days=1)
        end_day = datetime.fromtimestamp(last, tz).date() + timedelta(days=1)
        if (end_day - start_day).days > MAX_SPAN_DAYS:
            raise ActivityInputError(
                f"readings span {start_day} to {end_day}, more than {MAX_SPAN_DAYS} days: "
                "a clock is wrong, or the computation should be split",
                first=first, last=last)
        edges: list[int] = []
        days: list[int] = []
        bands: list[int] = []
        day = start_day
        while day <= end_day:
            for minute, band in tariff.entries:
                local = datetime(day.year, day.month, day.day, minute // 60, minute % 60,
                                 tzinfo=tz)
                edges.append(int(local.timestamp()))
                days.append(day.toordinal())
                bands.append(band_index[band])
            day += timedelta(days=1)
        if any(b < a for a, b in zip(edges, edges[1:], strict=False)):
            raise ActivityInputError(f"time zone {timezone!r} gives non-monotonic day edges")
        self.edges = edges
        self.days = days
        self.bands = bands
        self._edges = np.asarray(edges, dtype=np.int64)
        self._days = np.asarray(days, dtype=np.int64)
        self._bands = np.asarray(bands, dtype=np.int16)

    def locate(self, instant: int) -> tuple[int, int]:
        """``(local day ordinal, band index)`` of the UTC epoch second ``instant``."""
        pos = bisect.bisect_right(self.edges, instant) - 1
        return self.days[pos], self.bands[pos]

    def locate_many(
        self, instants: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int16]]:
        """:meth:`locate` for an array of instants."""
        pos = np.searchsorted(self._edges, instants, side="right") - 1
        return self._days[pos], self._bands[pos]
