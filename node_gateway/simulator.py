"""Realistic 15-minute meter profiles, deterministic from a seed.

Four kinds of meter, each with a cumulative register that only grows:

``electricity``  active energy in kWh. A two-shift industrial load: a night base
                 load, a ramp at 06:00, full load 08:00-20:00 with a lunch dip on
                 weekdays, a reduced skeleton shift at weekends, multiplicative noise.
``gas``          natural gas in m3. Process gas during shifts plus space heating that
                 follows the heating-degree value ``max(0, 18 °C - outdoor)`` in the
                 heating season (15 November to 15 March, as in northern China).
``gas_corrected`` the same natural gas line behind an electronic volume corrector
                 (体积修正仪), which reports the volume converted to normal conditions, in
                 Nm3: the ``gas`` profile times :data:`LINE_TO_NORMAL`.
``heat``         district heat in GJ. Proportional to heating degrees in the season,
                 with a small domestic-hot-water load all year.

Why a corrected kind: a line meter counts m3 at the pressure and temperature in the pipe,
and the same m3 holds about five times more gas at 0.4 MPa than at atmospheric pressure,
so inventories refuse ``gas`` (m3) rather than guess a correction. Meters that bill or
report industrial gas in China carry a PTZ volume corrector that measures line pressure
and temperature and reports Nm3; ``gas_corrected`` is that meter, and inventories account
its Nm3 as fuel combustion. The methodology's natural-gas factors
(``carbon_rules/data/factors/cn-ndrc-fuels.json``: ``ncv.natural_gas`` 389.31 GJ per
10^4 Nm3, from the NDRC 2015 enterprise GHG accounting guidelines) are per normal cubic
metre, the "N" meaning the normal state of 0 °C (273.15 K) and 101.325 kPa, so the
simulated corrector converts to that base. Chinese gas trade often quotes volumes at
20 °C and 101.325 kPa instead (7.3 % more volume for the same gas): a corrector set to
that base would overstate emissions by as much, which is worth checking on a real site.
The simulated line runs at a fixed 0.4 MPa gauge and 15 °C, compressibility factor 0.99::

    LINE_TO_NORMAL = (400 + 101.325) / 101.325 x 273.15 / 288.15 / 0.99 = 4.74 (used: 4.7)

A real corrector measures P and T every interval; the fixed factor keeps the profile a
pure function of the seed, and the exactness below holds for Nm3 as for every kind.

Outdoor temperature is a seasonal sinusoid (coldest mid-January) plus a daily cycle
(warmest at 15:00) plus a per-day weather anomaly, shared by all meters of a simulator.

Determinism: every interval value is a pure function of ``(seed, device, day)``; the
register at any time is the device's initial reading plus the sum of all interval
values since :attr:`Simulator.origin`. A simulator restarted with the same seed and
origin regenerates the same measurements for any time range, which is what makes
re-running a simulation after a crash a no-op in the outbox.

Each interval value is rounded once to the meter's fixed resolution (0.001 kWh,
0.001 m3 or Nm3, 0.0001 GJ) and from then on handled as an integer count of that resolution,
so registers are exact sums: the register delta between two readings equals the sum
of the interval values between them, to the last digit. On the wire values are
fixed-point decimal strings made with :class:`decimal.Decimal`, never floats. About
one reading in 500 is flagged ``estimated`` (a gap filled by the meter's estimate:
the value is given, the register is not read, ``cumulative`` is ``None``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal, NamedTuple

from carbon_protocol.models import Quality, Quantity

__all__ = [
    "INTERVAL",
    "LINE_TO_NORMAL",
    "MeterKind",
    "MeterSpec",
    "Measurement",
    "Simulator",
    "KIND_QUANTITY",
    "kind_of",
]

INTERVAL = timedelta(minutes=15)
SLOTS_PER_DAY = 96
DEFAULT_ORIGIN = datetime(2025, 1, 1, tzinfo=UTC)
ESTIMATED_RATE = 0.002

LINE_TO_NORMAL = 4.7
"""Nm3 (0 °C, 101.325 kPa) per m3 of the simulated line (0.4 MPa gauge, 15 °C, Z 0.99)."""

MeterKind = Literal["electricity", "gas", "gas_corrected", "heat"]

KIND_QUANTITY: dict[str, tuple[Quantity, str, Decimal]] = {
    "electricity": ("active_energy", "kWh", Decimal("0.001")),
    "gas": ("gas_volume", "m3", Decimal("0.001")),
    "gas_corrected": ("gas_volume", "Nm3", Decimal("0.001")),
    "heat": ("heat", "GJ", Decimal("0.0001")),
}
"""Meter kind -> (quantity, unit, resolution of values and register)."""


def kind_of(quantity: str, unit: str) -> MeterKind | None:
    """The simulator kind that produces ``quantity`` in ``unit``, if any."""
    for kind, (q, u, _) in KIND_QUANTITY.items():
        if (q, u) == (quantity, unit):
            return kind  # type: ignore[return-value]
    return None


class Measurement(NamedTuple):
    """One interval measurement, as a meter or a CSV file delivers it (not yet signed)."""

    device_id: str
    measured_at: datetime
    """End of the 15-minute interval, aware UTC."""
    quantity: Quantity
    unit: str
    value: str
    cumulative: str | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """A simulated meter: its identifier, its kind, and a size factor for its site."""

    device_id: str
    kind: MeterKind
    scale: Decimal = Decimal(1)


def _in_heating_season(day: date) -> bool:
    return (day.month, day.day) >= (11, 15) or (day.month, day.day) <= (3, 15)


class Simulator:
    """Generates measurements for a fleet of meters, deterministically from ``seed``."""

    def __init__(self, meters: Iterable[MeterSpec], *, seed: int = 0,
                 origin: datetime = DEFAULT_ORIGIN) -> None:
        if origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        self.meters = list(meters)
        self.seed = seed
        self.origin = origin.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self._day_cache: dict[tuple[str, int], list[int]] = {}
        self._register_cache: dict[str, tuple[int, int]] = {}
        self._anomaly_cache: dict[int, float] = {}

    # -- weather -------------------------------------------------------------------
    def _anomaly(self, day_number: int) -> float:
        cached = self._anomaly_cache.get(day_number)
        if cached is None:
            cached = random.Random(f"{self.seed}|weather|{day_number}").gauss(0.0, 3.0)
            self._anomaly_cache[day_number] = cached
        return cached

    def _temperature(self, day_number: int, doy: int, local_hour: float) -> float:
        seasonal = 12.0 - 14.0 * math.cos(2 * math.pi * (doy - 15) / 365.25)
        daily = 5.0 * math.cos(2 * math.pi * (local_hour - 15) / 24)
        return seasonal + daily + self._anomaly(day_number)

    def outdoor_temperature(self, moment: datetime) -> float:
        """Outdoor air temperature in °C at ``moment`` (seasonal + daily + anomaly)."""
        moment = moment.astimezone(UTC)
        local_hour = (moment.hour + moment.minute / 60 + 8) % 24  # China Standard Time
        return self._temperature(self._day_number(moment), moment.timetuple().tm_yday,
                                 local_hour)

    # -- one day of one meter --------------------------------------------------------
    def _day_number(self, moment: datetime) -> int:
        return (moment - self.origin) // timedelta(days=1)

    def _day_units(self, meter: MeterSpec, day_number: int) -> list[int]:
        """The 96 interval values of ``meter`` on UTC day ``day_number`` after the origin,
        as integer multiples of the meter kind's resolution (exact to sum)."""
        key = (meter.device_id, day_number)
        cached = self._day_cache.get(key)
        if cached is not None:
            return cached
        rng = random.Random(f"{self.seed}|{meter.device_id}|{day_number}")
        utc_day = (self.origin + timedelta(days=day_number)).date()
        doy = utc_day.timetuple().tm_yday
        per_unit = float(1 / KIND_QUANTITY[meter.kind][2]) * float(meter.scale)
        # Local time is UTC+8 (China Standard Time, no DST): the local date changes
        # at 16:00 UTC, i.e. after slot 63.
        local_days = (utc_day, utc_day + timedelta(days=1))
        weekend = tuple(d.weekday() >= 5 for d in local_days)
        heating = tuple(_in_heating_season(d) for d in local_days)
        units = []
        for slot in range(SLOTS_PER_DAY):
            hour = slot * 0.25 + 0.125 + 8.0
            nxt = hour >= 24.0
            if nxt:
                hour -= 24.0
            noise = rng.gauss(1.0, 0.05)
            if meter.kind == "electricity":
                raw = _shift_load(hour, weekend[nxt]) * 0.25 * noise
            else:
                degrees = 0.0
                if heating[nxt]:
                    degrees = max(0.0, 18.0 - self._temperature(day_number, doy, hour))
                if meter.kind in ("gas", "gas_corrected"):
                    process = 0.0 if weekend[nxt] else (9.0 if 8 <= hour < 20 else 1.5)
                    raw = (process + 0.9 * degrees) * noise  # line m3 per 15 min
                    if meter.kind == "gas_corrected":
                        raw *= LINE_TO_NORMAL  # Nm3 per 15 min
                else:  # heat, GJ: building UA of ~0.06 GJ/h/K plus domestic hot water
                    hot_water = 0.02 + (0.03 if 6 <= hour < 9 or 18 <= hour < 22 else 0.0)
                    raw = (0.015 * degrees + hot_water) * noise
            units.append(max(0, round(raw * per_unit)))
        if len(self._day_cache) > 20_000:
            self._day_cache.clear()
        self._day_cache[key] = units
        return units

    # -- registers -------------------------------------------------------------------
    def _initial_register(self, meter: MeterSpec) -> int:
        rng = random.Random(f"{self.seed}|{meter.device_id}|initial")
        return rng.randrange(10_000, 900_000) * int(1 / KIND_QUANTITY[meter.kind][2])

    def _register_at_day(self, meter: MeterSpec, day_number: int) -> int:
        """The register (in resolution units) at the start of day ``day_number``."""
        if day_number < 0:
            raise ValueError(f"cannot simulate before the origin {self.origin:%Y-%m-%d}")
        done, register = self._register_cache.get(meter.device_id, (0, -1))
        if register < 0 or done > day_number:
            done, register = 0, self._initial_register(meter)
        for d in range(done, day_number):
            register += sum(self._day_units(meter, d))
        self._register_cache[meter.device_id] = (day_number, register)
        return register

    # -- public API ------------------------------------------------------------------
    def readings(self, start: datetime, end: datetime) -> Iterator[Measurement]:
        """Every measurement whose interval ends in ``(start, end]``, in time order.

        Interval ends are aligned to 15-minute boundaries; times are UTC. Measurements
        at the same time come in the order the meters were given.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if start < self.origin:
            raise ValueError(f"cannot simulate before the origin {self.origin.isoformat()}")
        first = self.origin + INTERVAL * ((start - self.origin) // INTERVAL + 1)
        if first > end:
            return
        registers: dict[str, int] = {}
        for meter in self.meters:
            day = self._day_number(first - INTERVAL)
            reg = self._register_at_day(meter, day)
            day_start = self.origin + timedelta(days=day)
            slot0 = (first - INTERVAL - day_start) // INTERVAL
            registers[meter.device_id] = reg + sum(self._day_units(meter, day)[:slot0])
        moment = first
        while moment <= end:
            begin = moment - INTERVAL
            day = self._day_number(begin)
            slot = (begin - (self.origin + timedelta(days=day))) // INTERVAL
            for meter in self.meters:
                quantity, unit, resolution = KIND_QUANTITY[meter.kind]
                value = self._day_units(meter, day)[slot]
                reg = registers[meter.device_id] + value
                registers[meter.device_id] = reg
                flag = random.Random(
                    f"{self.seed}|{meter.device_id}|q|{day}|{slot}").random()
                estimated = flag < ESTIMATED_RATE
                yield Measurement(
                    device_id=meter.device_id,
                    measured_at=moment,
                    quantity=quantity,
                    unit=unit,
                    value=_text(value, resolution),
                    cumulative=None if estimated else _text(reg, resolution),
                    quality="estimated" if estimated else "measured",
                )
            moment += INTERVAL

    def days(self, start: datetime, days: int) -> Iterator[Measurement]:
        """Measurements for ``days`` whole days from ``start``."""
        return self.readings(start, start + timedelta(days=days))


def _shift_load(hour: float, weekend: bool) -> float:
    """Site electrical demand in kW at local ``hour`` (two shifts on weekdays)."""
    base = 60.0
    if weekend:
        return base + (40.0 if 8 <= hour < 18 else 0.0)
    if hour < 6 or hour >= 22:
        return base
    if hour < 8:
        return base + 160.0 * (hour - 6) / 2  # morning ramp-up
    if 12 <= hour < 13:
        return base + 110.0  # lunch dip
    if hour < 20:
        return base + 160.0
    return base + 160.0 * (22 - hour) / 2  # evening ramp-down


def _text(units: int, resolution: Decimal) -> str:
    """``units`` multiples of ``resolution`` as fixed-point text, e.g. ``12.340``."""
    return format((Decimal(units) * resolution).quantize(resolution), "f")
