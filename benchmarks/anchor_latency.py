"""``anchor_latency_s``: from a reading's acceptance to a final anchor covering it, on anvil.

Setup (untimed): a real anvil process mining a block every second (``--block-time 1``,
like a production chain's cadence rather than one block per transaction), ``CarbonAnchor``
deployed, a fresh ledger (SQLite, log suite = device suite) anchoring to it over
JSON-RPC with ``confirmations=2`` and ``anchor_every_leaves=1`` (anchor the head
whenever it grew), and the service's :class:`AnchorLoop` ticking every 0.2 s on its
own thread, exactly as ``carbon-ledger serve`` runs it.

Load: a batch of ``BATCH`` readings from rotating devices every ``PERIOD`` seconds for
``SECONDS`` (quick: ``QUICK_SECONDS``), through ``Ledger.ingest`` on the main thread.

A reading's latency is the monotonic time at which the loop reported ``final`` the first
anchor whose tree size covers its leaf index, minus the time ``ingest`` returned its
receipt. Expected shape: up to one loop interval until the head is signed, up to one
block until it is mined, one more block for the second confirmation, plus up to one
loop interval to notice: roughly 1.5-3 s.

The run fails (non-zero exit) unless every reading is accepted and covered by a final
anchor, and a proof bundle of the last reading verifies against the node.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    check,
    emit,
    log,
    open_ledger,
    percentile,
    register_devices,
    signed_reading,
)

SECONDS = 60.0
QUICK_SECONDS = 15.0
PERIOD = 0.25
BATCH = 4
DEVICES = 8
CONFIRMATIONS = 2
BLOCK_TIME = 1
LOOP_INTERVAL = 0.2


def _measure(suite: str, seconds: float, workdir: Path) -> None:
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.verify import verify_bundle
    from ledger_service._internal.anchor_loop import AnchorLoop
    from ledger_service._internal.chain import ChainClient
    from ledger_service.anchoring import AnchorEvent
    from ledger_service.devchain import DEV_KEYS, start_node

    with start_node("anvil", workdir / "anvil", block_time=BLOCK_TIME) as node:
        contract = ChainClient.deploy(node.url, DEV_KEYS[0])
        led = open_ledger(workdir / "ledger", suite, chain="rpc", rpc_url=node.url,
                          chain_id=node.chain_id, contract_address=contract,
                          anchor_private_key=DEV_KEYS[0], confirmations=CONFIRMATIONS,
                          anchor_every_leaves=1)
        devices = register_devices(led, suite, DEVICES)
        seqs = dict.fromkeys(range(DEVICES), 0)

        finals: list[tuple[float, int]] = []  # (monotonic time, tree size)
        lock = threading.Lock()

        def on_event(event: AnchorEvent) -> None:
            if event.status == "final":
                with lock:
                    finals.append((time.monotonic(), event.tree_size))

        accepted_at: list[float] = []  # by leaf index
        last_receipt: Any = None
        loop = AnchorLoop(led, interval=LOOP_INTERVAL, max_interval=2.0, on_event=on_event)
        loop.start()
        try:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < seconds:
                batch = []
                for _ in range(BATCH):
                    d = n % DEVICES
                    seqs[d] += 1
                    batch.append(signed_reading(devices[d], seqs[d], led.domain,
                                                secrets.token_hex(16)))
                    n += 1
                result = led.ingest(batch)
                now = time.monotonic()
                check(result.accepted == len(batch), f"readings refused: {result}")
                for item in result.items:
                    check(item.receipt is not None and
                          item.receipt.leaf_index == len(accepted_at),
                          f"unexpected leaf order: {item}")
                    accepted_at.append(now)
                    last_receipt = item.receipt
                next_at = start + (len(accepted_at) // BATCH) * PERIOD
                time.sleep(max(0.0, next_at - time.monotonic()))
            size = len(accepted_at)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if finals and max(s for _, s in finals) >= size:
                        break
                time.sleep(0.05)
        finally:
            loop.stop()
        with lock:
            done = sorted(finals, key=lambda f: f[1])
        check(bool(done) and done[-1][1] >= size,
              f"only {done[-1][1] if done else 0} of {size} readings anchored within 30 s")

        latencies: list[float] = []
        j = 0
        for index, accepted in enumerate(accepted_at):
            while done[j][1] <= index:
                j += 1
            covering = min(t for t, s in done[j:] if s > index)
            latencies.append(covering - accepted)
        bundle = led.export_proof(last_receipt.reading_id)
        verify_bundle(bundle, chain=JsonRpcChainView(node.url))
        led.engine.dispose()

    context = {"readings": size, "anchors": len(done), "chain": "anvil --block-time 1",
               "confirmations": CONFIRMATIONS, "loop_interval_s": LOOP_INTERVAL,
               "load": f"{BATCH} readings every {PERIOD} s for {seconds:g} s",
               "mean": round(statistics.fmean(latencies), 3),
               "max": round(max(latencies), 3), "min": round(min(latencies), 3)}
    emit("anchor_latency_s", suite, percentile(latencies, 50), "s", percentile=50, **context)
    emit("anchor_latency_s", suite, percentile(latencies, 99), "s", percentile=99, **context)


def run(suites: list[str], quick: bool) -> None:
    """Emit p50 and p99 of acceptance-to-final latency for each suite."""
    seconds = QUICK_SECONDS if quick else SECONDS
    for suite in suites:
        log(f"anchor_latency ({suite}): anvil --block-time {BLOCK_TIME}, confirmations "
            f"{CONFIRMATIONS}, {seconds:g} s of load")
        with tempfile.TemporaryDirectory(prefix="bench-anchor-latency-") as tmp:
            _measure(suite, seconds, Path(tmp))
