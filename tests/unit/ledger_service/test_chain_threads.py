"""Threads sharing the ledger's chain: the anchor loop and request threads at once.

``carbon-ledger serve`` anchors from its loop while request threads append log records
and anchor too (opening a verification, accepting an attestation), on one chain client.
Each backend broke it its own way, and each is fixed where the fault lies:

* embedded: py-evm's state got corrupted ("BlockNotFound" while sending, the anchor then
  marked failed); every request now reaches py-evm under one lock
  (:mod:`carbon_rules.embedded_chain`). Without it, three runs in three failed.
* ganache: two threads broadcast the same stored transaction, the node refused the second
  copy ("mining has already started", "underpriced") and the anchor was marked failed while
  it was being mined; one sender at a time now (``Anchorer.send_pending``).
* anvil (``--prune-history``): ``anchorOf`` at the head was refused as the next block was
  mined under another thread ("block height is 75 but requested was 74") and the round
  failed; such a read now leaves the anchor mined, to be checked next round.
"""

from __future__ import annotations

import threading
from typing import Any

from ledger_service.log_records import append_record
from tests.conftest import ENTERPRISE

THREADS = 6
ROUNDS = 15


def test_threads_appending_and_anchoring_at_once_lose_no_anchor(ledger: Any) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(ROUNDS):
                append_record(ledger, kind="test", record_id=f"86.1000.1/thr.{t}.{k}",
                              enterprise_id=ENTERPRISE, document={"thread": t, "round": k})
                ledger.anchor_tick(force=True)
                ledger.chain.block_number()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[:3]
    ledger.anchor_tick(force=True)
    anchors = ledger.anchors()
    assert [a.status for a in anchors if a.status != "final"] == []
    assert anchors[-1].tree_size == ledger.tree_size() == THREADS * ROUNDS
