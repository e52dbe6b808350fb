"""A burst: 10,000 readings from 100 devices, 200 requests in flight, one reading each.

What a fleet of gateways does after a shared outage ends: every gateway flushes its
outbox at once, readings out of order within a device, and some readings sent twice
(a gateway that timed out waiting for an answer sends again). For each database
(``sqlite``: the embedded default's file; ``postgresql``: a fresh database on the
benchmark server, see ``benchmarks/_services.py``) and each suite:

1. start one ``carbon-ledger serve`` process and register 100 devices over HTTP
   (untimed); the readings were signed beforehand, so the client only posts bytes;
2. post every reading to ``POST /v1/readings`` from 200 concurrent requests of one
   asyncio client (aiohttp, HTTP/1.1, 200 connections), the readings shuffled, plus a resend of
   ``RESENDS`` of them mixed into the same burst;
3. every answer must be 201 "accepted" or, for a resend, 200 with the very receipt
   (leaf index and hash) the first send got; any 5xx, any other status, or a reading
   accepted twice fails the run. Afterwards the database must hold exactly 10,000
   readings at leaf indices ``0..9,999`` with a tree of 10,000 leaves.

Prints ``burst_latency_ms`` (p50, p99 and max per request, from send to answer; each
of the 200 workers has its own connection, so nothing waits for a connection, but the
time includes the client's event loop) and ``burst_readings_per_s``. The client shares
the machine's two cores with the service, so the numbers include that contention.

    .venv/bin/python -m benchmarks.run --only burst [--quick] [--suites sm]
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
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
    percentile,
    progress,
    signed_reading,
)
from benchmarks._services import check_log, fresh_database, gateway_key, register, services

DEVICES = 100
CONCURRENCY = 200
RESENDS = 500
DATABASES = ("sqlite", "postgresql")


def _presign(suite: str, per_device: int, domain: Any) -> tuple[list[BenchDevice], list[bytes]]:
    from carbon_protocol.suites import PrivateKey

    devices = [BenchDevice(f"{PREFIX}/dev.burst{i:03d}", PrivateKey.generate(suite))  # type: ignore[arg-type]
               for i in range(DEVICES)]
    bodies = []
    with progress(f"[{suite}] pre-signing readings", DEVICES * per_device) as advance:
        for dev in devices:
            for seq in range(1, per_device + 1):
                signed = signed_reading(dev, seq, domain, secrets.token_hex(16))
                bodies.append(json.dumps(signed.model_dump(mode="json")).encode())
            advance(per_device)
    return devices, bodies


async def _burst(url: str, bodies: list[bytes], resend: list[int],
                 api_key: str) -> tuple[float, list[float], dict[int, Any]]:
    """Post bodies (and the resends) with CONCURRENCY in flight; (wall seconds, latencies,
    the accepted receipt of each body).

    The client is aiohttp: httpx's connection pool spends more CPU per request than the
    service does at 200 connections, which would measure the client, not the ledger.
    """
    import aiohttp

    order = list(range(len(bodies))) + resend
    random.Random(7).shuffle(order)
    receipts: dict[int, Any] = {}
    resent: list[tuple[int, int, Any]] = []
    latencies: list[float] = []
    failures: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in order:
        queue.put_nowait(i)
    headers = {"content-type": "application/json", "authorization": f"Bearer {api_key}"}

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=300)) as client:
        async def worker() -> None:
            while not queue.empty() and not failures:
                i = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    async with client.post("/v1/readings", data=bodies[i],
                                           headers=headers) as response:
                        status, text = response.status, await response.text()
                except aiohttp.ClientError as exc:
                    failures.append(f"reading {i}: {type(exc).__name__}: {exc}")
                    return
                latencies.append(time.perf_counter() - t0)
                if status not in (200, 201):
                    failures.append(f"reading {i}: HTTP {status} {text[:300]}")
                    return
                if i in receipts:
                    resent.append((i, status, json.loads(text)))
                else:
                    receipts[i] = (status, json.loads(text))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - start
    if failures:
        raise BenchmarkFailure("; ".join(failures[:3]))
    # Each reading has exactly one "accepted" (201) answer, whichever of its sends got
    # it (a resend may overtake the first send); the other send of a resent reading is
    # the idempotent duplicate (200) carrying the very same receipt.
    check(len(receipts) == len(bodies), f"{len(receipts)} of {len(bodies)} readings answered")
    accepted: dict[int, Any] = {i: body for i, (status, body) in receipts.items()
                                if status == 201}
    for i, status, body in resent:
        if status == 201:
            check(i not in accepted, f"reading {i} accepted twice: {accepted.get(i)}, {body}")
            accepted[i] = body
    check(len(accepted) == len(bodies),
          f"{len(bodies) - len(accepted)} readings never answered 201 accepted")
    answers = [(i, s, b) for i, (s, b) in receipts.items()] + resent
    for i, status, body in answers:
        check(body == accepted[i], f"reading {i}: HTTP {status} {body}, but it was accepted "
                                   f"as {accepted[i]}")
    return seconds, latencies, accepted


def _one(database: str, url: str, bodies: list[bytes], suite: str, api_key: str) -> None:
    resend = random.Random(11).sample(range(len(bodies)), min(RESENDS, len(bodies)))
    seconds, latencies, receipts = asyncio.run(_burst(url, bodies, resend, api_key))
    leaves = sorted(r["leaf_index"] for r in receipts.values())
    check(leaves == list(range(len(bodies))),
          "receipts do not name each leaf index 0..n-1 exactly once")
    latencies.sort()
    emit("burst_latency_ms", suite, percentile(latencies, 0.99) * 1000, "ms",
         db=database, readings=len(bodies), devices=DEVICES, concurrency=CONCURRENCY,
         resends=len(resend), p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
         p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
         max_ms=round(latencies[-1] * 1000, 1), requests=len(latencies), http_5xx=0)
    emit("burst_readings_per_s", suite, len(bodies) / seconds, "readings/s", db=database,
         seconds=round(seconds, 2), concurrency=CONCURRENCY)


def run(suites: list[str], quick: bool) -> None:
    """For each suite and database: one service process, one burst; emit the lines."""
    import httpx

    from carbon_protocol.models import Domain

    per_device = 20 if quick else 100
    for suite in suites:
        with tempfile.TemporaryDirectory(prefix=f"bench-burst-{suite}-") as tmp:
            work = Path(tmp)
            data_dir = work / "data"  # shared by every run: one log key, one domain
            devices: list[BenchDevice] = []
            bodies: list[bytes] = []
            for database in DATABASES:
                log(f"burst [{suite}/{database}]: {DEVICES * per_device:,} readings from "
                    f"{DEVICES} devices, {CONCURRENCY} in flight, {RESENDS} resends")
                context: AbstractContextManager[str]
                if database == "sqlite":
                    db_file = work / f"burst-{secrets.token_hex(4)}.db"
                    context = nullcontext(f"sqlite:///{db_file}")
                else:
                    context = fresh_database()
                with context as db_url, services(1, db_url, data_dir, suite, work) as running:
                    url = running[0][0]
                    if not bodies:
                        info = httpx.get(f"{url}/v1/log", timeout=10).json()
                        devices, bodies = _presign(suite, per_device, Domain(**info["domain"]))
                    key = gateway_key(db_url, data_dir)
                    register(url, devices, suite, key)
                    _one(database, url, bodies, suite, key)
                    check_log(db_url, len(bodies))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    run([a for a in arguments if a != "--quick"] or ["sm", "intl"], "--quick" in arguments)
