"""Real ``carbon-ledger serve`` processes for the benchmarks that measure over HTTP.

Shared by ``ingest_pg`` and ``burst``: a fresh PostgreSQL database per run, service
processes started on it (or on a SQLite file), and the enterprise, site and devices
registered over HTTP the way an operator would.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import ENTERPRISE, SITE, VALID_FROM, BenchDevice, BenchmarkFailure, check

LOCAL_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The PostgreSQL server to benchmark on: ``CARBON_BENCH_DATABASE_URL``, else
    ``CARBON_TEST_DATABASE_URL``, else the local server."""
    return (os.environ.get("CARBON_BENCH_DATABASE_URL")
            or os.environ.get("CARBON_TEST_DATABASE_URL") or LOCAL_SERVER)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database on the benchmark server, dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = server_url()
    name = f"carbon_t_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def services(count: int, database_url: str, data_dir: Path, suite: str,
             workdir: Path) -> Iterator[list[tuple[str, int]]]:
    """``count`` service processes on one database and data directory; (base URL, pid)
    of each.

    Anchoring is kept out of the way (these benchmarks measure ingest, and each
    process's embedded chain lives in its own memory): the loop runs every 30 s and a
    head is due only after 10^9 leaves or a day.
    """
    import httpx

    from ledger_service.devchain import free_port

    env = {**os.environ, "LEDGER_DATABASE_URL": database_url, "LEDGER_DATA_DIR": str(data_dir),
           "LEDGER_LOG_SUITE": suite, "LEDGER_ANCHOR_EVERY_LEAVES": str(10**9),
           "LEDGER_ANCHOR_EVERY_SECONDS": "86400"}
    exe = str(Path(sys.executable).parent / "carbon-ledger")
    procs: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for i in range(count):
            port = free_port()
            log_path = workdir / f"service{i}.log"
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    [exe, "serve", "--port", str(port), "--anchor-interval", "30"],
                    env=env, stdout=out, stderr=subprocess.STDOUT)
            procs.append((proc, f"http://127.0.0.1:{port}", log_path))
        deadline = time.monotonic() + 60
        for proc, url, log_path in procs:
            while True:
                if proc.poll() is not None:
                    raise BenchmarkFailure(f"service at {url} exited with {proc.returncode}: "
                                           f"{log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/v1/log", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchmarkFailure(f"service at {url} did not start in 60 s")
                time.sleep(0.1)
        yield [(url, proc.pid) for proc, url, _ in procs]
    finally:
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def gateway_key(database_url: str, data_dir: Path) -> str:
    """A gateway API key for the bench enterprise, from ``carbon-ledger apikey create``
    on the services' database: the benchmarks pay the access check a gateway pays."""
    env = {**os.environ, "LEDGER_DATABASE_URL": database_url, "LEDGER_DATA_DIR": str(data_dir)}
    done = subprocess.run([str(Path(sys.executable).parent / "carbon-ledger"), "apikey",
                           "create", "--role", "gateway", "--enterprise", ENTERPRISE,
                           "--label", "benchmark"], env=env, capture_output=True, text=True,
                          timeout=60)
    check(done.returncode == 0, f"apikey create: {done.stderr[-500:]}")
    return done.stdout.strip()


def _post(client: Any, path: str, body: Any) -> Any:
    response = client.post(path, json=body)
    check(response.status_code in (200, 201), f"POST {path}: {response.status_code} "
                                              f"{response.text[:500]}")
    return response.json()


def register(url: str, devices: list[BenchDevice], suite: str, api_key: str) -> None:
    """The bench enterprise, its site and ``devices`` with their keys, over HTTP."""
    import httpx

    with httpx.Client(base_url=url, timeout=60,
                      headers={"Authorization": f"Bearer {api_key}"}) as client:
        _post(client, "/v1/enterprises", {"id": ENTERPRISE, "name": "Bench Steel"})
        _post(client, "/v1/sites", {"id": SITE, "enterprise_id": ENTERPRISE, "name": "Plant",
                                    "region": "Liaoning"})
        for dev in devices:
            _post(client, "/v1/devices", {"id": dev.id, "site_id": SITE,
                                          "quantity": "active_energy", "unit": "kWh",
                                          "serial": dev.id})
            _post(client, f"/v1/devices/{dev.id}/keys", {
                "suite": suite, "public_key": dev.key.public_key().hex(),
                "valid_from": VALID_FROM})


def check_log(database_url: str, n: int) -> None:
    """The database holds exactly ``n`` readings at leaf indices ``0..n-1`` and the
    tree has ``n`` leaves: nothing lost, nothing doubled, no fork."""
    from sqlalchemy import func, select

    from ledger_service._internal.db import log_state, make_engine, readings

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            count, low, high, distinct = conn.execute(select(
                func.count(), func.min(readings.c.leaf_index), func.max(readings.c.leaf_index),
                func.count(readings.c.leaf_index.distinct()))).one()
            size = conn.execute(select(log_state.c.tree_size)).scalar_one()
    finally:
        engine.dispose()
    check((count, low, high, distinct, size) == (n, 0, n - 1, n, n),
          f"after ingest: {count} readings, leaf indices {low}..{high} ({distinct} distinct), "
          f"tree size {size}; expected {n} at 0..{n - 1}")
