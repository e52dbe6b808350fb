"""Inventory for 1,000 meters over a year of 15-minute readings (35,040,000 readings).

Issue 4's target: time and peak memory of turning a year of an enterprise's meter
readings into a monthly and yearly purchased-electricity inventory, under 60 s and
2 GiB on this machine. Runs in a fresh subprocess
(``python -m benchmarks.inventory_scale METERS SLOTS CHUNK``) so ``ru_maxrss`` is this
computation's alone.

Data: realistic synthetic columns, generated with numpy in chunks of ``CHUNK`` meters
and streamed into :func:`carbon_rules.activity.compute_activity_columnar` (each chunk
is dropped after use, as a ledger streaming rows from its database would). Every meter
has a daily load profile and a 0.001 kWh register; every 10th meter's register wraps
at 100,000,000 kWh during the year; every 100th meter is replaced mid-year (declared);
0.05 % of readings are missing and 0.02 % are estimated without a register. Leaves are
numbered time-major, as a log receiving all meters at once would.

Timed (``inventory_35m_seconds``): activity data from the columns (deltas, rollovers,
replacements, gaps, local days and peak/valley bands in Asia/Shanghai), then monthly
totals per site and for the enterprise, the yearly total, and E = AD x EF with the
shipped national grid factor. Not timed: generating the columns (reported as
``generate_seconds``). Results are checked, not just timed: the total is never below
the generated consumption, and the data-quality counters match what was injected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from benchmarks._common import ROOT, BenchmarkFailure, check, emit, log, peak_rss_mb, rss_mb

FULL = (1_000, 35_040, 50)  # meters, 15-minute slots (365 days), meters per chunk
QUICK = (100, 2_976, 50)  # 100 meters over January
TARGET_SECONDS = 60
TARGET_MIB = 2048
MODULUS_KWH = 100_000_000
MILLI = 1000  # columns carry 3 decimals (0.001 kWh)
OLD_FINAL_KWH = 50_000_000  # a replaced meter's old register ends here (declared)


class Generated:
    """Totals of what the generator injected, to check the result against."""

    def __init__(self) -> None:
        self.true_milli_kwh = 0
        self.dropped = 0
        self.estimated = 0
        self.readings = 0
        self.replacements = 0
        self.generate_seconds = 0.0
        self.generate_cpu_seconds = 0.0


def _device(m: int) -> str:
    return f"86.1000.1/dev.m{m:05d}"


def _chunks(meters: int, slots: int, per_chunk: int, gen: Generated) -> Iterator[Any]:
    from carbon_rules.activity import ReadingColumns

    start = int(datetime(2026, 1, 1, 0, 15, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp())
    hour = (np.arange(96) // 4).astype(np.float64)
    profile = 0.55 + 0.45 * np.exp(-((hour - 14.0) ** 2) / 18.0)  # day peak at 14:00
    modulus = MODULUS_KWH * MILLI
    for first in range(0, meters, per_chunk):
        began, cpu_began = time.perf_counter(), time.process_time()
        rng = np.random.default_rng(first)
        ms = np.arange(first, min(first + per_chunk, meters))
        k = len(ms)
        base = rng.integers(4_000, 40_000, size=k)  # milli-kWh per quarter hour
        value = (base[:, None] * profile[np.arange(slots) % 96][None, :]).astype(np.int64)
        value += rng.integers(0, 500, size=(k, slots))
        gen.true_milli_kwh += int(value.sum())
        start_reg = rng.integers(0, 10**9, size=k) * MILLI
        wraps = ms % 10 == 0  # these start close enough to the top to wrap mid-year
        start_reg[wraps] = modulus - value[wraps].sum(axis=1) // 2
        cum = (start_reg[:, None] + np.cumsum(value, axis=1)) % modulus
        half = slots // 2
        for row in np.nonzero(ms % 100 == 7)[0]:
            # replaced after slot half - 1: the old register then reads OLD_FINAL_KWH
            # (as declared), the new one starts at 0
            used = np.cumsum(value[row])
            cum[row, :half] = OLD_FINAL_KWH * MILLI - used[half - 1] + used[:half]
            cum[row, half:] = used[half:] - used[half - 1]
            gen.replacements += 1
        keep = rng.random((k, slots)) >= 0.0005
        keep[:, [0, -1]] = True  # a missing last reading would leave its interval unknown
        estimated = (rng.random((k, slots)) < 0.0002) & keep
        gen.dropped += int((~keep).sum())
        gen.estimated += int(estimated.sum())
        slot = np.broadcast_to(np.arange(slots, dtype=np.int64), (k, slots))
        code = np.broadcast_to(np.arange(k, dtype=np.int32)[:, None], (k, slots))
        cols = ReadingColumns(
            decimals=3,
            devices=tuple(_device(int(m)) for m in ms),
            units=("kWh",) * k,
            device=code[keep],
            seq=slot[keep] + 1,
            measured_at=start + 900 * slot[keep],
            value=value[keep],
            cumulative=np.where(estimated, 0, cum)[keep],
            has_cumulative=~estimated[keep],
            quality=estimated[keep].astype(np.int8),  # 0 measured, 1 estimated
            leaf=slot[keep] * meters + ms[:, None].repeat(slots, axis=1)[keep],
        )
        del value, cum, keep, estimated
        gen.readings += len(cols)
        gen.generate_seconds += time.perf_counter() - began
        gen.generate_cpu_seconds += time.process_time() - cpu_began
        yield cols


def worker(meters: int, slots: int, per_chunk: int) -> dict[str, Any]:
    """Compute the inventory and return the measurements (run in a fresh process)."""
    from carbon_rules.activity import (
        ActivityConfig,
        MeterConfig,
        MeterReplacement,
        TariffSchedule,
        compute_activity_columnar,
    )
    from carbon_rules.factors import default_factors
    from carbon_rules.fixed_point import to_decimal
    from carbon_rules.formulas import purchased_energy

    grid = next(f for f in default_factors() if f.id == "ef.grid.CN")
    tou = TariffSchedule.of([("00:00", "valley"), ("08:00", "peak"), ("11:00", "flat"),
                             ("18:00", "peak"), ("23:00", "valley")])
    meter_cfg = {_device(m): MeterConfig(site=f"86.1000.1/site.{m % 4}",
                                         rollover_modulus=str(MODULUS_KWH))
                 for m in range(meters)}
    gen = Generated()
    swaps = tuple(MeterReplacement(_device(m), slots // 2 + 1, str(OLD_FINAL_KWH), "0")
                  for m in range(meters) if m % 100 == 7)
    rss_before = rss_mb()
    began = time.perf_counter()
    cpu_began = time.process_time()
    config = ActivityConfig(tariff=tou, meters=meter_cfg, replacements=swaps,
                            enterprise="86.1000.1/ent.bench")
    data = compute_activity_columnar(_chunks(meters, slots, per_chunk, gen), config)
    monthly_sites = data.totals("site", "month")
    monthly = data.totals("enterprise", "month", by_band=True)
    year = data.totals("enterprise", "year")
    (total,) = year.values()
    emissions = purchased_energy(total.amount, grid.value)
    elapsed = time.perf_counter() - began - gen.generate_seconds
    cpu = time.process_time() - cpu_began - gen.generate_cpu_seconds
    peak = peak_rss_mb()
    _check(data, total, monthly, gen, meters)
    exact_per_s = _exact_sample(slots, config)
    return {
        "meters": meters, "slots": slots, "chunk_meters": per_chunk,
        "readings": gen.readings, "seconds": elapsed, "cpu_seconds": cpu,
        "generate_seconds": gen.generate_seconds, "peak_rss_mib": peak,
        "exact_readings_per_s": exact_per_s[0], "exact_sample_readings": exact_per_s[1],
        "rss_before_mib": rss_before, "buckets": len(data.bucket_day),
        "site_month_lines": len(monthly_sites), "total_mwh": to_decimal(total.amount),
        "emissions_tco2": to_decimal(emissions, 3), "factor": to_decimal(grid.value),
        "quality": total.quality.as_dict(), "load_1m": os.getloadavg()[0],
    }


def _exact_sample(slots: int, config: Any) -> tuple[float, int]:
    """Readings/s of the per-reading reference path on 10 meters (one wraps, one is
    replaced), checked bit-identical to the columnar path on the same readings."""
    from carbon_rules.activity import (
        QUALITIES,
        ReadingPoint,
        compute_activity,
        compute_activity_columnar,
    )

    (cols,) = _chunks(10, slots, 10, Generated())
    step = 10 ** (18 - cols.decimals)
    points = [
        ReadingPoint(leaf=leaf, device=cols.devices[d], seq=s, measured_at=t, unit="kWh",
                     value=v * step, cumulative=c * step if h else None,
                     quality=QUALITIES[q])
        for d, s, t, v, c, h, q, leaf in zip(
            cols.device.tolist(), cols.seq.tolist(), cols.measured_at.tolist(),
            cols.value.tolist(), cols.cumulative.tolist(), cols.has_cumulative.tolist(),
            cols.quality.tolist(), cols.leaf.tolist(), strict=True)
    ]
    began = time.perf_counter()
    exact = compute_activity(points, config)
    seconds = time.perf_counter() - began
    columnar = compute_activity_columnar(cols, config)
    check(exact.canonical() == columnar.canonical(),
          "the columnar path differs from the per-reading path")
    return len(points) / seconds, len(points)


def _check(data: Any, total: Any, monthly: Any, gen: Generated, meters: int) -> None:
    from carbon_rules.fixed_point import SCALE

    q = total.quality
    check(q.measured + q.estimated == gen.readings, "every reading counted once")
    check(q.estimated == gen.estimated, "estimated readings flagged")
    check(q.missing_bridged + q.missing_filled == gen.dropped, "every missing reading counted")
    check(q.replacements == gen.replacements, "every replacement applied")
    check(q.anomalies == 0, f"no anomalies expected, got {q.anomalies}")
    check(q.rollovers >= meters // 10, f"rollovers counted ({q.rollovers})")
    true_mwh = gen.true_milli_kwh * SCALE // 1000 // 1000
    if q.missing_filled == 0:  # register deltas and interval values lose nothing
        check(total.amount == true_mwh, "the total differs from the generated consumption")
    else:  # a fill is the larger neighbour: an estimate, close but not exact
        check(abs(total.amount - true_mwh) <= true_mwh // 10_000, "gap fills within 0.01 %")
    check(sum(t.amount for t in monthly.values()) == total.amount, "months sum to the year")
    check(data.reading_count == gen.readings, "leaf ranges cover every reading")


def run(suites: list[str], quick: bool) -> None:  # noqa: ARG001 - suite-independent
    """Run the worker in a fresh process and emit its metric lines."""
    meters, slots, chunk = QUICK if quick else FULL
    log(f"inventory_scale: {meters:,} meters x {slots:,} quarter hours in a fresh process")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.inventory_scale", str(meters), str(slots),
         str(chunk)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise BenchmarkFailure(f"inventory_scale worker exited with {proc.returncode}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    context = {"readings": r["readings"], "meters": r["meters"], "quick": quick}
    emit("inventory_35m_seconds", "any", r["seconds"], "s", **context,
         target=TARGET_SECONDS, meets_target=r["seconds"] < TARGET_SECONDS,
         generate_seconds_excluded=round(r["generate_seconds"], 2),
         cpu_seconds=round(r["cpu_seconds"], 2),
         chunk_meters=r["chunk_meters"], buckets=r["buckets"],
         total_mwh=r["total_mwh"], emissions_tco2=r["emissions_tco2"], factor=r["factor"],
         load_1m=round(r["load_1m"], 2))
    emit("inventory_35m_peak_rss_mib", "any", r["peak_rss_mib"], "MiB", **context,
         target=TARGET_MIB, meets_target=r["peak_rss_mib"] < TARGET_MIB,
         rss_before_mib=round(r["rss_before_mib"], 1),
         measured="ru_maxrss of a fresh process: imports, generation of one chunk at a "
                  "time, and the whole computation")
    emit("inventory_35m_quality", "any", sum(r["quality"].values()), "count", **context,
         **r["quality"])
    emit("activity_exact_readings_per_s", "any", r["exact_readings_per_s"], "readings/s",
         readings=r["exact_sample_readings"], meters=10,
         note="per-reading reference path (compute_activity); its result was checked "
              "bit-identical to the columnar path on the same readings")


if __name__ == "__main__":
    result = worker(*(int(a) for a in sys.argv[1:4]))
    sys.stdout.write(json.dumps(result) + "\n")
