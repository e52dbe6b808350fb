"""Ingest throughput on PostgreSQL through real service processes: one, then two.

For each suite, and for 1 and then 2 processes, on a fresh database each time:

1. start that many ``carbon-ledger serve`` processes at once on an empty PostgreSQL
   database (``CARBON_BENCH_DATABASE_URL``, else ``CARBON_TEST_DATABASE_URL``, else
   ``postgresql+psycopg://postgres@127.0.0.1:5432/test``: a database
   ``carbon_t_<random>`` is created on that server and dropped afterwards) sharing one
   data directory, hence one log key and one embedded-chain key, hence one signing
   domain. Anchoring is kept out of the way (this measures ingest, and each process's
   embedded chain lives in its own memory): the anchoring loop runs every 30 s, the
   longest interval it allows, and a head is due only after 10^9 leaves or a day, so
   at most the first head of a run is anchored, once;
2. register the enterprise, site and devices over HTTP (untimed); the readings were
   signed once per suite before the first run and their batch bodies serialised to
   JSON bytes, so the client's work while timed is posting bytes and parsing answers;
3. ``ingest_readings_per_s``: ``CLIENTS_PER_PROCESS`` client threads per service
   process post the batches (round-robin over the processes) to
   ``POST /v1/readings/batch``; wall clock from the first post to the last answer.
   Every reading must be accepted, and afterwards the database must hold exactly
   ``n`` readings at leaf indices ``0..n-1`` with a tree size of ``n``.

Then ``ingest_pg_scaling`` = (two processes) / (one process), with target 1.5. The
service processes, PostgreSQL and the client share the machine's CPUs, and one process
already uses more than one core (signature checks release the GIL, and two requests
are in flight per process), so on a small machine the ratio measures how many cores
are left, not the ledger. The context says which: ``cpus``; ``one_process_cores``
(CPU seconds of the single service process per wall second); and ``cpu_efficiency``,
readings per service CPU second with two processes over the same with one. An
efficiency near 1 means the second process costs nothing in lock waits or retries,
so throughput grows with the cores given to the processes.

    .venv/bin/python -m benchmarks.run --only ingest_pg [--quick] [--suites sm]
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    PREFIX,
    BenchDevice,
    BenchmarkFailure,
    check,
    emit,
    log,
    progress,
    signed_reading,
)
from benchmarks._services import (
    check_log,
    cpu_seconds,
    fresh_database,
    gateway_key,
    register,
    services,
)

BATCH = 1_000
CLIENTS_PER_PROCESS = 2
SCALING_TARGET = 1.5
def _ingest(urls: list[str], bodies: list[bytes],
            api_key: str) -> tuple[float, int, list[float]]:
    """Post every body, round-robin over the services, with CLIENTS_PER_PROCESS threads
    per service; (wall seconds, readings accepted, per-batch seconds)."""
    import httpx

    clients = [httpx.Client(base_url=url, timeout=300,
                            headers={"content-type": "application/json",
                                     "authorization": f"Bearer {api_key}"}) for url in urls]
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    accepted = [0]
    latencies: list[float] = []
    failures: list[str] = []

    def worker(client: Any) -> None:
        while True:
            with lock:
                if not queue or failures:
                    return
                i, body = queue.pop(0)
            t0 = time.perf_counter()
            response = client.post("/v1/readings/batch", content=body)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if response.status_code != 200:
                    failures.append(f"batch {i}: HTTP {response.status_code} "
                                    f"{response.text[:300]}")
                    return
                result = response.json()
                if result["accepted"] != BATCH:
                    bad = [x for x in result["items"] if x["status"] != "accepted"][:2]
                    failures.append(f"batch {i}: {result['accepted']} accepted; {bad}")
                accepted[0] += result["accepted"]

    threads = [threading.Thread(target=worker, args=(clients[t % len(clients)],))
               for t in range(CLIENTS_PER_PROCESS * len(clients))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for c in clients:
        c.close()
    if failures:
        raise BenchmarkFailure("; ".join(failures[:3]))
    return seconds, accepted[0], latencies


def _presign(suite: str, n: int, device_count: int, domain: Any) -> tuple[list[BenchDevice],
                                                                            list[bytes]]:
    from carbon_protocol.suites import PrivateKey

    devices = [BenchDevice(f"{PREFIX}/dev.pg{i:05d}", PrivateKey.generate(suite))  # type: ignore[arg-type]
               for i in range(device_count)]
    signed = []
    with progress(f"[{suite}] pre-signing readings", n) as advance:
        for seq in range(1, n // device_count + 1):
            for dev in devices:
                signed.append(signed_reading(dev, seq, domain, secrets.token_hex(16)))
            advance(device_count)
    bodies = [
        json.dumps({"readings": [s.model_dump(mode="json") for s in signed[i:i + BATCH]]})
        .encode() for i in range(0, n, BATCH)
    ]
    return devices, bodies


def run(suites: list[str], quick: bool) -> None:
    """For each suite: one process, then two, each on a fresh database; emit the lines."""
    import httpx

    from carbon_protocol.models import Domain

    n, device_count = (6_000, 50) if quick else (30_000, 50)
    check(n % BATCH == 0 and n % device_count == 0, "n must be a multiple of batch and devices")
    cpus = os.cpu_count() or 1
    for suite in suites:
        with tempfile.TemporaryDirectory(prefix=f"bench-ingest-pg-{suite}-") as tmp:
            work = Path(tmp)
            data_dir = work / "data"  # shared by every run: one log key, one domain
            rates: dict[int, float] = {}
            cpu_use: dict[int, tuple[float, float]] = {}  # (service CPU s, wall s)
            devices: list[BenchDevice] = []
            bodies: list[bytes] = []
            for processes in (1, 2):
                log(f"ingest_pg [{suite}]: {n:,} readings, {processes} service process(es), "
                    f"{CLIENTS_PER_PROCESS} client threads each, fresh PostgreSQL database")
                with fresh_database() as url, services(processes, url, data_dir, suite,
                                                         work) as running:
                    urls = [u for u, _ in running]
                    info = httpx.get(f"{urls[0]}/v1/log", timeout=10).json()
                    if not bodies:
                        devices, bodies = _presign(suite, n, device_count,
                                                   Domain(**info["domain"]))
                    else:
                        check(info["domain"] == json.loads(bodies[0])["readings"][0]
                              ["reading"]["domain"], "the signing domain changed between runs")
                    key = gateway_key(url, data_dir)
                    register(urls[0], devices, suite, key)
                    load_before = os.getloadavg()[0]
                    cpu_before = [cpu_seconds(pid) for _, pid in running]
                    seconds, accepted, latencies = _ingest(urls, bodies, key)
                    cpu = [after - before for after, before in zip(
                        [cpu_seconds(pid) for _, pid in running], cpu_before, strict=True)]
                    check(accepted == n, f"[{suite}] {accepted} of {n} readings accepted")
                    check_log(url, n)
                rates[processes] = n / seconds
                cpu_use[processes] = (sum(cpu), seconds)
                latencies.sort()
                emit("ingest_readings_per_s", suite, rates[processes], "readings/s", n=n,
                     devices=device_count, batch=BATCH, db="postgresql", processes=processes,
                     client_threads=CLIENTS_PER_PROCESS * processes,
                     seconds=round(seconds, 3), cpus=cpus,
                     service_cpu_seconds=[round(c, 2) for c in cpu],
                     readings_per_service_cpu_s=round(n / sum(cpu), 1),
                     batch_ms_median=round(latencies[len(latencies) // 2] * 1000, 1),
                     batch_ms_max=round(latencies[-1] * 1000, 1),
                     load_1m=[round(load_before, 2), round(os.getloadavg()[0], 2)])
            ratio = rates[2] / rates[1]
            emit("ingest_pg_scaling", suite, ratio, "ratio", target=SCALING_TARGET,
                 meets_target=ratio >= SCALING_TARGET, cpus=cpus,
                 one_process=round(rates[1], 1), two_processes=round(rates[2], 1),
                 one_process_cores=round(cpu_use[1][0] / cpu_use[1][1], 2),
                 cpu_efficiency=round(cpu_use[1][0] / cpu_use[2][0], 3))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    run([a for a in arguments if a != "--quick"] or ["sm", "intl"], "--quick" in arguments)
