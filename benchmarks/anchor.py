"""Gas of one anchor transaction on the embedded chain, for growing tree sizes.

An anchor stores ``(root, timestamp, submitter, block)`` for ``(log, tree size)`` and
raises the log's latest size, whatever the size: its gas must not grow with the
number of readings it covers. Two cases per tree size, each on a log key of its own:

* ``anchor_gas``: a log's regular anchor (the log was anchored before, so its
  latest-size slot is already non-zero), what a running ledger pays every
  ``anchor_every_leaves`` readings;
* ``anchor_gas_first``: a log's very first anchor, which also initialises that slot.

Roots are fixed 32-byte digests (the contract never looks inside them), sent with
``ChainClient.anchor``, the call the ledger's anchor transactions make.
"""

from __future__ import annotations

import hashlib

from benchmarks._common import PREFIX, check, emit, log

SIZES = (10, 10_000, 1_000_000)
READINGS_PER_ANCHOR = 10_000


def _anchor(chain: object, log_id: str, size: int) -> int:
    from ledger_service._internal.chain import ChainClient

    key = ChainClient.log_key(log_id)
    root = hashlib.sha256(f"{log_id}@{size}".encode()).digest()
    receipt = chain.anchor(key, size, root)  # type: ignore[attr-defined]
    check(receipt.status == 1, f"anchor of {log_id} at {size} failed: {receipt}")
    stored = chain.anchor_of(key, size)  # type: ignore[attr-defined]
    check(stored is not None and stored.root == root,
          f"anchor of {log_id} at {size} is not on chain: {stored}")
    return int(receipt.gas_used)


def run(suites: list[str], quick: bool) -> None:  # noqa: ARG001 - gas is suite-independent
    """Emit first and regular anchor gas for each size, and gas per reading."""
    from ledger_service._internal.chain import ChainClient

    log("anchor: embedded chain, tree sizes " + ", ".join(f"{s:,}" for s in SIZES))
    chain = ChainClient.embedded()
    regular = {}
    for size in SIZES:
        first = _anchor(chain, f"{PREFIX}/log.bench-first-{size}", size)
        steady_log = f"{PREFIX}/log.bench-{size}"
        _anchor(chain, steady_log, 1)  # the log's earlier anchor
        regular[size] = _anchor(chain, steady_log, size)
        emit("anchor_gas", "any", regular[size], "gas", tree_size=size, case="regular",
             chain="embedded py-evm", via="ChainClient.anchor")
        emit("anchor_gas_first", "any", first, "gas", tree_size=size,
             case="first anchor of a log", chain="embedded py-evm", via="ChainClient.anchor")
    spread = max(regular.values()) - min(regular.values())
    check(spread < 200, f"anchor gas grows with tree size: {regular}")
    emit("anchor_gas_per_reading", "any", regular[READINGS_PER_ANCHOR] / READINGS_PER_ANCHOR,
         "gas/reading", readings_per_anchor=READINGS_PER_ANCHOR,
         anchor_gas=regular[READINGS_PER_ANCHOR])
