"""Bare signature verification and ``Ledger.ingest`` throughput, one suite per process.

Each suite runs in a fresh subprocess (``python -m benchmarks.ingest SUITE N DEVICES``)
so that its ``ru_maxrss`` is the peak of that ingest run alone, not of whatever ran
before it in the parent. Inside the worker, in this order:

1. open a fresh ledger (SQLite in a temporary directory, log suite = device suite),
   register the devices and pre-sign every reading (untimed). The pre-signed readings
   are then frozen out of the garbage collector (``gc.freeze``): a server holds one
   batch at a time, not 50,000 readings, and letting every collection walk them
   would charge the ledger for the benchmark's own memory (measured: 0.7 s of GC in
   a 4 s run without the freeze). The collector stays on for everything ingest makes;
2. ``verify_per_s``: ``PublicKey.verify`` on real canonical reading bytes, single thread,
   for a few seconds;
3. ``ingest_readings_per_s``: ``Ledger.ingest`` in batches of 1,000, every reading
   must be accepted. Before each batch, a burst of 500 bare verifications is timed too
   (not counted in the ingest time);
4. ``verify_per_s`` again for a few seconds.

The ratio divides the ingest rate by the rate of the interleaved bursts. This machine's
speed drifts by up to half over minutes (shared virtual cores), and bursts taken between
the batches see the same machine the batches saw, where a measurement before and after
the run may not. The before and after rates are printed beside it.

The worker prints one JSON object (its raw results) on stdout; the parent turns it
into metric lines.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    ROOT,
    BenchmarkFailure,
    check,
    emit,
    log,
    peak_rss_mb,
    progress,
    rss_mb,
    signed_reading,
)

BATCH = 1_000
BURST = 500
"""Bare verifications timed just before each ingest batch."""
RATIO_TARGET = 0.6


def _verify_rate(pairs: list[tuple[Any, bytes, bytes]], seconds: float) -> tuple[float, int]:
    """Verifications per second over at least ``seconds``, cycling through ``pairs``."""
    done = 0
    count = len(pairs)
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(256):
            key, sig, msg = pairs[(done + i) % count]
            key.verify(sig, msg)
        done += 256
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start), done


def worker(suite: str, n: int, device_count: int, verify_seconds: float) -> dict[str, Any]:
    """The measured run of one suite (see the module docstring)."""
    import secrets

    from benchmarks._common import open_ledger, register_devices
    from carbon_protocol.errors import SignatureError
    from carbon_protocol.signing import reading_bytes

    check(n % device_count == 0 and n % BATCH == 0,
          f"n={n} must be a multiple of the batch ({BATCH}) and of devices ({device_count})")
    with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{suite}-") as tmp:
        led = open_ledger(Path(tmp), suite)
        devices = register_devices(led, suite, device_count)

        # Pre-sign: readings interleaved across devices, as a gateway batch carries them.
        salts = [secrets.token_hex(16) for _ in range(n)]
        readings = []
        with progress(f"[{suite}] pre-signing readings", n) as advance:
            for seq in range(1, n // device_count + 1):
                for dev in devices:
                    readings.append(signed_reading(dev, seq, led.domain, salts[len(readings)]))
                advance(device_count)
        batches = [readings[i:i + BATCH] for i in range(0, n, BATCH)]

        # Verification inputs: one real reading per device, its exact signed bytes.
        pairs = []
        for dev, signed in zip(devices, readings[:device_count], strict=True):
            pub = dev.key.public_key()
            pairs.append((pub, bytes.fromhex(signed.signature), reading_bytes(signed.reading)))
        message_bytes = len(pairs[0][2])
        gc.collect()
        gc.freeze()
        tampered = pairs[0][1][:-1] + bytes([pairs[0][1][-1] ^ 1])
        try:
            pairs[0][0].verify(tampered, pairs[0][2])
        except SignatureError:
            pass
        else:
            raise BenchmarkFailure(f"[{suite}] a tampered signature verified")

        verify_before, verify_count_before = _verify_rate(pairs, verify_seconds)

        rss_before = rss_mb()
        peak_before = peak_rss_mb()
        batch_seconds = []
        accepted = 0
        load_before = os.getloadavg()[0]
        burst_seconds = 0.0
        ingest_cpu_seconds = 0.0
        with progress(f"[{suite}] ingesting", n) as advance:
            for batch in batches:
                t0 = time.perf_counter()
                for i in range(BURST):
                    key, sig, msg = pairs[i % len(pairs)]
                    key.verify(sig, msg)
                burst_seconds += time.perf_counter() - t0
                t0, c0 = time.perf_counter(), time.process_time()
                result = led.ingest(batch)
                batch_seconds.append(time.perf_counter() - t0)
                ingest_cpu_seconds += time.process_time() - c0
                if result.accepted != len(batch):
                    bad = [item for item in result.items if item.status != "accepted"][:3]
                    raise BenchmarkFailure(
                        f"[{suite}] batch: {result.accepted} accepted, {result.duplicates} "
                        f"duplicates, {result.rejected} rejected; first: {bad}")
                accepted += result.accepted
                advance(len(batch))
            ingest_seconds = sum(batch_seconds)
        peak_after = peak_rss_mb()

        check(accepted == n, f"[{suite}] {accepted} of {n} readings accepted")
        check(led.reading_count() == n, f"[{suite}] {led.reading_count()} readings stored")
        check(led.tree_size() == n, f"[{suite}] log has {led.tree_size()} leaves, not {n}")

        verify_after, verify_count_after = _verify_rate(pairs, verify_seconds)
        led.engine.dispose()

    batch_ms = sorted(s * 1000 for s in batch_seconds)
    tenth = max(1, len(batch_seconds) // 10)
    return {
        "suite": suite,
        "n": n,
        "devices": device_count,
        "batch": BATCH,
        "message_bytes": message_bytes,
        "verify_per_s_before": verify_before,
        "verify_per_s_after": verify_after,
        "verify_per_s_interleaved": BURST * len(batches) / burst_seconds,
        "verify_interleaved_count": BURST * len(batches),
        "verify_count": verify_count_before + verify_count_after,
        "ingest_seconds": ingest_seconds,
        "ingest_cpu_seconds": ingest_cpu_seconds,
        "load_1m": [load_before, os.getloadavg()[0]],
        "batch_ms_median": statistics.median(batch_ms),
        "batch_ms_max": batch_ms[-1],
        # Throughput of the first and last tenth of the batches: does ingest slow down
        # as the tables grow?
        "per_s_first_tenth": tenth * BATCH / sum(batch_seconds[:tenth]),
        "per_s_last_tenth": tenth * BATCH / sum(batch_seconds[-tenth:]),
        "rss_before_ingest_mb": rss_before,
        "peak_rss_before_ingest_mb": peak_before,
        "peak_rss_mb": peak_after,
    }


def run(suites: list[str], quick: bool) -> None:
    """Run one worker subprocess per suite and emit its metric lines."""
    n, devices = (5_000, 50) if quick else (50_000, 50)
    verify_seconds = 1.0 if quick else 3.0
    for suite in suites:
        log(f"ingest [{suite}]: {n:,} readings from {devices} devices in a fresh process")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.ingest", suite, str(n), str(devices),
             str(verify_seconds)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False,
        )
        if proc.returncode != 0:
            raise BenchmarkFailure(f"ingest worker for {suite} exited with {proc.returncode}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        verify = r["verify_per_s_interleaved"]
        ingest = r["n"] / r["ingest_seconds"]
        ratio = ingest / verify
        emit("verify_per_s", suite, verify, "verifications/s",
             message_bytes=r["message_bytes"], measured="bursts between the ingest batches",
             n=r["verify_interleaved_count"],
             before_ingest=round(r["verify_per_s_before"], 1),
             after_ingest=round(r["verify_per_s_after"], 1), threads=1)
        emit("ingest_readings_per_s", suite, ingest, "readings/s", n=r["n"],
             devices=r["devices"], batch=r["batch"], seconds=round(r["ingest_seconds"], 3),
             batch_ms_median=round(r["batch_ms_median"], 2),
             batch_ms_max=round(r["batch_ms_max"], 2),
             per_s_first_tenth=round(r["per_s_first_tenth"], 1),
             per_s_last_tenth=round(r["per_s_last_tenth"], 1), db="sqlite",
             cpu_seconds=round(r["ingest_cpu_seconds"], 3),
             load_1m=[round(x, 2) for x in r["load_1m"]],
             ratio_to_verify=round(ratio, 3), target=RATIO_TARGET)
        emit("ratio_to_verify", suite, ratio, "ratio", target=RATIO_TARGET,
             meets_target=ratio >= RATIO_TARGET)
        emit("ingest_peak_rss_mb", suite, r["peak_rss_mb"], "MiB", n=r["n"],
             measured="ru_maxrss of a fresh process that opened the ledger, pre-signed "
                      "all readings and ingested them",
             rss_before_ingest_mb=round(r["rss_before_ingest_mb"], 1),
             peak_before_ingest_mb=round(r["peak_rss_before_ingest_mb"], 1))


if __name__ == "__main__":
    suite_arg, n_arg, devices_arg, seconds_arg = sys.argv[1:5]
    result = worker(suite_arg, int(n_arg), int(devices_arg), float(seconds_arg))
    sys.stdout.write(json.dumps(result) + "\n")
