"""The columnar path equals the exact per-reading path, bit for bit.

Hypothesis draws meter series with rollovers (a 1,000 kWh register), registers that
step back (anomalies), declared replacements, sequence and time gaps, readings without
a register and every quality; the two paths must give the same canonical result, in any
input order and any split into chunks.
"""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_rules.activity import (
    QUALITIES,
    ActivityConfig,
    MeterConfig,
    MeterReplacement,
    ReadingColumns,
    ReadingPoint,
    TariffSchedule,
    compute_activity,
    compute_activity_columnar,
)
from carbon_rules.errors import (
    ActivityInputError,
    ColumnarRangeError,
    DuplicateReadingError,
    ReadingOrderError,
    RegisterAnomalyError,
)
from carbon_rules.fixed_point import SCALE, to_decimal

MILLI = SCALE // 1000  # readings carry 3 decimals (0.001 kWh resolution)
MODULUS = 1_000_000  # 1,000.000 kWh in milli-kWh
TOU = TariffSchedule.of([("00:00", "valley"), ("08:00", "peak"), ("11:30", "flat"),
                         ("18:00", "peak"), ("23:00", "valley")])

# One step of a series: (seq step, extra missing time intervals (90: a day; negative:
# fewer time intervals than sequence numbers), value in milli-kWh, register event,
# quality index). Times also jitter by a few seconds.
step_strategy = st.tuples(
    st.sampled_from([1, 1, 1, 1, 2, 3]),
    st.sampled_from([0, 0, 0, 0, 0, 1, 4, 90, -1, -2]),
    st.integers(0, 60_000),
    st.sampled_from(["normal"] * 8 + ["none", "backward", "replace"]),
    st.sampled_from([0, 0, 0, 1, 2, 3]),
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[ReadingPoint], ActivityConfig, int]:
    n_devices = draw(st.integers(1, 4))
    points: list[ReadingPoint] = []
    swaps: list[MeterReplacement] = []
    meters: dict[str, MeterConfig] = {}
    start = draw(st.integers(1_767_225_600 - 2 * 86_400, 1_767_225_600 + 86_400 * 400))
    for d in range(n_devices):
        device = f"86.1000.1/dev.p{d}"
        wraps = d % 2 == 0
        every = 3600 if d == 3 else 900  # the fourth meter is read hourly
        meters[device] = MeterConfig(site=f"site{d % 2}",
                                     rollover_modulus="1000" if wraps else None,
                                     max_rollover_delta="100" if wraps else None,
                                     interval_seconds=every if d == 3 else None)
        seq, t, reg = draw(st.integers(1, 50)), start + d * 300, draw(st.integers(0, 999_000))
        for s_step, extra, value, event, q in draw(st.lists(step_strategy, max_size=60)):
            seq += s_step
            t += every * max(1, s_step + extra) + draw(st.sampled_from([0, 0, 0, 7, 450, -5]))
            has_reg = event != "none"
            if event == "backward":
                reg = max(reg - draw(st.integers(1, 5_000)), 0)
            elif event == "replace":
                old_final = reg + draw(st.integers(0, 3_000))
                new_initial = draw(st.integers(0, 5_000))
                swaps.append(MeterReplacement(device, seq, to_decimal(old_final * MILLI),
                                              to_decimal(new_initial * MILLI)))
                reg = new_initial + value
            else:
                reg = reg + value
            if wraps:
                reg %= MODULUS
            points.append(ReadingPoint(
                leaf=0, device=device, seq=seq, measured_at=t, unit="kWh",
                value=value * MILLI, cumulative=reg * MILLI if has_reg else None,
                quality=QUALITIES[q]))
    leaves = draw(st.permutations(range(len(points))))
    points = [ReadingPoint(leaf, p.device, p.seq, p.measured_at, p.unit, p.value, p.cumulative,
                           p.quality) for leaf, p in zip(leaves, points, strict=True)]
    config = ActivityConfig(
        target_unit=draw(st.sampled_from(["MWh", "GJ", "kWh"])),
        timezone=draw(st.sampled_from(["Asia/Shanghai", "UTC", "Europe/Berlin"])),
        tariff=TOU, meters=meters, replacements=tuple(swaps), enterprise="ent",
    )
    return points, config, draw(st.integers(0, 2**32))


def _chunks(points: list[ReadingPoint], seed: int) -> list[ReadingColumns]:
    """Split devices at random into chunks, rows shuffled within each."""
    rng = random.Random(seed)
    devices = sorted({p.device for p in points})
    rng.shuffle(devices)
    cut = rng.randint(0, len(devices))
    out = []
    for group in (devices[:cut], devices[cut:]):
        rows = [p for p in points if p.device in group]
        rng.shuffle(rows)
        out.append(ReadingColumns.from_points(rows, decimals=3))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_columnar_equals_exact(case: tuple[list[ReadingPoint], ActivityConfig, int]) -> None:
    points, config, seed = case
    exact = compute_activity(points, config)
    shuffled = points[:]
    random.Random(seed).shuffle(shuffled)
    columnar = compute_activity_columnar(_chunks(shuffled, seed), config)
    assert columnar.canonical() == exact.canonical()
    for level in ("device", "site", "enterprise"):
        for period in ("day", "month", "quarter", "year", None):
            assert (columnar.totals(level, period, by_band=True)  # type: ignore[arg-type]
                    == exact.totals(level, period, by_band=True))  # type: ignore[arg-type]
    assert columnar.quality == exact.quality


