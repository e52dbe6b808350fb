"""Identifier resolution: resolutions per second, and a custody walk over 100 meters.

Two parts per suite (the suite is the resolver log's and the prefix owner's):

1. **Resolutions per second, one core.** A root node (SQLite file, embedded chain)
   holds 10,000 device records (quick: 2,000) registered through ``Resolver.submit``
   and anchored. Measured for 3 s each, on random identifiers:

   * ``in_process``: the resolver function itself, ``Resolver.resolve``, in this
     process pinned to one CPU: ``uncached`` (``cached=False``: record row, history,
     inclusion proof from stored nodes, answer built and serialised to JSON) and
     ``cached`` (the answer cache warm); ``per_cpu_second`` divides by the thread's CPU
     time, which other processes on the core do not inflate;
   * ``http``: ``GET /resolve/{id}`` against ``python -m benchmarks.resolver serve``: one
     uvicorn process (uvloop + httptools when ``uvicorn[standard]`` is installed, else
     asyncio + h11; the ``server`` field says which) serving
     :func:`identifier_resolver.api.create_asgi`, pinned to one CPU with
     ``os.sched_setaffinity``, so "one core" is literal. It is driven by a minimal
     asyncio HTTP/1.1 client with 16 keep-alive connections pinned to the *other* CPU
     of this 2-core machine: client and server do not share a core, but both share the
     machine with whatever else runs. ``uncached`` runs the server with
     ``RESOLVER_CACHE_SIZE=0``; ``cached`` first asks for every identifier once (so
     the run measures cached answers only: an earlier version warmed for 2 s at random
     and measured a mix with ~15% misses, each costing ~1 ms). Each mode runs twice:
     one request at a time per connection (``pipeline: 1``), and 8 pipelined per
     connection (HTTP/1.1 pipelining, ``pipeline: 8``), which cuts the client's CPU per
     request so the server is closer to saturated. ``server_cpu_s`` shows
     whether the server core was saturated; when it was not, the client was the limit,
     and ``per_server_cpu_second`` (answers per CPU second the server spent) is what
     one server core can carry.

   Answers are real: a sample of each run's answers must pass ``verify_answer`` with
   an anchor required.

2. **Custody walk, monthly report → readings, 100 meters.** A real ledger (log suite =
   the suite; meters sign with Ed25519 to keep set-up short, which does not change
   what is walked) ingests 15-minute readings of 100 meters for 30 days (quick: 2),
   anchoring once per day. ``bridge.sync_ledger`` registers the ledger's identifiers
   in a resolver mounted in-process on the ledger's own chain: 100 meters x 30 daily
   windows = 3,000 reading ranges. This ledger has no rules chain, hence no inventories
   of its own (reports are not logged by the ledger at all), so the benchmark registers
   a **stand-in** in the resolver: one monthly
   inventory per meter (``computed_from`` its 30 ranges) and one monthly report
   (``summarises`` the 100 inventories). Timed: ``custody(report, "down", depth=2)``
   in-process (median of 7 after a warm-up), without and with per-node proofs, and over
   HTTP; the walk must cover every ingested reading (sum of range counts).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
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
    PREFIX,
    ROOT,
    BenchmarkFailure,
    check,
    emit,
    log,
    open_ledger,
    progress,
    register_devices,
    signed_reading,
)

CACHED_TARGET = 5_000
UNCACHED_TARGET = 1_000
WALK_TARGET_S = 1.0
SECONDS = 3.0
METERS = 100
READINGS_PER_DAY = 96
HTTP_CONNECTIONS = 16
HTTP_PIPELINE = 8
"""Requests in flight per connection (HTTP/1.1 pipelining) in the timed HTTP runs."""


def _cpus() -> tuple[int, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], (cpus[1] if len(cpus) > 1 else None)


def _settings(data_dir: Path, suite: str, owner: Any, **extra: Any) -> Any:
    from identifier_resolver.settings import ResolverSettings

    return ResolverSettings(data_dir=data_dir, root=True, log_suite=suite,  # type: ignore[arg-type]
                            trust_root_key=f"{suite}:{owner.public_key().hex()}",
                            node_id="bench", chain="none", **extra)


def _env(settings: Any) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RESOLVER_DATA_DIR": str(settings.data_dir),
            "RESOLVER_ROOT": "true", "RESOLVER_LOG_SUITE": settings.log_suite,
            "RESOLVER_TRUST_ROOT_KEY": str(settings.trust_root_key), "RESOLVER_CHAIN": "none",
            "RESOLVER_NODE_ID": settings.node_id}


class Server:
    """``python -m benchmarks.resolver serve PORT CPU`` with the node's settings in env."""

    def __init__(self, settings: Any, cpu: int, cache_size: int) -> None:
        env = {**_env(settings), "RESOLVER_CACHE_SIZE": str(cache_size)}
        for attempt in range(3):  # a free port can be taken before the server binds it
            if self._start(env, cpu, last=attempt == 2):
                return

    def _start(self, env: dict[str, str], cpu: int, *, last: bool) -> bool:
        import socket

        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.resolver", "serve", str(self.port), str(cpu)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self._close()
                if last:
                    raise BenchmarkFailure(f"resolver server did not start: {err[-1000:]}")
                return False
            time.sleep(0.1)

    def _close(self) -> None:
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close()


