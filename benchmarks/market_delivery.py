"""Market deliveries at scale: one meter-month and a ~50,000-reading dataset.

The marketplace delivers a dataset's signed readings encrypted to the buyer with what
proves them (``docs/marketplace.md`` §5). Datasets may hold up to 200,000 readings, so
the questions are how long the ledger takes to build a delivery, how big the response
is, how long the buyer takes to open and verify it, and how much memory each side
needs. Each suite runs in a fresh subprocess
(``python -m benchmarks.market_delivery SUITE METERS``) so its RSS is its own.

Set-up (not timed): a ledger opened with rules (the in-process EVM with ``DataMarket``
beside ``CarbonAnchor``), ``METERS`` meters of the owner and ``NEIGHBOURS`` more with
keys of ``SUITE``, January 2026 of 15-minute readings from each (2,976 per meter)
ingested time-major in batches of 1,000, owner and neighbour meters alternating, every
leaf anchored. With as many neighbours as meters (the default) the owner's readings
are every other leaf of the log: the leaf-set proof's worst realistic case, one hash
per gap; with none they are one contiguous run and need no proof hash at all. Two
datasets are listed: one meter's month and every owner meter's month (17 meters:
50,592 readings); for each, a buyer of the same suite requests it and the owner grants
it. Then, per dataset:

* ``market_delivery_build_seconds``: :func:`ledger_service.market.delivery.deliver`
  (the grant checked in the log and on chain, readings and proofs fetched, the
  plaintext serialised and sealed, the ``data_access`` record appended);
* ``market_delivery_response_bytes``: the JSON of the response body (the envelope,
  base64url ciphertext, and the access record id); ``plaintext_bytes`` in context;
* ``market_delivery_open_seconds``: the buyer, in a fresh process, reads the envelope
  file and runs :func:`~ledger_service.market.delivery.open_delivery` with the listed
  content hash (decrypt, parse, every signature and proof checked); the delivery must
  verify and hold exactly the dataset's readings;
* ``market_delivery_build_peak_mib``: the highest RSS of the ledger's process while
  building (sampled every 5 ms) minus its RSS just before (``rss_before_mib``);
* ``market_delivery_open_peak_mib``: the buyer process's peak RSS minus its RSS once
  its modules were imported: what opening one delivery costs in memory.

Run: ``python -m benchmarks.market_delivery [SUITE] [METERS] [NEIGHBOURS]`` (default
``intl 17 17``) or ``python -m benchmarks.run --only market_delivery`` (17 and 17;
``--quick``: 3 and 3). Results, and the format change they led to, are in
``benchmarks/README.md``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    ENTERPRISE,
    PREFIX,
    ROOT,
    SITE,
    BenchDevice,
    BenchmarkFailure,
    check,
    emit,
    log,
    peak_rss_mb,
    register_devices,
    rss_mb,
)

FULL_METERS = 17  # 17 x 2,976 = 50,592 readings
QUICK_METERS = 3
SLOTS = 2_976  # January, every 15 minutes
BATCH = 1_000
BUYER = f"{PREFIX}/ent.buyer"
START = datetime(2026, 1, 1, tzinfo=UTC)
T = TypeVar("T")


@contextmanager
def _peak_rss() -> Iterator[dict[str, float]]:
    """Sample this process's RSS every 5 ms while the block runs; yields a dict that
    holds ``before`` and, after the block, ``peak`` (MiB)."""
    out = {"before": rss_mb(), "peak": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out["peak"] = max(out["peak"], rss_mb())
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak"] = max(out["peak"], rss_mb())


def _timed(fn: Callable[[], T]) -> tuple[T, float, dict[str, float]]:
    with _peak_rss() as mem:
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
    return value, seconds, mem


def _reading(dev: BenchDevice, seq: int, domain: Any) -> Any:
    from carbon_protocol.models import Reading
    from carbon_protocol.signing import sign_reading

    at = START + timedelta(minutes=15 * seq)  # a reading is stamped at its interval's end
    reading = Reading(
        suite=dev.key.suite, key_id=dev.key.public_key().key_id, device=dev.id, seq=seq,
        measured_at=f"{at:%Y-%m-%dT%H:%M:%SZ}", quantity="active_energy", unit="kWh",
        value=f"{12 + seq % 7}.{seq % 1000:03d}",
        cumulative=f"{100000 + 12 * seq}.{seq % 1000:03d}", quality="measured",
        salt=secrets.token_hex(16), domain=domain)
    return sign_reading(reading, dev.key)


def _setup(data_dir: Path, suite: str, meters: int,
           neighbours: int) -> tuple[Any, list[BenchDevice]]:
    """A ledger holding January from ``meters`` meters (returned) and ``neighbours``
    more, their readings interleaved in the log: owner 0, neighbour 0, owner 1, ..."""
    from ledger_service import registry
    from ledger_service.ledger import Ledger
    from ledger_service.models import EnterpriseCreate, SiteCreate
    from ledger_service.settings import Settings

    led = Ledger.open(Settings(data_dir=data_dir, log_suite=suite), rules=True)
    led.call(registry.create_enterprise, EnterpriseCreate(id=ENTERPRISE, name="Bench Steel"))
    led.call(registry.create_enterprise, EnterpriseCreate(id=BUYER, name="Bench Buyer"))
    led.call(registry.create_site, SiteCreate(id=SITE, enterprise_id=ENTERPRISE,
                                              name="Plant", region="Liaoning"))
    every = register_devices(led, suite, meters + neighbours)
    devs, others = every[:meters], every[meters:]
    order = [d for pair in zip(devs, others, strict=False) for d in pair]
    order += devs[len(others):] + others[len(devs):]
    batch: list[Any] = []
    accepted = 0
    for seq in range(1, SLOTS + 1):
        for dev in order:
            batch.append(_reading(dev, seq, led.domain))
            if len(batch) == BATCH:
                accepted += led.ingest(batch).accepted
                batch = []
    if batch:
        accepted += led.ingest(batch).accepted
    check(accepted == len(every) * SLOTS,
          f"only {accepted} of {len(every) * SLOTS} readings accepted")
    led.anchor_tick(force=True)
    return led, devs


def _measure(led: Any, suite: str, devices: list[str]) -> dict[str, Any]:
    """List ``devices``' January, sell it to the buyer, deliver it and open it."""
    from carbon_protocol.envelope import RecipientPrivateKey
    from ledger_service.auth.keys import Principal
    from ledger_service.auth.roles import Role
    from ledger_service.market.datasets import list_dataset
    from ledger_service.market.delivery import deliver
    from ledger_service.market.grants import grant, request
    from ledger_service.market.models import (
        DataRequestCreate,
        DatasetCreate,
        GrantCreate,
        RecipientKeyIn,
    )

    listed = list_dataset(led, DatasetCreate(
        owner=ENTERPRISE, scene="trading", title="January, 15 min", devices=devices,
        period_from="2026-01-01T00:00:00Z", period_to="2026-02-01T00:00:00Z"))
    n = int(listed.metadata["readings"])
    check(n == len(devices) * SLOTS, f"the dataset holds {n} readings")
    key = RecipientPrivateKey.generate(suite)  # type: ignore[arg-type]
    asked = request(led, listed.dataset_id, DataRequestCreate(
        buyer=BUYER, purpose="benchmark",
        recipient_key=RecipientKeyIn(suite=suite, public_key=key.public_key().hex())))
    granted = grant(led, asked.request_id, GrantCreate(
        kind="sale", price=1, expires_at="2099-01-01T00:00:00Z"))
    principal = Principal(key_id="bench", role=Role.BUYER, enterprises=frozenset({BUYER}))
    delivered, build_s, build_mem = _timed(lambda: deliver(led, granted.grant_id, principal))
    body = delivered.model_dump_json().encode("utf-8")
    opened = _open_elsewhere(delivered.envelope.model_dump_json(), key, listed.content_hash)
    check(opened["readings"] == n, f"the delivery verified {opened['readings']} readings of {n}")
    return {"readings": n, "meters": len(devices), "format": opened["format"],
            "build_s": build_s, "response_bytes": len(body),
            "build_peak": build_mem["peak"] - build_mem["before"],
            "build_before": build_mem["before"], **opened}


