"""Chain faults against a real anvil process: nothing lost, nothing doubled, nothing final twice.

Each test runs its own anvil (``ledger_service.devchain.start_node``) and a ledger anchoring
to it over JSON-RPC; faults are real: the process is SIGKILLed or stopped, restarted from
its ``--state`` file or empty or as another chain, and anvil's own RPCs reorganise the
chain (``anvil_reorg``), drop a pooled transaction (``anvil_dropTransaction``) or pause
mining (``anvil_setAutomine``).

1. node killed between send and receipt: anvil dumps its state every second
   (``--state-interval 1``) and is SIGKILLed with the anchor transaction in its pool (a
   pool is never part of the dump) or already mined (in the dump); after the restart the
   ledger re-broadcasts the very same signed transaction (same hash) or sees it mined,
   and the anchor exists exactly once;
2. node restarted empty, or the endpoint now serving another chain: anchoring refuses
   with ``ChainMismatchError`` naming the missing code or the chain id (expected vs got),
   at anchoring time, and sends nothing;
3. RPC unreachable for a minute (``CARBON_CHAIN_OUTAGE_SECONDS``, default 60): readings
   keep being accepted, the anchor loop backs off (capped, jittered, bounded attempts per
   round), and anchors again by itself once the node is back;
4. a reorganisation shallower than the confirmation depth: the anchor is reported final
   exactly once, never un-finalised, and re-anchored (the same transaction re-broadcast)
   when the reorganisation dropped it;
5. a dropped transaction: re-broadcast with the same hash; if its nonce was meanwhile
   taken by another transaction, the head is anchored again with a new one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from carbon_protocol.chain_view import JsonRpcChainView
from carbon_protocol.verify import verify_bundle
from ledger_service._internal.anchor_loop import AnchorLoop
from ledger_service._internal.chain import ChainClient
from ledger_service._internal.db import anchors
from ledger_service.anchoring import AnchorEvent
from ledger_service.devchain import DEV_KEYS, DevNode, start_node
from ledger_service.errors import ChainMismatchError, ChainUnavailableError

pytestmark = [pytest.mark.chain, pytest.mark.timeout(300)]

KEY = DEV_KEYS[0]
ACCOUNT = Account.from_key(KEY).address
OUTAGE_SECONDS = float(os.environ.get("CARBON_CHAIN_OUTAGE_SECONDS", "60"))


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., DevNode]]:
    nodes: list[DevNode] = []

    def make(**options: Any) -> DevNode:
        node = start_node("anvil", tmp_path / f"anvil{len(nodes)}", **options)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def anvil_ledger(seeded_ledger: Any) -> Callable[..., Any]:
    """Factory: a seeded ledger anchoring to a fresh CarbonAnchor on ``node``."""

    def make(node: DevNode, **settings: Any) -> Any:
        contract = ChainClient.deploy(node.url, KEY)
        return seeded_ledger(chain="rpc", rpc_url=node.url, chain_id=node.chain_id,
                             anchor_private_key=KEY, contract_address=contract, **settings)

    return make


def ingest(ledger: Any, device: Any, n: int) -> list[Any]:
    result = ledger.ingest([device.signed() for _ in range(n)])
    assert result.accepted == n, result
    return [item.receipt for item in result.items]


def rows(ledger: Any) -> list[tuple[int, str, str, int]]:
    """(tree size, tx hash, status, nonce) of every anchor, oldest first."""
    with ledger.engine.connect() as conn:
        return [(r.tree_size, r.tx_hash, r.status, r.nonce) for r in conn.execute(
            select(anchors).order_by(anchors.c.id))]


def nonce(node: DevNode, account: str = ACCOUNT) -> int:
    return int(node.rpc("eth_getTransactionCount", account, "latest"), 16)


def tick_until_final(ledger: Any, events: list[AnchorEvent], *, rounds: int = 40,
                     between: Callable[[], None] | None = None) -> None:
    for _ in range(rounds):
        events += ledger.anchor_tick()
        if any(e.status == "final" for e in events):
            return
        if between is not None:
            between()
        time.sleep(0.05)
    pytest.fail(f"no final anchor after {rounds} rounds: {events} {rows(ledger)}")


def metric(name: str, **labels: str) -> float:
    from ledger_service._internal.metrics import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def assert_on_chain_once(ledger: Any, node: DevNode, receipt: Any) -> None:
    """The reading's proof bundle verifies against the node; its anchor is on chain."""
    bundle = ledger.export_proof(receipt.reading_id)
    verify_bundle(bundle, chain=JsonRpcChainView(node.url))


# -- 1. node killed between send and receipt ----------------------------------------------


