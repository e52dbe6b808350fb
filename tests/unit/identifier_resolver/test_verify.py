"""Answer verification: a good answer passes every step; each tampered answer fails at the
step that catches it, named by its defect."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from resolver_support import P, World

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.errors import VerificationError
from identifier_resolver.models import Answer, TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import STEPS, verify_answer, verify_custody

DEV = f"{P}/dev.m1"


@pytest.fixture
def answer_doc(root: Resolver, owner: PrivateKey) -> dict[str, Any]:
    v1 = R.new_record(DEV, "device", f"{P}/ent.a", owner, data={"serial": "S1"})
    v2 = R.next_version(v1, owner, data={"serial": "S2"}, reason="register corrected")
    root.submit([v1, v2])
    root.anchor_tick(force=True)
    for n in range(5):  # a few more leaves so the proof has several hashes
        root.submit([R.new_record(f"{P}/ent.{n}", "enterprise", f"{P}/ent.{n}", owner)])
    root.anchor_tick(force=True)
    return root.resolve(DEV).model_dump(mode="json")


def _flip(hex_text: str, at: int = 3) -> str:
    return hex_text[:at] + ("0" if hex_text[at] != "0" else "1") + hex_text[at + 1:]


def test_good_answer_passes_every_step(answer_doc: dict[str, Any], trust: TrustRoot,
                                       root: Resolver) -> None:
    from ledger_service._internal.chain_view_adapter import ClientChainView

    assert root.anchorer is not None
    verified = verify_answer(Answer.model_validate(answer_doc), trust, query=DEV,
                             require_anchor=True, chain=ClientChainView(root.anchorer.chain))
    assert verified.passed == list(STEPS) and verified.chain_checked


def _set(path: str, fn: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        key: Any = int(last) if last.isdigit() else last
        node[key] = fn(node[key])
    return mutate


OTHER = PrivateKey.generate("intl")

DEFECTS: list[tuple[str, Callable[[dict[str, Any]], None], int]] = [
    ("delegation-signature-bit-@3", _set("delegations.0.signature", _flip), 1),
    ("delegation-owner-key-replaced", _set("delegations.0.record.keys.0", lambda k: {
        **k, "public_key": OTHER.public_key().hex(), "key_id": OTHER.public_key().key_id}), 1),
    ("delegation-chain-missing", _set("delegations", lambda _: []), 1),
    ("record-data-modified", _set("record.record.data", lambda d: {**d, "serial": "S9"}), 2),
    ("record-signature-bit-@3", _set("record.signature", _flip), 2),
    ("query-for-another-id", _set("query", lambda _: f"{P}/dev.m2"), 3),
    ("history-entry-dropped", _set("history", lambda _: []), 4),
    ("history-entry-modified", _set("history.0.record.data", lambda d: {"serial": "S0"}), 4),
    ("leaf-hash-modified", _set("proof.leaf_hash", _flip), 5),
    ("log-key-other-key", _set("proof.log_key", lambda k: {
        **k, "public_key": OTHER.public_key().hex(), "key_id": OTHER.public_key().key_id}), 6),
    ("log-id-other-log", _set("proof.log_id", lambda _: "9.9/log.resolver"), 6),
    ("modified-proof[0]-bit-@3", _set("proof.inclusion_proof.0", _flip), 7),
    ("proof-missing-last", _set("proof.inclusion_proof", lambda p: p[:-1]), 7),
    ("leaf-index-plus-1", _set("proof.leaf_index", lambda i: i + 1), 7),
    ("tree-head-root-modified", _set("proof.signed_tree_head.tree_head.root_hash", _flip), 7),
    ("tree-head-timestamp-modified", _set("proof.signed_tree_head.tree_head.timestamp",
                                          lambda _: "2030-01-01T00:00:00Z"), 8),
    ("tree-head-signature-bit-@3", _set("proof.signed_tree_head.signature", _flip), 8),
    ("anchor-root-modified", _set("proof.anchor.root_hash", _flip), 9),
    ("anchor-tree-size-plus-1", _set("proof.anchor.tree_size", lambda n: n + 1), 9),
    ("anchor-log-key-modified", _set("proof.anchor.log_key", _flip), 9),
    ("anchor-missing", _set("proof.anchor", lambda _: None), 9),
]


@pytest.mark.parametrize(("defect", "mutate", "step"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_tampered_answer_fails_at_its_step(answer_doc: dict[str, Any], trust: TrustRoot,
                                           defect: str, mutate: Callable[[dict[str, Any]], None],
                                           step: int) -> None:
    doc = copy.deepcopy(answer_doc)
    mutate(doc)
    answer = Answer.model_validate(doc)
    with pytest.raises(VerificationError) as info:
        verify_answer(answer, trust, query=DEV, require_anchor=True)
    assert info.value.step == step, str(info.value)
    assert f"step {step} ({STEPS[step - 1]}) failed" in str(info.value)


def test_another_trust_root_refuses_everything(answer_doc: dict[str, Any],
                                               trust: TrustRoot) -> None:
    key = PrivateKey.generate("intl").public_key()
    stranger = trust.model_copy(update={"owner_keys": [
        trust.owner_keys[0].model_copy(update={"public_key": key.hex(), "key_id": key.key_id})]})
    with pytest.raises(VerificationError, match="step 1"):
        verify_answer(Answer.model_validate(answer_doc), stranger, query=DEV)


def test_custody_proofs_verify_and_catch_forged_edges(world: World, trust: TrustRoot) -> None:
    world.resolver.anchor_tick(force=True)
    graph = world.resolver.custody(f"{P}/rep.2026-01", "down", 2, proofs=True)
    assert not isinstance(graph, Answer)
    assert verify_custody(graph, trust, require_anchor=True) == len(graph.nodes) == 8
    forged = graph.model_copy(update={"edges": [*graph.edges, graph.edges[0].model_copy(
        update={"target": f"{P}/rr.dev.m9.0-100"})]})
    with pytest.raises(VerificationError, match="not in the source's signed record"):
        verify_custody(forged, trust)
    node = graph.nodes[1]
    lied = graph.model_copy(update={"nodes": [graph.nodes[0], node.model_copy(
        update={"data": {**node.data, "count": 999}}), *graph.nodes[2:]]})
    with pytest.raises(VerificationError, match="summary differs"):
        verify_custody(lied, trust)
