"""Proof latency on a 1,000,000-leaf log: inclusion proofs, proof bundles, their check.

Building a million-leaf log through ``Ledger.ingest`` would take minutes of signing,
so the bulk is synthetic: fixed 32-byte leaf hashes appended through
``MerkleLog.append`` (the ledger's own append path, the same ``merkle_nodes`` rows) in
transactions of 50,000 leaves. In the middle sit 1,000 real signed readings ingested
through ``Ledger.ingest``, and the log is anchored with ``Ledger.anchor_tick`` at half
size and at full size, so every bundle exported is real and proves its reading against
the full-size anchored tree head:

    [0, N/2) synthetic | anchor N/2 | 1,000 real readings | synthetic up to N | anchor N

Timed, each over ``runs`` calls after a few untimed warm-up calls:

* ``inclusion_proof_ms``: ``Ledger.inclusion_proof(index, N)`` for random indices;
  every proof is checked against the anchored root (untimed);
* ``export_proof_ms``: ``Ledger.export_proof(reading_id)`` for random real readings;
* ``verify_bundle_ms``: ``verify_bundle(bundle)`` alone (offline, no chain look-up);
  every bundle must pass all nine offline steps.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    BenchmarkFailure,
    check,
    emit,
    log,
    open_ledger,
    progress,
    register_devices,
    signed_reading,
)

TARGET_MS = 5.0
CHUNK = 50_000
REAL_READINGS = 1_000
REAL_DEVICES = 10
WARMUP = 10


def synthetic_leaf(index: int) -> bytes:
    """The stand-in leaf hash at ``index`` (recomputable, so proofs can be checked)."""
    return hashlib.sha256(b"bench-leaf:" + index.to_bytes(8, "big")).digest()


def _append_synthetic(led: Any, until: int, advance: Callable[[int], None]) -> None:
    """Append synthetic leaves up to tree size ``until`` via ``MerkleLog.append``."""
    while True:
        with led.engine.begin() as conn:
            size = led.log.locked_size(conn)
            if size >= until:
                return
            end = min(until, size + CHUNK)
            frontier = led.log.append(conn, size, [synthetic_leaf(i) for i in range(size, end)])
        led.log.commit_frontier(frontier)
        advance(end - size)


def _anchor(led: Any, size: int) -> None:
    events = led.anchor_tick(force=True)
    check(any(e.tree_size == size and e.status == "final" for e in events),
          f"anchor at {size} is not final: {events}")


def _stats(name: str, suite: str, samples_ms: list[float], **context: Any) -> None:
    p99 = statistics.quantiles(samples_ms, n=100, method="inclusive")[98]
    median = statistics.median(samples_ms)
    emit(name, suite, median, "ms", stat="median", p99=round(p99, 4),
         max=round(max(samples_ms), 4), runs=len(samples_ms), target=TARGET_MS,
         meets_target=median <= TARGET_MS and p99 <= TARGET_MS,
         load_1m=round(os.getloadavg()[0], 2), **context)


def run_suite(suite: str, leaves: int, runs: int) -> None:
    from carbon_protocol.merkle import verify_inclusion
    from carbon_protocol.suites import hash_fn
    from carbon_protocol.verify import STEPS, verify_bundle

    rng = random.Random(f"proofs-{suite}")
    half = leaves // 2
    with tempfile.TemporaryDirectory(prefix=f"bench-proofs-{suite}-") as tmp:
        led = open_ledger(Path(tmp), suite)
        devices = register_devices(led, suite, REAL_DEVICES)
        real = [signed_reading(dev, seq, led.domain, f"{seq:032x}")
                for seq in range(1, REAL_READINGS // REAL_DEVICES + 1) for dev in devices]

        log(f"proofs [{suite}]: building a {leaves:,}-leaf log")
        start = time.perf_counter()
        with progress(f"[{suite}] building the log", leaves) as advance:
            _append_synthetic(led, half, advance)
            _anchor(led, half)
            result = led.ingest(real)
            check(result.accepted == len(real),
                  f"[{suite}] only {result.accepted} of {len(real)} real readings accepted")
            advance(len(real))
            _append_synthetic(led, leaves, advance)
            _anchor(led, leaves)
        build_seconds = time.perf_counter() - start
        check(led.tree_size() == leaves, f"[{suite}] log has {led.tree_size()} leaves")
        emit("build_seconds", suite, build_seconds, "s", leaves=leaves,
             real_readings=len(real), synthetic_leaves=leaves - len(real),
             via="MerkleLog.append in transactions of 50,000 leaves + Ledger.ingest")

        top = next(a for a in led.anchors() if a.tree_size == leaves)
        gas = led.chain.receipt(top.tx_hash).gas_used
        emit("anchor_gas", suite, gas, "gas", tree_size=leaves, case="regular",
             chain="embedded py-evm", via="Ledger.anchor_tick")

        sth = led.tree_head(leaves)
        root = bytes.fromhex(sth.tree_head.root_hash)
        h = hash_fn(suite)  # type: ignore[arg-type]
        real_leaf = {item.receipt.leaf_index: bytes.fromhex(item.receipt.leaf_hash)
                     for item in result.items}

        samples = []
        for i in range(WARMUP + runs):
            index = rng.randrange(leaves)
            t0 = time.perf_counter()
            proof = led.inclusion_proof(index, leaves)
            elapsed = time.perf_counter() - t0
            verify_inclusion(h, index, leaves, real_leaf.get(index) or synthetic_leaf(index),
                             proof, root)
            if i >= WARMUP:
                samples.append(elapsed * 1000)
        _stats("inclusion_proof_ms", suite, samples, tree_size=leaves,
               proof_hashes=len(proof))

        export_ms, verify_ms = [], []
        ids = [(item.receipt.reading_id, item.receipt.leaf_index) for item in result.items]
        with progress(f"[{suite}] exporting and verifying bundles", WARMUP + runs) as advance:
            for i in range(WARMUP + runs):
                reading_id, leaf_index = rng.choice(ids)
                t0 = time.perf_counter()
                bundle = led.export_proof(reading_id)
                t1 = time.perf_counter()
                report = verify_bundle(bundle)
                t2 = time.perf_counter()
                check(bundle.leaf_index == leaf_index
                      and bundle.signed_tree_head.tree_head.tree_size == leaves
                      and bundle.anchor.tree_size == leaves,
                      f"[{suite}] bundle of {reading_id} is not against the {leaves}-leaf head")
                if report.passed != list(STEPS[:9]):
                    raise BenchmarkFailure(f"[{suite}] bundle of {reading_id}: {report}")
                if i >= WARMUP:
                    export_ms.append((t1 - t0) * 1000)
                    verify_ms.append((t2 - t1) * 1000)
                advance()
        _stats("export_proof_ms", suite, export_ms, tree_size=leaves,
               proof_hashes=len(bundle.inclusion_proof))
        _stats("verify_bundle_ms", suite, verify_ms, tree_size=leaves,
               proof_hashes=len(bundle.inclusion_proof), chain_checked=False)
        led.engine.dispose()


def run(suites: list[str], quick: bool) -> None:
    leaves, runs = (100_000, 50) if quick else (1_000_000, 200)
    for suite in suites:
        run_suite(suite, leaves, runs)