def test_node_killed_with_the_anchor_in_its_pool_gets_the_same_tx_again(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any, tmp_path: Path) -> None:
    node = node_factory(state_file=tmp_path / "state.json", state_interval=1)
    ledger = anvil_ledger(node)
    receipts = ingest(ledger, device_factory(ledger), 4)
    time.sleep(1.5)  # a state dump that holds the deployment
    node.rpc("anvil_setAutomine", False)

    assert ledger.anchor_tick(force=True) == []
    [(size, tx_hash, status, tx_nonce)] = rows(ledger)
    assert (size, status) == (4, "sent")
    assert node.rpc("eth_getTransactionByHash", tx_hash) is not None  # pooled, unmined
    node.kill()  # SIGKILL: no dump at exit; the pool is lost with the process

    with pytest.raises(ChainUnavailableError, match="unavailable"):
        ledger.anchor_tick()
    node.restart()  # from the last periodic dump: the deployment, not the transaction
    assert node.rpc("eth_getTransactionByHash", tx_hash) is None
    assert nonce(node) == tx_nonce

    events: list[AnchorEvent] = []
    tick_until_final(ledger, events)
    assert [e.status for e in events] == ["dropped", "final"]
    assert {e.tx_hash for e in events} == {tx_hash}
    # Same signed bytes, mined once: one anchor row, one nonce used.
    assert rows(ledger) == [(4, tx_hash, "final", tx_nonce)]
    assert nonce(node) == tx_nonce + 1
    assert_on_chain_once(ledger, node, receipts[0])


def test_node_killed_after_the_anchor_was_mined_sees_it_mined(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any, tmp_path: Path) -> None:
    node = node_factory(state_file=tmp_path / "state.json", state_interval=1)
    ledger = anvil_ledger(node, confirmations=3)
    receipts = ingest(ledger, device_factory(ledger), 2)

    assert [e.status for e in ledger.anchor_tick(force=True)] == ["mined"]
    [(_, tx_hash, _, tx_nonce)] = rows(ledger)
    time.sleep(1.5)  # a state dump that holds the mined anchor
    node.kill()
    node.restart()

    events: list[AnchorEvent] = []
    tick_until_final(ledger, events, between=lambda: node.rpc("evm_mine"))
    assert [e.status for e in events] == ["final"]
    assert rows(ledger) == [(2, tx_hash, "final", tx_nonce)]
    with ledger.engine.connect() as conn:
        assert conn.execute(select(anchors.c.attempts)).scalar_one() == 1  # never resent
    assert nonce(node) == tx_nonce + 1
    assert_on_chain_once(ledger, node, receipts[1])


# -- 2. node restarted empty, or another chain behind the endpoint -------------------------


def test_node_restarted_empty_or_as_another_chain_refuses_to_anchor(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any) -> None:
    node = node_factory()
    ledger = anvil_ledger(node, anchor_every_leaves=2)
    dev = device_factory(ledger)
    ingest(ledger, dev, 2)
    assert [e.status for e in ledger.anchor_tick()] == ["final"]
    before = rows(ledger)
    contract = ledger.chain.contract_address
    errors = metric("carbon_ledger_rpc_errors_total", action="check deployment")

    node.stop()
    node.restart()  # no state file: an empty chain, same chain id, same port
    # Nothing to anchor yet, but the idle round's periodic check notices.
    ledger.anchorer.check_interval = 0.0
    with pytest.raises(ChainMismatchError, match="got 0 bytes"):
        ledger.anchor_tick()
    ingest(ledger, dev, 2)  # ingest does not need the chain
    with pytest.raises(ChainMismatchError,
                       match=f"code at {contract} is not CarbonAnchor .*got 0 bytes") as info:
        ledger.anchor_tick(force=True)
    assert info.value.details["got"] != info.value.details["expected"]
    assert nonce(node) == 0  # nothing signed for, or sent to, the empty chain
    assert rows(ledger) == before

    # The anchor loop says why and keeps refusing, one attempt per round (no retries).
    loop = AnchorLoop(ledger, interval=0.05, max_interval=0.2)
    loop.start()
    time.sleep(1.0)
    loop.stop()
    assert isinstance(loop.last_error, ChainMismatchError)
    assert loop.rounds >= 2 and loop.failed_rounds == loop.rounds
    assert set(loop.round_attempts) == {1}
    assert nonce(node) == 0 and rows(ledger) == before
    assert metric("carbon_ledger_rpc_errors_total", action="check deployment") > errors

    # Another chain behind the same endpoint, with the very same contract at the very
    # same address (same deployer, same nonce): only the chain id tells them apart.
    node.stop()
    node.command[node.command.index("--chain-id") + 1] = "4242"
    node.restart()
    assert ChainClient.deploy(node.url, KEY) == contract
    with pytest.raises(ChainMismatchError,
                       match=r"chain id mismatch at http://127.0.0.1:\d+: expected 31337, "
                             "got 4242") as info:
        ledger.anchor_tick(force=True)
    assert info.value.details == {"expected": 31337, "got": 4242}
    assert nonce(node) == 1 and rows(ledger) == before  # only the deployment


