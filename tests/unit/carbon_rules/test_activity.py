"""Activity data from readings: worked examples with hand-checked numbers.

Times are built in Asia/Shanghai (UTC+8, no daylight saving since 1991); a reading
closes the 15-minute interval that ends at ``measured_at``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carbon_protocol.models import Domain, Reading
from carbon_rules.activity import (
    ActivityConfig,
    MeterConfig,
    MeterReplacement,
    ReadingPoint,
    TariffSchedule,
    compute_activity,
    convert,
)
from carbon_rules.errors import (
    ActivityInputError,
    DuplicateReadingError,
    IncompatibleUnitsError,
    ReadingOrderError,
    RegisterAnomalyError,
    RulesError,
    UnknownUnitError,
)
from carbon_rules.fixed_point import SCALE, parse, to_decimal
from carbon_rules.formulas import purchased_energy

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEV = "86.1000.1/dev.m1"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch seconds of a Shanghai wall-clock time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp())


def point(seq: int, t: int, value: str, cumulative: str | None = None, *,
          leaf: int | None = None, device: str = DEV, unit: str = "kWh",
          quality: str = "measured") -> ReadingPoint:
    return ReadingPoint(leaf=seq if leaf is None else leaf, device=device, seq=seq,
                        measured_at=t, unit=unit, value=parse(value),
                        cumulative=None if cumulative is None else parse(cumulative),
                        quality=quality)  # type: ignore[arg-type]


def series(start: int, cums: list[str], *, first_seq: int = 1, first_leaf: int = 0,
           device: str = DEV) -> list[ReadingPoint]:
    """Consecutive 15-minute readings with these registers (values = register deltas,
    0 where the register steps back)."""
    out = []
    for i, c in enumerate(cums):
        prev = parse(cums[i - 1]) if i else parse(c)
        out.append(point(first_seq + i, start + 900 * i, to_decimal(max(parse(c) - prev, 0)), c,
                         leaf=first_leaf + i, device=device))
    return out


def january_meter(total_kwh: int = 1_000_000, *, registers: bool = True) -> list[ReadingPoint]:
    """A meter read every 15 min from local 2026-01-01 00:00 to 2026-02-01 00:00.

    2976 intervals (31 x 96); register i = round(total x i / 2976, 3 places), so the
    register delta over January is exactly ``total_kwh``.
    """
    n = 31 * 96
    cums = [100_000 * 1000 + (total_kwh * 1000 * i * 2 + n) // (2 * n) for i in range(n + 1)]
    texts = [to_decimal(c * 10**15) for c in cums]
    pts = series(local(2026, 1, 1), texts)
    if registers:
        return pts
    return [point(p.seq, p.measured_at, to_decimal(p.value), leaf=p.leaf) for p in pts]


def test_case_20_one_million_kwh_in_january_is_997_t() -> None:
    # 1,000,000 kWh = 1,000 MWh; 1,000 MWh x 0.997 tCO2/MWh = 997 tCO2.
    data = compute_activity(january_meter(), ActivityConfig())
    months = data.totals("enterprise", "month")
    jan = months[("*", "2026-01", "*")]
    assert jan.unit == "MWh"
    assert jan.amount == 1000 * SCALE
    assert purchased_energy(jan.amount, parse("0.997")) == 997 * SCALE
    # The baseline reading at local midnight closes 2025-12-31 23:45-24:00.
    assert months[("*", "2025-12", "*")].amount == 0
    assert jan.quality.measured == 2976 and jan.quality.clean
    assert data.leaves == ((0, 2976),)
    assert data.reading_count == 2977


def test_interval_values_without_register_give_the_same_total() -> None:
    data = compute_activity(january_meter(registers=False), ActivityConfig())
    assert data.totals("enterprise", "month")[("*", "2026-01", "*")].amount == 1000 * SCALE


def test_local_month_boundary_not_utc() -> None:
    # Local 2026-02-01 00:00 is 2026-01-31T16:00Z: closes a January interval.
    # Local 2026-02-01 00:15: closes the first February interval.
    # 2026-01-31T20:00Z is already 04:00 on 1 February in Shanghai.
    utc = int(datetime(2026, 1, 31, 20, 0, tzinfo=UTC).timestamp())
    pts = [point(1, local(2026, 2, 1, 0, 0), "1"), point(2, local(2026, 2, 1, 0, 15), "2"),
           point(3, utc, "4", device="86.1000.1/dev.m2")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    months = data.totals("device", "month")
    assert months[(DEV, "2026-01", "*")].amount == 1 * SCALE
    assert months[(DEV, "2026-02", "*")].amount == 2 * SCALE
    assert months[("86.1000.1/dev.m2", "2026-02", "*")].amount == 4 * SCALE
    in_utc = compute_activity(pts, ActivityConfig(target_unit="kWh", timezone="UTC"))
    assert in_utc.totals("enterprise", "month")[("*", "2026-01", "*")].amount == 7 * SCALE


def test_periods_day_month_quarter_year_labels_and_sums() -> None:
    # 00:00 closes 23:45-24:00 on 31 March; 00:15 closes the first interval of April.
    pts = [point(1, local(2026, 4, 1, 0, 0), "5"), point(2, local(2026, 4, 1, 0, 15), "7")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert {k[1]: v.amount // SCALE for k, v in data.totals("device", "day").items()} == {
        "2026-03-31": 5, "2026-04-01": 7}
    assert {k[1]: v.amount // SCALE for k, v in data.totals("device", "quarter").items()} == {
        "2026-Q1": 5, "2026-Q2": 7}
    assert {k[1]: v.amount // SCALE for k, v in data.totals("device", "year").items()} == {
        "2026": 12}
    assert data.total().amount == 12 * SCALE


def test_rollover_at_configured_modulus() -> None:
    # A register showing at most 99,999,999.9 wraps to 0: 99,999,990.0 -> 15.0 is 25.0.
    pts = series(local(2026, 5, 1), ["99999980", "99999990", "15"])
    meter = MeterConfig(rollover_modulus="100000000")
    data = compute_activity(pts, ActivityConfig(target_unit="kWh", default_meter=meter))
    # first interval: its value (0); then 10; then 25 across the wrap
    assert data.total().amount == 35 * SCALE
    assert data.quality.rollovers == 1
    assert data.flagged["rollover"] == ((2, 2),)
    assert data.total().quality.clean


def test_negative_delta_without_rollover_is_an_anomaly_never_used() -> None:
    pts = [point(1, local(2026, 5, 1), "3", "1000"), point(2, local(2026, 5, 1, 0, 15), "4", "990")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    # -10 is not used: the reading's interval value (4) counts, flagged.
    assert data.total().amount == 7 * SCALE
    assert data.quality.anomalies == 1 and not data.total().quality.clean
    assert data.flagged["anomaly"] == ((2, 2),)
    with pytest.raises(RegisterAnomalyError) as err:
        compute_activity(pts, ActivityConfig(target_unit="kWh", on_anomaly="error"))
    assert err.value.details["leaf"] == 2 and isinstance(err.value, RulesError)


def test_implausible_rollover_is_an_anomaly() -> None:
    # 60,000,000 -> 10 would be a 40,000,010 kWh quarter hour: not a rollover.
    pts = series(local(2026, 5, 1), ["60000000", "10"])
    meter = MeterConfig(rollover_modulus="100000000")
    data = compute_activity(pts, ActivityConfig(target_unit="kWh", default_meter=meter))
    assert data.quality.anomalies == 1 and data.quality.rollovers == 0


def test_declared_meter_replacement() -> None:
    # old register 1000 -> final 1010 (10 kWh); new register 0 -> 5 (5 kWh): 15 kWh.
    pts = [point(1, local(2026, 6, 1), "0", "1000"),
           point(2, local(2026, 6, 1, 0, 15), "5", "5")]
    swap = MeterReplacement(DEV, first_seq=2, old_final="1010", new_initial="0")
    data = compute_activity(pts, ActivityConfig(target_unit="kWh", replacements=(swap,)))
    assert data.total().amount == 15 * SCALE
    assert data.quality.replacements == 1 and data.quality.anomalies == 0
    assert data.flagged["replacement"] == ((2, 2),)
    undeclared = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert undeclared.quality.anomalies == 1


def test_gap_bridged_by_register_is_counted_and_flagged() -> None:
    # seq 3 and 4 missing; the register delta 100 -> 140 covers three intervals.
    pts = [point(1, local(2026, 7, 1), "10", "100"),
           point(2, local(2026, 7, 1, 0, 15), "10", "110", leaf=7),
           point(5, local(2026, 7, 1, 1, 0), "10", "140", leaf=9)]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert data.total().amount == 50 * SCALE
    q = data.quality
    assert (q.missing_bridged, q.missing_filled, q.measured) == (2, 0, 3)
    assert data.flagged["gap"] == ((9, 9),)
    assert data.leaves == ((1, 1), (7, 7), (9, 9))


def test_gap_without_register_is_filled_with_the_larger_neighbour() -> None:
    # seq 2, 3 missing; neighbours 10 and 12: 12 + 2 x 12 = 36 (not 12 + 2 x 10).
    pts = [point(1, local(2026, 7, 1), "10"), point(4, local(2026, 7, 1, 0, 45), "12")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert data.total().amount == 46 * SCALE
    assert data.quality.missing_filled == 2 and not data.quality.clean
    assert data.flagged["gap"] == ((4, 4),)


def test_bridged_gap_shares_the_delta_exactly() -> None:
    # 100 -> 140 over 3 intervals (2 missing): each missing one gets 40/3 rounded down
    # to 18 decimals, the closing interval the rest; the sum is exactly 40.
    pts = [point(1, local(2026, 7, 1), "0", "100"), point(4, local(2026, 7, 1, 0, 45), "9", "140")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    baseline = data.totals("device", "day")[(DEV, "2026-06-30", "*")]  # 23:45-24:00
    assert baseline.amount == 0
    july = data.totals("device", "day")[(DEV, "2026-07-01", "*")]
    assert july.amount == 40 * SCALE and july.quality.missing_bridged == 2
    share = 40 * SCALE // 3
    assert data.bucket_amount.tolist() == [0, 2 * share + (40 * SCALE - 2 * share)]


def test_gap_across_a_month_end_is_booked_and_flagged_in_both_months() -> None:
    # Readings at 28 Feb 23:30 and 1 Mar 00:30 (local): the three missing intervals end
    # at 23:45 and 24:00 (February) and 00:15 (March); the closing one at 00:30 (March).
    # Bridged: 40 kWh over four intervals, 10 each. Filled: 5 (the larger neighbour) each.
    t0, t1 = local(2026, 2, 28, 23, 30), local(2026, 3, 1, 0, 30)
    bridged = compute_activity([point(1, t0, "0", "1000"), point(5, t1, "0", "1040")],
                               ActivityConfig(target_unit="kWh"))
    months = bridged.totals("device", "month")
    feb, mar = months[(DEV, "2026-02", "*")], months[(DEV, "2026-03", "*")]
    assert feb.amount == 2 * 10 * SCALE and feb.quality.missing_bridged == 2
    assert mar.amount == 2 * 10 * SCALE and mar.quality.missing_bridged == 1
    filled = compute_activity([point(1, t0, "3"), point(5, t1, "5")],
                              ActivityConfig(target_unit="kWh"))
    months = filled.totals("device", "month")
    feb, mar = months[(DEV, "2026-02", "*")], months[(DEV, "2026-03", "*")]
    assert (feb.amount, feb.quality.missing_filled) == ((3 + 5 + 5) * SCALE, 2)
    assert (mar.amount, mar.quality.missing_filled) == ((5 + 5) * SCALE, 1)
    assert not feb.quality.clean and not mar.quality.clean


def test_time_gap_with_consecutive_sequence_numbers() -> None:
    # One hour between consecutive seqs: three 15-minute intervals missing.
    pts = [point(1, local(2026, 7, 1), "2"), point(2, local(2026, 7, 1, 1, 0), "1")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert data.quality.missing_filled == 3
    assert data.total().amount == (2 + 1 + 3 * 2) * SCALE


def test_hourly_meter_among_quarter_hourly_ones() -> None:
    # An hourly reading closes one interval, not three missing ones plus its own.
    hourly = "86.1000.1/dev.hourly"
    pts = [point(1, local(2026, 7, 1, 1), "60", device=hourly, leaf=0),
           point(2, local(2026, 7, 1, 2), "50", device=hourly, leaf=1),
           point(1, local(2026, 7, 1, 1), "15", leaf=2), point(2, local(2026, 7, 1, 1, 15), "15",
                                                             leaf=3)]
    meters = {hourly: MeterConfig(interval_seconds=3600)}
    data = compute_activity(pts, ActivityConfig(target_unit="kWh", meters=meters))
    assert data.total().amount == 140 * SCALE and data.quality.clean
    assert data.quality.missing_filled == 0
    wrong = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    assert wrong.quality.missing_filled == 3  # what a mis-declared interval looks like


def test_a_broken_sequence_counter_is_refused_not_filled() -> None:
    t = local(2026, 1, 5)
    # 18 numbers skipped in one hour (4 intervals): 2 x 4 + 16 = 24 allowed, so filled
    ok = compute_activity([point(1, t, "1"), point(20, t + 3600, "1")], ActivityConfig())
    assert ok.quality.missing_filled == 18
    with pytest.raises(ReadingOrderError, match="broken counter"):
        compute_activity([point(1, t, "1"), point(26, t + 3600, "1")], ActivityConfig())


def test_readings_spanning_a_century_are_refused() -> None:
    pts = [point(1, local(2026, 1, 1), "1"), point(2, local(2199, 1, 1), "1")]
    with pytest.raises(ActivityInputError, match="span"):
        compute_activity(pts, ActivityConfig())


def test_quality_flags_and_leaf_ranges() -> None:
    t = local(2026, 8, 1)
    pts = [point(1, t, "1"), point(2, t + 900, "1", quality="estimated"),
           point(3, t + 1800, "1", quality="estimated"),
           point(4, t + 2700, "1", quality="substituted"),
           point(5, t + 3600, "1", quality="manual")]
    data = compute_activity(pts, ActivityConfig(target_unit="kWh"))
    q = data.quality
    assert (q.measured, q.estimated, q.substituted, q.manual) == (1, 2, 1, 1)
    assert data.flagged["estimated"] == ((2, 3),)
    assert data.flagged["substituted"] == ((4, 4),)
    assert data.flagged["manual"] == ((5, 5),)
    assert not q.clean


def test_unit_conversion_exact_and_rounded() -> None:
    assert convert(parse("1"), "kWh", "MWh") == parse("0.001")
    assert convert(parse("1"), "GJ", "MWh") == parse("0.277777777777777778")  # 5/18, half up
    assert convert(parse("1"), "MWh", "GJ") == parse("3.6")
    assert convert(parse("1500"), "kg", "t") == parse("1.5")
    assert convert(parse("25000"), "Nm3", "10^4Nm3") == parse("2.5")  # the NCV factor's unit
    with pytest.raises(IncompatibleUnitsError):
        convert(parse("1"), "kWh", "t")
    with pytest.raises(IncompatibleUnitsError):
        convert(parse("1"), "Nm3", "m3")
    with pytest.raises(UnknownUnitError):
        convert(parse("1"), "BTU", "MWh")


def test_per_device_conversion_then_exact_sum() -> None:
    # Heat meters in GJ: each device's total is converted once, then summed.
    t = local(2026, 1, 5)
    pts = [point(1, t, "1", device="86.1000.1/dev.h1", unit="GJ"),
           point(1, t, "1", device="86.1000.1/dev.h2", unit="GJ", leaf=2)]
    data = compute_activity(pts, ActivityConfig())
    assert data.total().amount == 2 * parse("0.277777777777777778")


def test_incompatible_and_mixed_units_are_refused() -> None:
    t = local(2026, 1, 5)
    with pytest.raises(IncompatibleUnitsError):
        compute_activity([point(1, t, "1", unit="t")], ActivityConfig())
    with pytest.raises(IncompatibleUnitsError):
        compute_activity([point(1, t, "1"), point(2, t + 900, "1", unit="MWh")],
                         ActivityConfig())
    with pytest.raises(UnknownUnitError):
        ActivityConfig(target_unit="furlong")


def test_peak_valley_split_in_local_time() -> None:
    tou = TariffSchedule.of([("00:00", "valley"), ("08:00", "peak"), ("22:00", "valley")])
    t = local(2026, 3, 2, 7, 45)
    # intervals starting 07:30 (valley), 07:45 (valley), 08:00 (peak) ... 21:45 (peak), 22:00
    pts = [point(i + 1, t + 900 * i, str(i + 1)) for i in range(3)]
    pts += [point(58, local(2026, 3, 2, 22, 0), "100"), point(59, local(2026, 3, 2, 22, 15), "7")]
    cfg = ActivityConfig(target_unit="kWh", tariff=tou)
    data = compute_activity(pts, cfg)
    bands = data.totals("device", "day", by_band=True)
    assert bands[(DEV, "2026-03-02", "valley")].amount == (1 + 2 + 7) * SCALE
    # seq 58 closes 21:45-22:00 (peak) after 54 missing intervals (08:15-21:45, seqs
    # 4..57, all peak), each filled with the larger neighbour: 100 + 54 x 100.
    peak = bands[(DEV, "2026-03-02", "peak")]
    assert peak.amount == (3 + 5500) * SCALE
    assert peak.quality.missing_filled == 54
    assert data.bands == ("peak", "valley")
    with pytest.raises(ActivityInputError):
        TariffSchedule.of([("08:00", "peak")])
    with pytest.raises(ActivityInputError):
        TariffSchedule.of([("00:00", "valley"), ("25:00", "peak")])


def test_sites_and_enterprise_roll_up() -> None:
    t = local(2026, 1, 5)
    devs = {f"86.1000.1/dev.s{i}": MeterConfig(site=f"site{i % 2}") for i in range(4)}
    pts = [point(1, t, str(10 * (i + 1)), device=d, leaf=i) for i, d in enumerate(devs)]
    cfg = ActivityConfig(target_unit="kWh", meters=devs, enterprise="ent")
    data = compute_activity(pts, cfg)
    sites = data.totals("site", None)
    assert sites[("site0", "*", "*")].amount == 40 * SCALE
    assert sites[("site1", "*", "*")].amount == 60 * SCALE
    assert data.totals("enterprise", None)[("ent", "*", "*")].amount == 100 * SCALE
    assert data.totals("device", None)[("86.1000.1/dev.s3", "*", "*")].amount == 40 * SCALE


def test_lines_are_json_ready() -> None:
    import json

    tou = TariffSchedule.of([("00:00", "valley"), ("08:00", "peak")])
    pts = [point(1, local(2026, 1, 5, 9), "1.5"), point(2, local(2026, 1, 5, 9, 15), "2")]
    data = compute_activity(pts, ActivityConfig(tariff=tou))
    rows = data.lines("device", "day", by_band=True)
    assert rows == [{"entity": DEV, "period": "2026-01-05", "band": "peak", "amount": "0.0035",
                     "unit": "MWh", "clean": True,
                     "quality": {**dict.fromkeys(
                         ("estimated", "manual", "substituted", "missing_bridged",
                          "missing_filled", "rollovers", "replacements", "anomalies"), 0),
                                 "measured": 2}}]
    json.dumps(data.canonical())


def test_any_order_gives_identical_results() -> None:
    pts = january_meter(12_345)[:500] + series(local(2026, 1, 1), ["5", "6", "1", "9"],
                                                first_leaf=10_000, device="86.1000.1/dev.b")
    cfg = ActivityConfig(default_meter=MeterConfig(rollover_modulus="10"))
    reference = compute_activity(pts, cfg).canonical()
    rng = random.Random(4)
    for _ in range(3):
        shuffled = pts[:]
        rng.shuffle(shuffled)
        assert compute_activity(shuffled, cfg).canonical() == reference


def test_bad_input_is_refused_with_typed_errors() -> None:
    t = local(2026, 1, 5)
    with pytest.raises(DuplicateReadingError):
        compute_activity([point(1, t, "1"), point(1, t + 900, "1", leaf=5)], ActivityConfig())
    with pytest.raises(DuplicateReadingError):
        compute_activity([point(1, t, "1"), point(2, t + 900, "1", leaf=1)], ActivityConfig())
    with pytest.raises(ReadingOrderError):
        compute_activity([point(1, t, "1"), point(2, t, "1")], ActivityConfig())
    with pytest.raises(ActivityInputError):
        ActivityConfig(timezone="Mars/Olympus")
    with pytest.raises(ActivityInputError):
        MeterReplacement(DEV, first_seq=1, old_final="1", new_initial="0")


def test_from_protocol_reading() -> None:
    reading = Reading(
        suite="intl", key_id="0" * 32, device=DEV, seq=3, measured_at="2026-01-31T16:00:00Z",
        quantity="active_energy", unit="kWh", value="12.5", cumulative="1000.25",
        quality="estimated", salt="1" * 32,
        domain=Domain(chain_id=1, contract="0x" + "0" * 40, log_id="86.1000.1/log.a"),
    )
    p = ReadingPoint.from_reading(reading, leaf=42)
    assert (p.leaf, p.seq, p.value, p.cumulative, p.quality, p.quantity) == (
        42, 3, parse("12.5"), parse("1000.25"), "estimated", "active_energy")
    assert p.measured_at == local(2026, 2, 1) == int(
        (datetime(2026, 1, 31, tzinfo=UTC) + timedelta(hours=16)).timestamp())
    assert compute_activity([p], ActivityConfig()).quantity == "active_energy"


def test_heat_and_electricity_in_kwh_are_not_summed() -> None:
    from dataclasses import replace

    from carbon_rules.activity import ReadingColumns, compute_activity_columnar

    t = local(2026, 1, 5)
    power = replace(point(1, t, "1"), quantity="active_energy")
    heat = replace(point(1, t, "1", device="86.1000.1/dev.heat", leaf=2), quantity="heat")
    with pytest.raises(IncompatibleUnitsError, match="quantities"):
        compute_activity([power, heat], ActivityConfig())
    with pytest.raises(IncompatibleUnitsError, match="quantities"):
        ReadingColumns.from_points([power, heat], decimals=3)
    chunks = [ReadingColumns.from_points([power], 3), ReadingColumns.from_points([heat], 3)]
    with pytest.raises(IncompatibleUnitsError, match="quantities"):
        compute_activity_columnar(chunks, ActivityConfig())
