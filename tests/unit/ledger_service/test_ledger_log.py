"""The ledger's Merkle log, anchoring and evidence, on SQLite and the in-process EVM."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select, update

from carbon_protocol import merkle
from carbon_protocol.errors import BundleVerificationError
from carbon_protocol.signing import reading_leaf_hash
from carbon_protocol.suites import hash_fn
from carbon_protocol.verify import verify_bundle
from ledger_service._internal.chain_view_adapter import ClientChainView
from ledger_service._internal.db import readings
from ledger_service.errors import InvalidInputError, NotFoundError
from ledger_service.ledger import Ledger


def ingest(ledger: Any, device: Any, n: int) -> list[Any]:
    result = ledger.ingest([device.signed() for _ in range(n)])
    assert result.accepted == n, result
    return [item.receipt for item in result.items]


@pytest.mark.parametrize("suite", ["sm", "intl"])
def test_log_matches_reference_tree(seeded_ledger: Any, device_factory: Any,
                                    suite: str) -> None:
    led = seeded_ledger(log_suite=suite)
    dev = device_factory(led, suite)
    signed = []
    for batch in (1, 2, 5, 13, 40):
        chunk = [dev.signed() for _ in range(batch)]
        assert led.ingest(chunk).accepted == batch
        signed += chunk
    h = hash_fn(suite)
    leaves = [reading_leaf_hash(s, suite) for s in signed]
    size = len(leaves)
    sth = led.tree_head()
    assert sth.tree_head.tree_size == size
    assert sth.tree_head.root_hash == merkle.root_from_leaf_hashes(h, leaves).hex()
    for index in (0, 1, 7, size - 1):
        for tree_size in (index + 1, size):
            assert led.inclusion_proof(index, tree_size) == merkle.inclusion_proof(
                h, index, leaves[:tree_size])
    for size1 in (1, 3, 8, 20, size):
        assert led.consistency_proof(size1, size) == merkle.consistency_proof(h, size1, leaves)


def test_proof_arguments_are_checked(ledger: Any, make_device: Any) -> None:
    ingest(ledger, make_device(), 3)
    with pytest.raises(InvalidInputError, match="outside the log"):
        ledger.inclusion_proof(0, 4)
    with pytest.raises(InvalidInputError, match="outside a tree of size 2"):
        ledger.inclusion_proof(2, 2)
    with pytest.raises(InvalidInputError, match="0 < size1 <= size2"):
        ledger.consistency_proof(3, 2)


def test_export_needs_a_final_anchor(ledger: Any, make_device: Any) -> None:
    receipts = ingest(ledger, make_device(), 3)
    with pytest.raises(NotFoundError, match="not yet covered by a final anchor"):
        ledger.export_proof(receipts[0].reading_id)
    with pytest.raises(NotFoundError, match="is not stored"):
        ledger.export_proof("86.1000.1/r.00")


def test_bundle_verifies_against_the_chain(ledger: Any, make_device: Any) -> None:
    receipts = ingest(ledger, make_device("intl"), 10)
    events = ledger.anchor_tick(force=True)
    assert [e.status for e in events] == ["final"]
    bundle = ledger.export_proof(receipts[4].reading_id)
    report = verify_bundle(bundle, chain=ClientChainView(ledger.chain))
    assert report.chain_checked and report.confirmations == 1
    forged = bundle.model_copy(update={"anchor": bundle.anchor.model_copy(
        update={"block_hash": "0x" + "ab" * 32})})
    with pytest.raises(BundleVerificationError, match=r"step 10 \(chain\).*another block"):
        verify_bundle(forged, chain=ClientChainView(ledger.chain))


def test_anchoring_covers_later_readings_with_one_root(ledger: Any, make_device: Any) -> None:
    dev = make_device()
    first = ingest(ledger, dev, 5)
    ledger.anchor_tick(force=True)
    later = ingest(ledger, dev, 5)
    ledger.anchor_tick(force=True)
    sizes = [a.tree_size for a in ledger.anchors()]
    assert sizes == [5, 10]
    assert ledger.export_proof(first[0].reading_id).anchor.tree_size == 5
    assert ledger.export_proof(later[0].reading_id).anchor.tree_size == 10
    # Nothing new: no third anchor, however often the loop ticks.
    ledger.anchor_tick(force=True)
    assert len(ledger.anchors()) == 2


def test_anchor_is_due_by_count(ledger_factory: Any) -> None:
    led = ledger_factory(anchor_every_leaves=4, anchor_every_seconds=3600)
    with led.engine.begin() as conn:
        assert not led.anchorer.due(conn, 0)
        assert led.anchorer.due(conn, 1)  # first anchor: anything is due


def test_tampered_stored_reading_fails_verification(ledger: Any, make_device: Any) -> None:
    receipts = ingest(ledger, make_device(), 4)
    ledger.anchor_tick(force=True)
    rid = receipts[2].reading_id
    with ledger.engine.begin() as conn:
        data = bytes(conn.execute(select(readings.c.leaf_data)
                                  .where(readings.c.id == rid)).scalar_one())
        tampered = data.replace(b'"value":"12.5"', b'"value":"12.4"')
        assert tampered != data and len(tampered) == len(data)
        conn.execute(update(readings).where(readings.c.id == rid).values(leaf_data=tampered))
    bundle = ledger.export_proof(rid)
    with pytest.raises(BundleVerificationError, match=r"step 2 \(reading signature\)"):
        verify_bundle(bundle)


def test_vanished_chain_is_noticed_and_re_anchored(seeded_ledger: Any,
                                                   device_factory: Any) -> None:
    """The embedded chain lives in memory: reopening the ledger gives a fresh chain, and
    the ledger must notice its last final anchor is gone and anchor its head again."""
    ledger = seeded_ledger(chain="embedded")
    dev = device_factory(ledger)
    receipts = ingest(ledger, dev, 3)
    ledger.anchor_tick(force=True)
    receipts += ingest(ledger, dev, 3)
    ledger.anchor_tick(force=True)
    ledger.engine.dispose()
    reopened = Ledger.open(ledger.settings)
    # Every vanished final anchor is withdrawn, not just the newest, so no proof cites one.
    assert [a.status for a in reopened.anchors()] == ["replaced", "replaced"]
    reopened.anchor_tick()
    statuses = [(a.tree_size, a.status) for a in reopened.anchors()]
    # The head (6) is anchored anew at the fresh chain's first nonce: a new transaction.
    assert statuses == [(3, "replaced"), (6, "replaced"), (6, "final")]
    for receipt in (receipts[0], receipts[-1]):
        bundle = reopened.export_proof(receipt.reading_id)
        assert bundle.anchor.tree_size == 6
        verify_bundle(bundle, chain=ClientChainView(reopened.chain))
    reopened.engine.dispose()


def test_settings_refuse_to_mix_logs(ledger: Any) -> None:
    from ledger_service.errors import LedgerError

    ledger.engine.dispose()
    intl = ledger.settings.model_copy(update={"log_suite": "intl"})
    with pytest.raises(LedgerError, match="holds a sm key, settings want intl"):
        Ledger.open(intl)
    with pytest.raises(LedgerError, match="refusing to mix logs"):
        Ledger.open(intl.model_copy(
            update={"log_key_file": ledger.settings.data_dir / "intl_key.pem"}))


def test_log_key_file_is_private(ledger: Any) -> None:
    mode = ledger.settings.resolved_log_key_file.stat().st_mode & 0o777
    assert mode == 0o600
    assert hashlib.sha256(ledger.settings.resolved_log_key_file.read_bytes()).digest()


def test_lost_anchor_is_resent_byte_for_byte(seeded_ledger: Any,
                                             device_factory: Any) -> None:
    """Same anchoring key, same nonce, same head on the fresh (embedded) chain: the very
    same signed transaction, so it is sent again rather than recorded twice."""
    ledger = seeded_ledger(chain="embedded")
    receipts = ingest(ledger, device_factory(ledger), 3)
    ledger.anchor_tick(force=True)
    tx = ledger.anchors()[0].tx_hash
    ledger.engine.dispose()
    reopened = Ledger.open(ledger.settings)
    reopened.anchor_tick()
    assert [(a.tx_hash, a.status) for a in reopened.anchors()] == [(tx, "final")]
    verify_bundle(reopened.export_proof(receipts[1].reading_id),
                  chain=ClientChainView(reopened.chain))
    reopened.engine.dispose()