async def _load(url: str, paths: list[str], seconds: float, *, each_once: bool = False,
                pipeline: int = 1) -> tuple[int, int, list[bytes]]:
    """Keep ``HTTP_CONNECTIONS`` keep-alive connections busy for ``seconds`` (or, with
    ``each_once``, until every path was asked once: warming the cache completely, so
    a "cached" run measures cached answers only).

    A minimal HTTP/1.1 client on asyncio streams (request line out, status line,
    ``Content-Length`` and body in): a general client (httpx) costs more CPU per
    request than the server being measured, and would measure itself.
    """
    host, _, port = url.removeprefix("http://").partition(":")
    ok = bad = 0
    sample: list[bytes] = []
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal ok, bad
        rng = random.Random(seed)
        mine = iter(paths[seed::HTTP_CONNECTIONS]) if each_once else None
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                if mine is None:
                    batch = [rng.choice(paths) for _ in range(pipeline)]
                else:
                    batch = [p for p in (next(mine, "") for _ in range(pipeline)) if p]
                    if not batch:
                        break
                # HTTP/1.1 pipelining: the requests go out together, the answers come
                # back in order; the client makes one write per batch, not per request.
                writer.write(b"".join(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                                      for path in batch))
                for _ in batch:
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    body = await reader.readexactly(length)
                    if status == 200:
                        ok += 1
                        if len(sample) < 20 and rng.random() < 0.01:
                            sample.append(body)
                    else:
                        bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(i) for i in range(HTTP_CONNECTIONS)))
    return ok, bad, sample


def _rate(fn: Any, ids: list[str], seconds: float) -> tuple[float, int, float]:
    """Calls per wall second, calls, and the CPU seconds this thread spent (on a shared
    machine the wall rate also counts time other processes held the core)."""
    rng = random.Random(7)
    n = 0
    start, cpu0 = time.perf_counter(), time.thread_time()
    deadline = start + seconds
    while True:
        for _ in range(64):
            fn(rng.choice(ids))
        n += 64
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n, time.thread_time() - cpu0


def _check_answers(answers: list[Any], trust: Any) -> None:
    from identifier_resolver.models import Answer
    from identifier_resolver.verify import verify_answer

    check(answers, "no answers sampled")
    for raw in answers:
        answer = raw if isinstance(raw, Answer) else Answer.model_validate_json(raw)
        verify_answer(answer, trust, query=answer.query, require_anchor=True)