# -- 3. RPC unreachable for a minute -------------------------------------------------------


@pytest.mark.slow
def test_a_minute_without_rpc_ingestion_carries_on_and_anchoring_recovers(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    node = node_factory(state_file=tmp_path / "state.json")
    ledger = anvil_ledger(node, anchor_every_leaves=1, confirmations=1)
    dev = device_factory(ledger)
    finals: list[AnchorEvent] = []
    loop = AnchorLoop(ledger, interval=0.2, max_interval=8.0, attempts=3, retry_base=0.25,
                      on_event=lambda e: finals.append(e) if e.status == "final" else None)
    latencies = metric("carbon_ledger_anchor_latency_seconds_count")
    errors_before = sum(metric("carbon_ledger_rpc_errors_total", action=a)
                        for a in ("check deployment", "read receipt", "read nonce"))
    loop.start()
    try:
        ingest(ledger, dev, 3)
        deadline = time.monotonic() + 20
        while not finals and time.monotonic() < deadline:
            time.sleep(0.05)
        assert finals and finals[-1].tree_size == 3

        node.stop()  # SIGTERM: anvil dumps its state and the endpoint goes dark
        rounds_before = loop.rounds
        waits_before = len(loop.waits)
        accepted = 0
        outage_end = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_end:
            accepted += len(ingest(ledger, dev, 2))
            time.sleep(0.5)
        outage_rounds = loop.rounds - rounds_before
        outage_waits = list(loop.waits)[waits_before:]
        node.restart()
        back = time.monotonic()

        size = ledger.tree_size()
        assert size == 3 + accepted
        deadline = back + loop.max_interval + 20
        while time.monotonic() < deadline and not any(e.tree_size == size for e in finals):
            time.sleep(0.1)
        recovered = time.monotonic() - back
    finally:
        loop.stop()

    for name, value in (("outage_s", OUTAGE_SECONDS), ("accepted_during_outage", accepted),
                        ("outage_rounds", outage_rounds), ("recovered_after_s", recovered),
                        ("max_wait_s", max(outage_waits, default=0.0))):
        request.node.user_properties.append((name, value))  # to the test report
    # Ingestion never waited for the chain.
    assert accepted >= OUTAGE_SECONDS  # about 2 readings per 0.5 s round, all accepted
    # Anchoring retried in bounded rounds, backing off to the cap with jitter...
    assert outage_rounds >= 3
    assert max(loop.round_attempts) <= loop.attempts
    assert all(0 < w <= loop.max_interval for w in outage_waits)
    if OUTAGE_SECONDS >= 30:
        assert max(outage_waits) > loop.max_interval / 2  # reached the capped waits
    assert len({round(w, 3) for w in outage_waits}) > len(outage_waits) // 2  # jittered
    # ... far fewer calls than a tight retry loop: a round every ~4-8 s once capped.
    assert outage_rounds <= OUTAGE_SECONDS / (loop.max_interval / 2) + 8
    assert isinstance(loop.last_error, ChainUnavailableError) or loop.consecutive_failures == 0
    # ... and recovered by itself, the head anchored exactly once.
    assert any(e.tree_size == size for e in finals), (recovered, rows(ledger))
    assert recovered <= loop.max_interval + 20
    sizes = [e.tree_size for e in finals]
    assert len(sizes) == len(set(sizes))  # each anchor final once
    assert all(status in ("final", "replaced") for _, _, status, _ in rows(ledger))
    errors_after = sum(metric("carbon_ledger_rpc_errors_total", action=a)
                       for a in ("check deployment", "read receipt", "read nonce"))
    assert errors_after > errors_before
    assert metric("carbon_ledger_anchor_latency_seconds_count") >= latencies + 2


# -- 4. a reorganisation shallower than the confirmation depth ------------------------------


def test_shallow_reorg_reports_final_exactly_once_and_re_anchors(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any) -> None:
    confirmations = 3
    node = node_factory(prune_history=False)  # anvil_reorg needs past states
    ledger = anvil_ledger(node, confirmations=confirmations)
    dev = device_factory(ledger)
    receipts = ingest(ledger, dev, 3)
    events: list[AnchorEvent] = []

    events += ledger.anchor_tick(force=True)
    [(_, tx_hash, status, tx_nonce)] = rows(ledger)
    assert status == "mined" and [e.status for e in events] == ["mined"]
    node.rpc("evm_mine")  # depth 2 of 3
    events += ledger.anchor_tick()

    # Depth 2 < 3 confirmations: the anchor's block is replaced by an empty one.
    node.rpc("anvil_reorg", confirmations - 1, [])
    assert node.rpc("eth_getTransactionReceipt", tx_hash) is None
    events += ledger.anchor_tick()  # noticed: dropped
    events += ledger.anchor_tick()  # the same signed transaction, broadcast again, mined
    tick_until_final(ledger, events, between=lambda: node.rpc("evm_mine"))
    assert [e.status for e in events] == ["mined", "dropped", "mined", "final"]
    assert {e.tx_hash for e in events} == {tx_hash}
    assert rows(ledger) == [(3, tx_hash, "final", tx_nonce)]
    final_block = ledger.anchors()[0].block_hash

    # Further shallow reorganisations never touch a final anchor, nor re-report it.
    for depth in range(1, confirmations):
        node.rpc("anvil_reorg", depth, [])
        assert ledger.anchor_tick() == []
    assert ledger.anchorer.verify_latest_final()
    assert ledger.anchors()[0].block_hash == final_block
    assert [e.status for e in events].count("final") == 1

    # A second anchor reorganised away while mined (depth 1) is re-anchored too.
    ingest(ledger, dev, 2)
    second = ledger.anchor_tick(force=True)
    assert [e.status for e in second] == ["mined"]
    node.rpc("anvil_reorg", 1, [])
    tick_until_final(ledger, second, between=lambda: node.rpc("evm_mine"))
    assert [e.status for e in second] == ["mined", "dropped", "mined", "final"]
    assert [(s, st) for s, _, st, _ in rows(ledger)] == [(3, "final"), (5, "final")]
    assert nonce(node) == tx_nonce + 2
    for receipt in (receipts[0], receipts[2]):
        assert_on_chain_once(ledger, node, receipt)


# -- 5. a dropped transaction ---------------------------------------------------------------


def test_dropped_transaction_is_broadcast_again_with_the_same_hash(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any) -> None:
    node = node_factory()
    ledger = anvil_ledger(node)
    receipts = ingest(ledger, device_factory(ledger), 3)
    node.rpc("anvil_setAutomine", False)  # mining paused

    assert ledger.anchor_tick(force=True) == []
    [(_, tx_hash, status, tx_nonce)] = rows(ledger)
    assert status == "sent"
    assert node.rpc("anvil_dropTransaction", tx_hash) == tx_hash
    assert node.rpc("eth_getTransactionByHash", tx_hash) is None

    assert [e.status for e in ledger.anchor_tick()] == ["dropped"]
    assert ledger.anchor_tick() == []  # re-broadcast: pooled again, not mined yet
    pooled = node.rpc("eth_getTransactionByHash", tx_hash)
    assert pooled is not None and int(pooled["nonce"], 16) == tx_nonce
    node.rpc("evm_mine")
    assert [e.status for e in ledger.anchor_tick()] == ["final"]
    assert rows(ledger) == [(3, tx_hash, "final", tx_nonce)]
    assert nonce(node) == tx_nonce + 1
    assert_on_chain_once(ledger, node, receipts[2])


def test_dropped_transaction_whose_nonce_was_taken_is_replaced_by_a_new_anchor(
        node_factory: Callable[..., DevNode], anvil_ledger: Callable[..., Any],
        device_factory: Any) -> None:
    node = node_factory()
    ledger = anvil_ledger(node)
    receipts = ingest(ledger, device_factory(ledger), 3)
    node.rpc("anvil_setAutomine", False)
    ledger.anchor_tick(force=True)
    [(_, dropped_hash, _, tx_nonce)] = rows(ledger)
    node.rpc("anvil_dropTransaction", dropped_hash)
    # Something else spends the nonce (an operator's tool with the same key).
    other = Account.sign_transaction({
        "chainId": node.chain_id, "nonce": tx_nonce, "to": ACCOUNT, "value": 1,
        "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}, KEY)
    node.rpc("eth_sendRawTransaction", "0x" + bytes(other.raw_transaction).hex())
    node.rpc("evm_mine")

    events: list[AnchorEvent] = []
    events += ledger.anchor_tick()  # dropped
    events += ledger.anchor_tick()  # resend refused (nonce used): replaced; head re-anchored
    node.rpc("anvil_setAutomine", True)
    tick_until_final(ledger, events)
    [(size1, h1, s1, n1), (size2, h2, s2, n2)] = rows(ledger)
    assert (size1, h1, s1, n1) == (3, dropped_hash, "replaced", tx_nonce)
    assert (size2, s2, n2) == (3, "final", tx_nonce + 1) and h2 != dropped_hash
    assert [e.status for e in events].count("final") == 1
    assert_on_chain_once(ledger, node, receipts[0])
