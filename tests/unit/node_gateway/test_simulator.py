"""Meter simulator: deterministic, registers monotonic, deltas equal values, plausible shapes."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_protocol.models import QUANTITY_UNITS
from node_gateway.gateway import DeviceSpec
from node_gateway.simulator import (
    INTERVAL,
    KIND_QUANTITY,
    LINE_TO_NORMAL,
    Measurement,
    MeterSpec,
    Simulator,
    kind_of,
)

METERS = [MeterSpec("86.1000.1/dev.e", "electricity"), MeterSpec("86.1000.1/dev.g", "gas"),
          MeterSpec("86.1000.1/dev.h", "heat"), MeterSpec("86.1000.1/dev.n", "gas_corrected")]
JAN6 = datetime(2025, 1, 6, tzinfo=UTC)  # Monday
JUL7 = datetime(2025, 7, 7, tzinfo=UTC)  # Monday
WIRE_DECIMAL = re.compile(r"^(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,12})?$")


def daily(ms: list[Measurement], device: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for m in ms:
        if m.device_id == device:
            local = m.measured_at - INTERVAL + timedelta(hours=8)
            out[local.strftime("%a")] += Decimal(m.value)
    return out


def test_same_seed_same_measurements_different_seed_different() -> None:
    a = list(Simulator(METERS, seed=7).days(JAN6, 2))
    b = list(Simulator(METERS, seed=7).days(JAN6, 2))
    c = list(Simulator(METERS, seed=8).days(JAN6, 2))
    assert a == b
    assert [m.value for m in a] != [m.value for m in c]
    assert len(a) == 2 * 96 * 4


def test_a_restarted_simulator_regenerates_the_overlap() -> None:
    """Resuming from any point reproduces values *and* registers of a continuous run."""
    full = list(Simulator(METERS, seed=3).readings(JAN6, JAN6 + timedelta(days=3)))
    resumed = list(Simulator(METERS, seed=3).readings(JAN6 + timedelta(hours=37, minutes=7),
                                                      JAN6 + timedelta(days=3)))
    assert resumed == full[-len(resumed):]
    assert resumed[0].measured_at == JAN6 + timedelta(hours=37, minutes=15)


@settings(max_examples=25, deadline=None)
@given(offset=st.integers(min_value=0, max_value=20 * 96), length=st.integers(1, 300))
def test_any_window_matches_the_continuous_series(offset: int, length: int) -> None:
    sim = Simulator(METERS[:1], seed=11)
    start = sim.origin + INTERVAL * offset
    window = list(sim.readings(start, start + INTERVAL * length))
    fresh = Simulator(METERS[:1], seed=11)
    expected = list(fresh.readings(fresh.origin, start + INTERVAL * length))[-length:]
    assert window == expected


def test_registers_grow_and_deltas_equal_values() -> None:
    ms = list(Simulator(METERS, seed=1).days(JAN6, 14))
    by_device: dict[str, list[Measurement]] = defaultdict(list)
    for m in ms:
        by_device[m.device_id].append(m)
    for series in by_device.values():
        last_register: Decimal | None = None
        since = Decimal(0)
        times = [m.measured_at for m in series]
        assert times == sorted(times) and len(set(times)) == len(times)
        for m in series:
            since += Decimal(m.value)
            if m.cumulative is None:
                continue
            register = Decimal(m.cumulative)
            if last_register is not None:
                assert register >= last_register
                assert register - last_register == since
            last_register, since = register, Decimal(0)


def test_wire_format_is_fixed_point_text() -> None:
    for m in Simulator(METERS, seed=2).days(JAN6, 1):
        assert isinstance(m.value, str) and WIRE_DECIMAL.match(m.value)
        assert m.cumulative is None or WIRE_DECIMAL.match(m.cumulative)
        decimals = {"active_energy": 3, "gas_volume": 3, "heat": 4}[m.quantity]
        assert len(m.value.split(".")[1]) == decimals
        assert m.unit in QUANTITY_UNITS[m.quantity]
        assert m.measured_at.tzinfo is UTC and m.measured_at.minute % 15 == 0
        assert m.measured_at.second == 0


def test_range_is_start_exclusive_end_inclusive_and_aligned() -> None:
    sim = Simulator(METERS[:1], seed=0)
    ms = list(sim.readings(JAN6 + timedelta(minutes=5), JAN6 + timedelta(minutes=45)))
    assert [m.measured_at for m in ms] == [JAN6 + timedelta(minutes=15 * k) for k in (1, 2, 3)]
    assert list(sim.readings(JAN6, JAN6)) == []
    with pytest.raises(ValueError, match="before the origin"):
        list(sim.readings(sim.origin - timedelta(days=1), sim.origin))
    with pytest.raises(ValueError, match="timezone-aware"):
        list(sim.readings(datetime(2025, 1, 6), datetime(2025, 1, 7)))


def test_electricity_weekdays_exceed_weekends_and_days_exceed_nights() -> None:
    ms = list(Simulator(METERS, seed=5).days(JAN6 - timedelta(hours=8), 7))
    per_day = daily(ms, "86.1000.1/dev.e")
    weekday = sum(per_day[d] for d in ("Mon", "Tue", "Wed", "Thu", "Fri")) / 5
    weekend = (per_day["Sat"] + per_day["Sun"]) / 2
    assert weekday > Decimal("1.5") * weekend
    monday = [m for m in ms if m.device_id == "86.1000.1/dev.e"][:96]
    local = {(m.measured_at + timedelta(hours=8)).hour: Decimal(m.value) for m in monday}
    assert local[15] > 2 * local[3]  # afternoon shift vs. night base load


def test_heating_drives_heat_and_gas_in_winter_only() -> None:
    sim = Simulator(METERS, seed=9)
    winter = list(sim.days(JAN6, 7))
    summer = list(sim.days(JUL7, 7))

    def total(ms: list[Measurement], device: str) -> Decimal:
        return sum((Decimal(m.value) for m in ms if m.device_id == device), Decimal(0))

    assert total(winter, "86.1000.1/dev.h") > 5 * total(summer, "86.1000.1/dev.h")
    assert total(summer, "86.1000.1/dev.h") > 0  # domestic hot water all year
    assert total(winter, "86.1000.1/dev.g") > 2 * total(summer, "86.1000.1/dev.g")
    assert sim.outdoor_temperature(JAN6 + timedelta(hours=6)) < sim.outdoor_temperature(
        JUL7 + timedelta(hours=6))


def test_estimated_readings_are_rare_and_carry_no_register() -> None:
    ms = list(Simulator(METERS, seed=4).days(Simulator(METERS).origin, 60))
    estimated = [m for m in ms if m.quality == "estimated"]
    assert 0 < len(estimated) < 0.01 * len(ms)
    assert all(m.cumulative is None for m in estimated)
    assert {m.quality for m in ms} == {"measured", "estimated"}


def test_scale_multiplies_consumption() -> None:
    small = list(Simulator([MeterSpec("86.1/dev.e", "electricity")], seed=1).days(JAN6, 1))
    big = list(Simulator([MeterSpec("86.1/dev.e", "electricity", Decimal(10))], seed=1)
               .days(JAN6, 1))
    ratio = sum(Decimal(m.value) for m in big) / sum(Decimal(m.value) for m in small)
    assert Decimal("9.9") < ratio < Decimal("10.1")


def test_corrected_gas_is_the_line_volume_at_normal_conditions_in_nm3() -> None:
    """A ``gas_corrected`` meter reports Nm3 at 0.001 resolution: the same line as a raw
    ``gas`` meter of the same identifier (same noise), times the fixed P/T factor, each
    interval rounded once, and its register is the exact sum of its values."""
    device = "86.1000.1/dev.line-01"
    raw = list(Simulator([MeterSpec(device, "gas")], seed=6).days(JAN6, 2))
    nm3 = list(Simulator([MeterSpec(device, "gas_corrected")], seed=6).days(JAN6, 2))
    assert len(raw) == len(nm3) == 2 * 96
    assert {(m.quantity, m.unit) for m in raw} == {("gas_volume", "m3")}
    assert {(m.quantity, m.unit) for m in nm3} == {("gas_volume", "Nm3")}
    factor = Decimal(str(LINE_TO_NORMAL))
    half = Decimal("0.0005")
    for r, n in zip(raw, nm3, strict=True):
        assert r.measured_at == n.measured_at and r.quality == n.quality
        assert len(n.value.split(".")[1]) == 3
        # raw value is line x within half a unit; Nm3 is line x factor within half a unit
        assert abs(Decimal(n.value) - factor * Decimal(r.value)) <= half + factor * half
    assert sum(Decimal(m.value) for m in nm3) > 4 * sum(Decimal(m.value) for m in raw)
    registers = [(k, Decimal(m.cumulative)) for k, m in enumerate(nm3) if m.cumulative]
    for (i, a), (j, b) in zip(registers, registers[1:], strict=False):
        assert b - a == sum(Decimal(m.value) for m in nm3[i + 1:j + 1])


def test_kinds_map_to_protocol_quantities_and_back() -> None:
    """Both gas kinds measure ``gas_volume``; the unit tells them apart, and a gateway
    provisions each with the quantity and unit its readings carry."""
    assert KIND_QUANTITY["gas_corrected"] == ("gas_volume", "Nm3", Decimal("0.001"))
    assert kind_of("gas_volume", "Nm3") == "gas_corrected"
    assert kind_of("gas_volume", "m3") == "gas"
    assert kind_of("gas_volume", "L") is None
    for kind, (quantity, unit, _) in KIND_QUANTITY.items():
        assert unit in QUANTITY_UNITS[quantity]
        spec = DeviceSpec.for_kind("86.1000.1/dev.x-01", kind, "86.1000.1/site.s")  # type: ignore[arg-type]
        assert (spec.quantity, spec.unit, spec.serial) == (quantity, unit, "dev.x-01")