def resolutions(suite: str, quick: bool) -> None:
    """Part 1: resolutions per second, in-process and over HTTP, cached and uncached."""
    from carbon_protocol.suites import PrivateKey
    from identifier_resolver import records as R
    from identifier_resolver.resolver import Resolver

    n = 2_000 if quick else 10_000
    server_cpu, client_cpu = _cpus()
    with tempfile.TemporaryDirectory(prefix="bench-resolver-") as tmp:
        owner = PrivateKey.generate(suite)  # type: ignore[arg-type]
        settings = _settings(Path(tmp) / "node", suite, owner)
        from ledger_service._internal.chain import ChainClient

        resolver = Resolver.open(settings, chain=ChainClient.embedded())
        resolver.bootstrap(owner, [PREFIX], url="http://127.0.0.1:1")
        ids = [f"{PREFIX}/dev.b{i:05d}" for i in range(n)]
        with progress(f"{suite}: sign and register {n} records", n) as advance:
            for start in range(0, n, 500):
                resolver.submit([R.new_record(
                    ident, "device", f"{PREFIX}/ent.bench", owner,
                    links=[("part_of", f"{PREFIX}/site.bench")],
                    data={"serial": ident, "quantity": "active_energy", "unit": "kWh"})
                    for ident in ids[start:start + 500]])
                advance(500)
        check(resolver.anchor_tick(force=True) is not None, "anchoring failed")
        trust = resolver.trust_root("http://127.0.0.1:1")
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_cpu})
        try:
            rate, done, cpu = _rate(lambda i: resolver.resolve(i, cached=False), ids, SECONDS)
            _check_answers([resolver.resolve(i, cached=False) for i in ids[:20]], trust)
            emit("resolutions_per_s", suite, rate, "resolutions/s", mode="in_process",
                 cache="uncached", target=UNCACHED_TARGET, meets_target=rate >= UNCACHED_TARGET,
                 records=n, resolutions=done, cpu=server_cpu, cpu_s=round(cpu, 2),
                 per_cpu_second=round(done / cpu, 1) if cpu else None)
            for ident in ids:
                resolver.resolve(ident)
            rate, done, cpu = _rate(resolver.resolve, ids, SECONDS)
            _check_answers([resolver.resolve(i) for i in ids[:20]], trust)
            emit("resolutions_per_s", suite, rate, "resolutions/s", mode="in_process",
                 cache="cached", target=CACHED_TARGET, meets_target=rate >= CACHED_TARGET,
                 records=n, resolutions=done, cpu=server_cpu, cpu_s=round(cpu, 2),
                 per_cpu_second=round(done / cpu, 1) if cpu else None)
        finally:
            os.sched_setaffinity(0, before)
        resolver.engine.dispose()
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        try:
            paths = [f"/resolve/{i}" for i in ids]
            for cache, size, target in (("uncached", 0, UNCACHED_TARGET),
                                        ("cached", 100_000, CACHED_TARGET)):
                server = Server(settings, server_cpu, size)
                runs = []
                try:
                    if size:  # warm the cache: every identifier once
                        asyncio.run(_load(server.url, paths, 600.0, each_once=True))
                    for depth in (1, HTTP_PIPELINE):
                        cpu0 = server.cpu_seconds()
                        start = time.perf_counter()
                        ok, bad, sample = asyncio.run(_load(server.url, paths, SECONDS,
                                                            pipeline=depth))
                        runs.append((depth, ok, bad, sample, time.perf_counter() - start,
                                     server.cpu_seconds() - cpu0))
                finally:
                    server.stop()
                for depth, ok, bad, sample, elapsed, cpu in runs:
                    check(bad == 0, f"{bad} HTTP resolutions failed")
                    _check_answers(sample or [], trust)
                    rate = ok / elapsed
                    emit("resolutions_per_s", suite, rate, "resolutions/s", mode="http",
                         cache=cache, target=target, meets_target=rate >= target, records=n,
                         resolutions=ok, connections=HTTP_CONNECTIONS, pipeline=depth,
                         server_cpu=server_cpu, client_cpu=client_cpu,
                         seconds=round(elapsed, 2), server_cpu_s=round(cpu, 2),
                         per_server_cpu_second=round(ok / cpu, 1) if cpu else None,
                         server=server_stack()[2])
        finally:
            os.sched_setaffinity(0, before)


