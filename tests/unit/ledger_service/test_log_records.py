"""Log records: any signed statement appended to the Merkle log as one leaf, idempotent
by id, proved against the anchor that covers it."""

from __future__ import annotations

from typing import Any

import pytest

from carbon_protocol import merkle
from carbon_protocol.canonical import canonical_json
from carbon_protocol.signing import verify_tree_head
from carbon_protocol.suites import PublicKey, hash_fn
from ledger_service.errors import ConflictError, NotFoundError
from ledger_service.log_records import append_record, get_record, list_records, record_proof
from tests.conftest import ENTERPRISE

DOC = {"format": "test/v1", "note": "granted", "n": 3}


def test_append_is_idempotent_by_id_and_refuses_other_bytes(ledger: Any) -> None:
    size = ledger.tree_size()
    created, rec = append_record(ledger, kind="data_grant", record_id="86.1000.1/g.1",
                                 enterprise_id=ENTERPRISE, document=DOC)
    assert created and rec.leaf_index == size and ledger.tree_size() == size + 1
    again, same = append_record(ledger, kind="data_grant", record_id="86.1000.1/g.1",
                                enterprise_id=ENTERPRISE, document=dict(DOC))
    assert not again and same == rec and ledger.tree_size() == size + 1
    with pytest.raises(ConflictError):
        append_record(ledger, kind="data_grant", record_id="86.1000.1/g.1",
                      enterprise_id=ENTERPRISE, document={**DOC, "n": 4})
    assert ledger.tree_size() == size + 1
    expected = merkle.leaf_hash(hash_fn(ledger.settings.log_suite), canonical_json(DOC))
    assert bytes.fromhex(rec.leaf_hash) == expected == ledger.leaf_hash(rec.leaf_index)


def test_list_filters_by_enterprise_and_kind(ledger: Any) -> None:
    append_record(ledger, kind="a", record_id="86.1000.1/r.1", enterprise_id=ENTERPRISE,
                  document={"i": 1})
    append_record(ledger, kind="b", record_id="86.1000.1/r.2", enterprise_id=ENTERPRISE,
                  document={"i": 2})
    append_record(ledger, kind="a", record_id="86.1000.1/r.3", enterprise_id="86.1000.1/ent.x",
                  document={"i": 3})
    assert [r.record_id for r in list_records(ledger, enterprise_id=ENTERPRISE)] == [
        "86.1000.1/r.1", "86.1000.1/r.2"]
    assert [r.record_id for r in list_records(ledger, kinds=("a",))] == [
        "86.1000.1/r.1", "86.1000.1/r.3"]
    with pytest.raises(NotFoundError):
        get_record(ledger, "86.1000.1/r.404")


def test_proof_verifies_against_the_anchored_head(ledger: Any) -> None:
    _, rec = append_record(ledger, kind="attestation", record_id="86.1000.1/att.1",
                           enterprise_id=ENTERPRISE, document=DOC)
    with pytest.raises(NotFoundError):
        record_proof(ledger, rec.record_id)  # not anchored yet
    ledger.anchor_tick(force=True)
    proof = record_proof(ledger, rec.record_id)
    h = hash_fn(ledger.settings.log_suite)
    sth = proof.signed_tree_head
    verify_tree_head(sth, PublicKey.from_hex(proof.log_key.suite, proof.log_key.public_key))
    merkle.verify_inclusion(
        h, rec.leaf_index, sth.tree_head.tree_size,
        merkle.leaf_hash(h, canonical_json(proof.record.document)),
        [bytes.fromhex(p) for p in proof.inclusion_proof], bytes.fromhex(sth.tree_head.root_hash))
    assert proof.anchor.root_hash == sth.tree_head.root_hash