def test_the_property_covers_the_interesting_cases() -> None:
    # A fixed scenario exercising every flag at once, so the property above is known
    # to reach rollovers, anomalies, replacements and both kinds of gap.
    tz = ZoneInfo("Asia/Shanghai")
    t0 = int(datetime(2026, 1, 31, 23, 0, tzinfo=tz).timestamp())
    dev = "86.1000.1/dev.x"
    rows = [(1, 0, 10, 999_990), (2, 1, 20, 10), (3, 2, 5, 5), (4, 3, 7, 3_000),
            (7, 6, 9, 3_100), (8, 7, 4, None), (10, 9, 6, None), (11, 10, 1, 2)]
    points = [ReadingPoint(leaf=100 + i, device=dev, seq=s, measured_at=t0 + 900 * k,
                           unit="kWh", value=v * MILLI,
                           cumulative=None if c is None else c * MILLI,
                           quality=QUALITIES[i % 4])
              for i, (s, k, v, c) in enumerate(rows)]
    config = ActivityConfig(
        meters={dev: MeterConfig(rollover_modulus="1000", max_rollover_delta="100")},
        replacements=(MeterReplacement(dev, 11, "0.05", "0.001"),), tariff=TOU)
    exact = compute_activity(points, config)
    q = exact.quality
    assert q.rollovers == 1 and q.anomalies == 1 and q.replacements == 1
    assert q.missing_bridged == 2 and q.missing_filled == 1
    assert compute_activity_columnar(ReadingColumns.from_points(points, 3), config
                                     ).canonical() == exact.canonical()
    # 999.990 -> 0.010 wraps: 20 milli-kWh; 0.010 -> 0.005 steps back: value 5;
    # 0.005 -> 3.000: 2995; 3.000 -> 3.100 bridges seq 5, 6: 100; no register at seq 8:
    # value 4; seq 9 missing, no register: 6 + 6; replacement at seq 11 (seq 10 has no
    # register): value 1. Plus the first reading's value, 10.
    assert exact.total().amount == (10 + 20 + 5 + 2995 + 100 + 4 + 12 + 1) * MILLI // 1000


def test_columnar_refuses_what_it_cannot_compute_exactly() -> None:
    p = ReadingPoint(leaf=0, device="86.1000.1/dev.a", seq=1, measured_at=1_767_225_600,
                     unit="kWh", value=SCALE // 10_000, cumulative=None, quality="measured")
    with pytest.raises(ColumnarRangeError):
        ReadingColumns.from_points([p], decimals=3)  # 0.0001 needs 4 decimals
    cols = ReadingColumns.from_points([p], decimals=4)
    cfg = ActivityConfig(default_meter=MeterConfig(rollover_modulus="1000.00001"))
    with pytest.raises(ColumnarRangeError):
        compute_activity_columnar(cols, cfg)
    with pytest.raises(ActivityInputError):
        compute_activity_columnar([cols, cols], ActivityConfig())  # device in two chunks
    with pytest.raises(ActivityInputError):
        ReadingColumns(0, ("a",), ("kWh",), np.zeros(1, np.int32), np.ones(1, np.int64),
                       np.zeros(1, np.int64), np.full(1, -1, np.int64), np.zeros(1, np.int64),
                       np.zeros(1, bool), np.zeros(1, np.int8), np.zeros(1, np.int64))


def test_columnar_refuses_the_same_bad_input_as_the_exact_path() -> None:
    def pt(seq: int, t: int, leaf: int, cum: int | None = None) -> ReadingPoint:
        return ReadingPoint(leaf=leaf, device="86.1000.1/dev.a", seq=seq, measured_at=t,
                            unit="kWh", value=SCALE, cumulative=cum, quality="measured")

    t = 1_767_225_600
    cases: list[tuple[list[ReadingPoint], type[Exception], ActivityConfig]] = [
        ([pt(1, t, 0), pt(1, t + 900, 1)], DuplicateReadingError, ActivityConfig()),
        ([pt(1, t, 0), pt(2, t, 1)], ReadingOrderError, ActivityConfig()),
        ([pt(1, t, 0), pt(10**9, t + 900, 1)], ReadingOrderError, ActivityConfig()),
        ([pt(1, t, 0, 5 * SCALE), pt(2, t + 900, 1, SCALE)], RegisterAnomalyError,
         ActivityConfig(on_anomaly="error")),
    ]
    for points, error, cfg in cases:
        with pytest.raises(error):
            compute_activity(points, cfg)
        with pytest.raises(error):
            compute_activity_columnar(ReadingColumns.from_points(points, 3), cfg)
    empty = compute_activity_columnar([], ActivityConfig())
    assert empty.canonical() == compute_activity([], ActivityConfig()).canonical()


@pytest.mark.parametrize(("prev", "cur", "rolled"), [
    ("950", "50", True),  # wrapped delta 100 = max_rollover_delta: still a rollover
    ("950", "50.001", False),  # 100.001: an anomaly
    ("0", "0", False),
])
def test_rollover_limit_is_inclusive_on_both_paths(prev: str, cur: str, rolled: bool) -> None:
    from carbon_rules.fixed_point import parse

    dev = "86.1000.1/dev.r"
    points = [ReadingPoint(leaf=i, device=dev, seq=i + 1, measured_at=1_767_225_600 + 900 * i,
                           unit="kWh", value=0, cumulative=parse(c), quality="measured")
              for i, c in enumerate((prev, cur))]
    config = ActivityConfig(default_meter=MeterConfig(rollover_modulus="1000",
                                                      max_rollover_delta="100"))
    for data in (compute_activity(points, config),
                 compute_activity_columnar(ReadingColumns.from_points(points, 3), config)):
        assert data.quality.rollovers == int(rolled)
        assert data.quality.anomalies == int(not rolled and prev != cur)
