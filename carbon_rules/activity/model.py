"""The inputs of the activity-data computation: readings and configuration.

A :class:`ReadingPoint` is the part of a signed reading that activity data needs, plus
the Merkle leaf index it was logged at, so a result can say exactly which leaves it
used. Decimal inputs are fixed point (:mod:`carbon_rules.fixed_point`, 18 decimals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from carbon_protocol.models import Reading, parse_utc

from ..errors import ActivityInputError
from ..fixed_point import Fixed, parse
from .periods import DEFAULT_TIMEZONE, zone
from .tariffs import TariffSchedule
from .units import dimension

__all__ = [
    "QUALITIES",
    "ActivityConfig",
    "MeterConfig",
    "MeterReplacement",
    "Quality",
    "ReadingPoint",
]

Quality = Literal["measured", "estimated", "manual", "substituted"]
#: Reading qualities in code order (the columnar path stores the index).
QUALITIES: tuple[Quality, ...] = ("measured", "estimated", "manual", "substituted")


@dataclass(frozen=True)
class ReadingPoint:
    """One reading as activity data sees it.

    ``value`` is the consumption of the interval that ends at ``measured_at`` (epoch
    seconds, UTC); ``cumulative`` the register after it, if the meter has one.
    ``quantity`` (the protocol's, e.g. ``"active_energy"``) keeps heat in kWh from
    being summed with electricity in kWh: one computation takes one quantity.
    """

    leaf: int
    device: str
    seq: int
    measured_at: int
    unit: str
    value: Fixed
    cumulative: Fixed | None
    quality: Quality
    quantity: str | None = None

    def __post_init__(self) -> None:
        if self.leaf < 0 or self.seq < 1:
            raise ActivityInputError(
                "leaf must be >= 0 and seq >= 1", leaf=self.leaf, seq=self.seq)
        if self.quality not in QUALITIES:
            raise ActivityInputError(f"unknown reading quality {self.quality!r}")
        dimension(self.unit)

    @classmethod
    def from_reading(cls, reading: Reading, leaf: int) -> ReadingPoint:
        """The point of a (verified) protocol reading logged at Merkle leaf ``leaf``."""
        return cls(
            leaf=leaf,
            device=reading.device,
            seq=reading.seq,
            measured_at=int(parse_utc(reading.measured_at).timestamp()),
            unit=reading.unit,
            value=parse(reading.value),
            cumulative=None if reading.cumulative is None else parse(reading.cumulative),
            quality=reading.quality,
            quantity=reading.quantity,
        )


@dataclass(frozen=True)
class MeterConfig:
    """How to read one meter's register, and where the meter is.

    ``rollover_modulus`` is the count at which the register returns to zero (a
    register showing at most 99,999,999.9 has modulus ``"100000000"``). A backwards
    step is taken as a rollover only if the wrapped delta is at most
    ``max_rollover_delta`` (default: 1 % of the modulus); anything else is an anomaly.
    ``interval_seconds`` overrides the configuration's metering interval for this meter
    (an hourly meter among quarter-hourly ones).
    """

    site: str | None = None
    rollover_modulus: str | None = None
    max_rollover_delta: str | None = None
    interval_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.interval_seconds is not None and self.interval_seconds < 1:
            raise ActivityInputError("a meter's interval_seconds must be positive")

    @property
    def modulus(self) -> Fixed | None:
        """The rollover modulus in fixed point, if the register wraps."""
        return None if self.rollover_modulus is None else parse(self.rollover_modulus)

    @property
    def max_rollover(self) -> Fixed | None:
        """The largest delta accepted across a rollover, in fixed point."""
        modulus = self.modulus
        if modulus is None:
            return None
        if self.max_rollover_delta is not None:
            return parse(self.max_rollover_delta)
        return Fixed(modulus // 100)


@dataclass(frozen=True)
class MeterReplacement:
    """A declared meter (or register) replacement.

    Readings of ``device`` from ``first_seq`` on come from the new register, which
    started at ``new_initial``; the old register ended at ``old_final``. The interval
    across the swap consumed ``(old_final - previous) + (current - new_initial)``.
    """

    device: str
    first_seq: int
    old_final: str
    new_initial: str

    def __post_init__(self) -> None:
        if self.first_seq < 2:
            raise ActivityInputError("a replacement's first_seq must be >= 2",
                                     device=self.device, first_seq=self.first_seq)
        parse(self.old_final)
        parse(self.new_initial)


@dataclass(frozen=True)
class ActivityConfig:
    """Everything besides the readings that the result depends on.

    ``target_unit``: the unit the formula wants (MWh for purchased electricity, case 18).
    ``timezone``: local periods and tariff bands. ``interval_seconds``: the metering
    interval (gaps are measured in it). ``on_anomaly``: ``"flag"`` marks a backwards
    register and falls back to the interval value; ``"error"`` raises.
    """

    target_unit: str = "MWh"
    timezone: str = DEFAULT_TIMEZONE
    interval_seconds: int = 900
    tariff: TariffSchedule = field(default_factory=TariffSchedule.all_day)
    meters: Mapping[str, MeterConfig] = field(default_factory=lambda: MappingProxyType({}))
    default_meter: MeterConfig = field(default_factory=MeterConfig)
    replacements: tuple[MeterReplacement, ...] = ()
    enterprise: str = "*"
    on_anomaly: Literal["flag", "error"] = "flag"

    def __post_init__(self) -> None:
        dimension(self.target_unit)
        zone(self.timezone)
        if self.interval_seconds < 1:
            raise ActivityInputError("interval_seconds must be positive")
        if self.on_anomaly not in ("flag", "error"):
            raise ActivityInputError(
                f"on_anomaly must be 'flag' or 'error', got {self.on_anomaly!r}")
        seen: set[tuple[str, int]] = set()
        for r in self.replacements:
            if (r.device, r.first_seq) in seen:
                raise ActivityInputError("replacement declared twice",
                                         device=r.device, first_seq=r.first_seq)
            seen.add((r.device, r.first_seq))

    def meter(self, device: str) -> MeterConfig:
        """The configuration of ``device`` (the default if it has none of its own)."""
        return self.meters.get(device, self.default_meter)

    def interval_of(self, device: str) -> int:
        """``device``'s metering interval in seconds."""
        return self.meter(device).interval_seconds or self.interval_seconds
