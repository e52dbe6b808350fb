"""What the access check costs per request, in process, on SQLite.

The check (:func:`ledger_service.api.deps.authorize`) authenticates the key (one row by
key id, one SHA-256, a constant-time compare, the key's enterprises) and, for a scoped
key, finds the owner of every identifier the request names (one query per kind).
Timed over ``runs`` calls each, after warm-up, for the requests a gateway makes most:

* ``access_check_single_us``: ``POST /v1/readings`` with a gateway key (one device);
* ``access_check_batch_ms``: ``POST /v1/readings/batch`` of 500 readings of 500 devices,
  with ``access_check_batch_per_reading_us``;
* ``access_check_unscoped_us``: an admin's key on ``GET /v1/devices/{id}`` (no owner
  look-up).

The numbers are the check alone, to compare with the request's own cost (a signature
check is about 100 us; one reading over HTTP costs milliseconds).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import ENTERPRISE, check, emit, log, open_ledger, register_devices

BATCH = 500
WARMUP = 20


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def run(suites: list[str], quick: bool) -> None:
    from ledger_service.api import readings, registry
    from ledger_service.api.deps import check_access
    from ledger_service.auth import KeyCreate, Policy, Role, create_key, policy_of

    def declared(endpoint: Callable[..., Any]) -> Policy:
        policy = policy_of(endpoint)
        check(policy is not None, f"{endpoint.__name__} declares a policy")
        assert policy is not None
        return policy

    runs = 200 if quick else 2000
    suite = suites[0]
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        led = open_ledger(Path(tmp), suite)
        devices = [d.id for d in register_devices(led, suite, BATCH)]
        with led.engine.begin() as conn:
            gateway = create_key(conn, KeyCreate(role=Role.GATEWAY,
                                                 enterprises=[ENTERPRISE])).api_key
            admin = create_key(conn, KeyCreate(role=Role.ADMIN)).api_key
        one, batch, device = (declared(readings.ingest_one), declared(readings.ingest_batch),
                              declared(registry.get_device))
        single_body = {"reading": {"device": devices[0]}}
        batch_body = {"readings": [{"reading": {"device": d}} for d in devices]}
        log(f"access_check [{suite}]: {runs} checks each, SQLite, in process")
        cases: list[tuple[str, Callable[[], Any], int]] = [
            ("single", lambda: check_access(led, one, f"Bearer {gateway}", {}, {},
                                            single_body), runs),
            ("batch", lambda: check_access(led, batch, f"Bearer {gateway}", {}, {},
                                           batch_body), max(20, runs // 10)),
            ("unscoped", lambda: check_access(led, device, f"Bearer {admin}",
                                              {"device_id": devices[0]}, {}, None), runs),
        ]
        for name, fn, n in cases:
            samples = _timed(fn, n)
            median = statistics.median(samples)
            if name == "batch":
                emit("access_check_batch_ms", suite, median * 1000, "ms", readings=BATCH,
                     runs=n)
                emit("access_check_batch_per_reading_us", suite, median / BATCH * 1e6, "us",
                     readings=BATCH)
            else:
                emit(f"access_check_{name}_us", suite, median * 1e6, "us", runs=n,
                     p99_us=round(sorted(samples)[int(0.99 * (n - 1))] * 1e6, 1))
        led.engine.dispose()
