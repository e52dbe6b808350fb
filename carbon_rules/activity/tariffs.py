"""Time-of-use (峰谷) tariff schedules given as configuration.

A schedule is a list of ``(start "HH:MM", band)`` entries over a local day: each band
runs from its start to the next entry's start (the last to midnight). The first entry
starts at ``00:00`` so every instant has exactly one band. A band name may recur
(valley at night and again at noon). Without a schedule everything is in the single
band :data:`ALL_DAY`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ActivityInputError

__all__ = ["ALL_DAY", "TariffSchedule"]

ALL_DAY = "all"
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class TariffSchedule:
    """Daily time-of-use bands, e.g. ``TariffSchedule.of([("00:00", "valley"),
    ("08:00", "peak"), ("22:00", "valley")])``."""

    entries: tuple[tuple[int, str], ...]
    """``(minute of the local day the band starts, band name)``, strictly increasing."""

    def __post_init__(self) -> None:
        if not self.entries or self.entries[0][0] != 0:
            raise ActivityInputError("a tariff schedule must start at 00:00")
        minutes = [m for m, _ in self.entries]
        if any(b <= a for a, b in zip(minutes, minutes[1:], strict=False)) or minutes[-1] >= 1440:
            raise ActivityInputError(
                "tariff band starts must increase strictly within one day", starts=minutes)
        for _, band in self.entries:
            if not band or not isinstance(band, str):
                raise ActivityInputError(f"bad tariff band name {band!r}")

    @classmethod
    def of(cls, entries: Sequence[tuple[str, str]]) -> TariffSchedule:
        """A schedule from ``("HH:MM", band)`` pairs."""
        parsed: list[tuple[int, str]] = []
        for start, band in entries:
            match = _HHMM.fullmatch(start)
            if match is None:
                raise ActivityInputError(f"tariff start must be HH:MM, got {start!r}")
            parsed.append((int(match.group(1)) * 60 + int(match.group(2)), band))
        return cls(tuple(parsed))

    @property
    def bands(self) -> tuple[str, ...]:
        """The distinct band names, sorted (the order of band indices)."""
        return tuple(sorted({band for _, band in self.entries}))

    @classmethod
    def all_day(cls) -> TariffSchedule:
        """One band, :data:`ALL_DAY`, for consumers that need no split."""
        return cls(((0, ALL_DAY),))