def custody(suite: str, quick: bool) -> None:
    """Part 2: the walk from a monthly report down to every reading of 100 meters."""
    import httpx

    from carbon_protocol.suites import PrivateKey
    from identifier_resolver import records as R
    from identifier_resolver.bridge import range_id
    from identifier_resolver.custody import reading_count
    from identifier_resolver.models import CustodyGraph
    from identifier_resolver.resolver import Resolver
    from identifier_resolver.verify import verify_custody

    days = 2 if quick else 30
    with tempfile.TemporaryDirectory(prefix="bench-custody-") as tmp:
        led = open_ledger(Path(tmp) / "ledger", suite)
        meters = register_devices(led, "intl", METERS)
        total = 0
        with progress(f"{suite}: {METERS} meters x {days} days of readings",
                      days * METERS * READINGS_PER_DAY) as advance:
            for day in range(days):
                batch = [signed_reading(m, day * READINGS_PER_DAY + k + 1, led.domain,
                                        secrets.token_hex(16))
                         for k in range(READINGS_PER_DAY) for m in meters]
                for start in range(0, len(batch), 1_000):
                    result = led.ingest(batch[start:start + 1_000])
                    check(result.accepted == len(batch[start:start + 1_000]),
                          f"readings refused: {result.rejected}")
                total += len(batch)
                events = led.anchor_tick(force=True)
                check(any(e.status == "final" for e in events), f"day {day} not anchored")
                advance(len(batch))
        owner = PrivateKey.generate(suite)  # type: ignore[arg-type]
        settings = _settings(Path(tmp) / "resolver", suite, owner)
        resolver = Resolver.open(settings, chain=led.chain)  # mounted on the ledger's chain
        resolver.bootstrap(owner, [PREFIX], url="http://127.0.0.1:1")
        from identifier_resolver.bridge import sync_ledger

        start = time.perf_counter()
        report = sync_ledger(led, resolver, {PREFIX: owner})
        sync_s = time.perf_counter() - start
        check(report.readings == total and report.by_type["reading_range"] == METERS * days,
              f"bridge registered {report.readings} readings, {dict(report.by_type)}")
        emit("bridge_sync_s", suite, sync_s, "s", records=report.registered,
             reading_ranges=report.by_type["reading_range"], readings=total, windows=days)
        # Stand-in inventories and report (the ledger has none yet): one inventory per
        # meter for the month, one report for the month.
        log_id = led.settings.log_id
        with led.reader.connect() as conn:
            from sqlalchemy import select

            from ledger_service._internal.db import anchors

            sizes = sorted(int(r.tree_size) for r in conn.execute(
                select(anchors.c.tree_size).where(anchors.c.status == "final")))
        bounds = list(zip([0, *sizes[:-1]], sizes, strict=True))
        inventories = []
        for m in meters:
            suffix = m.id.partition("/")[2]
            inventories.append(R.new_record(
                f"{PREFIX}/inv.{suffix}.2026-01", "inventory", f"{PREFIX}/ent.bench", owner,
                links=[("computed_from", range_id(log_id, m.id, a, b)) for a, b in bounds],
                data={"period": "2026-01", "device": m.id, "stand_in": True}))
        report_id = f"{PREFIX}/rep.bench.2026-01"
        resolver.submit(inventories)
        resolver.submit([R.new_record(
            report_id, "report", f"{PREFIX}/ent.bench", owner,
            links=[("summarises", i.record.id) for i in inventories],
            data={"period": "2026-01", "stand_in": True})])
        check(resolver.anchor_tick(force=True) is not None, "resolver anchoring failed")
        trust = resolver.trust_root("http://127.0.0.1:1")

        for proofs in (False, True):
            samples = []
            graph: Any = None
            for _ in range(8):
                start = time.perf_counter()
                graph = resolver.custody(report_id, "down", 2, proofs=proofs)
                samples.append(time.perf_counter() - start)
            assert isinstance(graph, CustodyGraph)
            covered = reading_count(graph)
            ranges = sum(n.type == "reading_range" for n in graph.nodes)
            check(covered == total and ranges == METERS * days,
                  f"walk covers {covered} of {total} readings in {ranges} ranges")
            if proofs:
                verify_custody(graph, trust, require_anchor=True)
            median = statistics.median(samples[1:])
            emit("custody_walk_s", suite, median, "s", mode="in_process", proofs=proofs,
                 stat="median", runs=len(samples) - 1, max=round(max(samples[1:]), 4),
                 target=WALK_TARGET_S, meets_target=median < WALK_TARGET_S, meters=METERS,
                 days=days, nodes=len(graph.nodes), edges=len(graph.edges),
                 reading_ranges=ranges, readings=covered, stand_in="inventory+report")
        resolver.engine.dispose()
        server_cpu, _ = _cpus()
        server = Server(settings, server_cpu, 100_000)
        try:
            samples = []
            for _ in range(6):
                start = time.perf_counter()
                r = httpx.get(f"{server.url}/custody/{report_id}",
                              params={"direction": "down", "depth": 2}, timeout=60)
                samples.append(time.perf_counter() - start)
                check(r.status_code == 200, f"HTTP custody walk answered {r.status_code}")
            covered = reading_count(CustodyGraph.model_validate_json(r.content))
            check(covered == total, f"HTTP walk covers {covered} of {total} readings")
        finally:
            server.stop()
        median = statistics.median(samples[1:])
        emit("custody_walk_s", suite, median, "s", mode="http", proofs=False, stat="median",
             runs=len(samples) - 1, target=WALK_TARGET_S, meets_target=median < WALK_TARGET_S,
             meters=METERS, days=days, readings=covered, response_bytes=len(r.content))
        led.engine.dispose()


def run(suites: list[str], quick: bool) -> None:
    """Both parts for each suite."""
    for suite in suites:
        log(f"resolver ({suite}): resolutions per second")
        resolutions(suite, quick)
        log(f"resolver ({suite}): custody walk, {METERS} meters")
        custody(suite, quick)


def server_stack() -> tuple[str, str, str]:
    """``(loop, http, label)``: uvloop and httptools when installed (``uvicorn[standard]``),
    else asyncio and h11; what the server runs and the benchmark reports."""
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio", "h11", "uvicorn (h11, asyncio loop)"
    return "uvloop", "httptools", "uvicorn (httptools, uvloop)"


def serve(port: int, cpu: int) -> None:
    """The HTTP worker: this node's settings from RESOLVER_*, pinned to ``cpu`` (one
    process, one core: the figure is literally "per core")."""
    import uvicorn

    from identifier_resolver.api import create_asgi
    from identifier_resolver.resolver import Resolver

    os.sched_setaffinity(0, {cpu})
    loop, http, _ = server_stack()
    uvicorn.run(create_asgi(Resolver.open()), host="127.0.0.1", port=port,
                log_level="warning", access_log=False, loop=loop, http=http)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.stderr.write(json.dumps({"usage": "python -m benchmarks.resolver serve PORT CPU"}))
        sys.exit(2)