def _open_elsewhere(envelope: str, key: Any, content_hash: str) -> dict[str, Any]:
    """Open and verify the envelope in a fresh process, as a buyer would: its peak RSS
    is then the buyer's alone."""
    with tempfile.TemporaryDirectory(prefix="bench-market-buyer-") as tmp:
        env_file, key_file = Path(tmp) / "envelope.json", Path(tmp) / "buyer.key"
        env_file.write_text(envelope, encoding="utf-8")
        key_file.write_text(key.private_bytes().hex(), encoding="ascii")
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.market_delivery", "--open", str(env_file),
             str(key_file), key.suite, content_hash], cwd=ROOT, capture_output=True,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    if done.returncode != 0:
        raise BenchmarkFailure(f"the buyer could not open the delivery:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def buyer(envelope_file: str, key_file: str, suite: str, content_hash: str) -> None:
    """Read, decrypt and verify a delivery; print time, readings and memory as JSON."""
    from carbon_protocol.envelope import RecipientPrivateKey, parse_envelope
    from ledger_service.market.delivery import open_delivery

    key = RecipientPrivateKey.from_private_bytes(
        suite, bytes.fromhex(Path(key_file).read_text(encoding="ascii")))  # type: ignore[arg-type]
    before = rss_mb()
    t0 = time.perf_counter()
    envelope = parse_envelope(Path(envelope_file).read_text(encoding="utf-8"))
    opened, report = open_delivery(envelope, key, expected_content_hash=content_hash)
    open_s = time.perf_counter() - t0
    check(report.content_hash == content_hash, "content hash differs from the listing")
    print(json.dumps({"open_s": open_s, "readings": report.readings,  # noqa: T201
                      "format": opened.format, "proof_hashes": len(opened.proof),
                      "open_before": before, "open_peak": peak_rss_mb() - before}))


def worker(suite: str, meters: int, neighbours: int) -> None:
    """Set up one ledger, measure both datasets, print the raw results as one JSON."""
    with tempfile.TemporaryDirectory(prefix=f"bench-market-{suite}-") as tmp:
        t0 = time.perf_counter()
        led, devs = _setup(Path(tmp) / "ledger", suite, meters, neighbours)
        setup_s = time.perf_counter() - t0
        try:
            results = [_measure(led, suite, [devs[0].id]),
                       _measure(led, suite, [d.id for d in devs])]
        finally:
            led.engine.dispose()
    print(json.dumps({"setup_s": setup_s, "results": results,  # noqa: T201
                      "peak_rss_mib": peak_rss_mb()}))


def run(suites: list[str], quick: bool) -> None:
    """Entry point for :mod:`benchmarks.run`: one worker process per suite."""
    meters = QUICK_METERS if quick else FULL_METERS
    for suite in suites:
        main(suite, meters, meters)


def main(suite: str, meters: int, neighbours: int) -> None:
    """Run one suite's worker in a fresh process and emit its results."""
    log(f"[{suite}] market delivery: {meters} meters (+{neighbours} interleaved) x "
        f"{SLOTS} readings")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.market_delivery", "--worker", suite,
         str(meters), str(neighbours)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    if done.returncode != 0:
        raise BenchmarkFailure(f"market delivery worker ({suite}) failed:\n"
                               f"{done.stderr[-3000:]}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"[{suite}] set up in {raw['setup_s']:.0f} s")
    for r in raw["results"]:
        ctx = {"readings": r["readings"], "meters": r["meters"], "format": r["format"],
               "neighbours": neighbours, "proof_hashes": r["proof_hashes"]}
        emit("market_delivery_build_seconds", suite, r["build_s"], "s", **ctx)
        emit("market_delivery_response_bytes", suite, r["response_bytes"], "B", **ctx)
        emit("market_delivery_open_seconds", suite, r["open_s"], "s", **ctx)
        emit("market_delivery_build_peak_mib", suite, r["build_peak"], "MiB",
             rss_before_mib=round(r["build_before"]), **ctx)
        emit("market_delivery_open_peak_mib", suite, r["open_peak"], "MiB",
             rss_before_mib=round(r["open_before"]), **ctx)
    emit("market_delivery_worker_peak_rss_mib", suite, raw["peak_rss_mib"], "MiB",
         meters=meters, neighbours=neighbours)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--open":
        buyer(*sys.argv[2:6])
    else:
        args = sys.argv[1:]
        main(args[0] if args else "intl", int(args[1]) if len(args) > 1 else FULL_METERS,
             int(args[2]) if len(args) > 2 else FULL_METERS)
