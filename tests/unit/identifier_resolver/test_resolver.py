"""A node: who may write what, version chains, delegation and referrals, cache, anchors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from resolver_support import ROOT_URL, P

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.errors import (
    BadSignatureError,
    ConflictError,
    DeactivatedError,
    InvalidIdentifierError,
    InvalidRequestError,
    NotAuthoritativeError,
    NotFoundError,
)
from identifier_resolver.models import TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import verify_answer

ENT = f"{P}/ent.a"


def test_register_and_resolve(root: Resolver, owner: PrivateKey, trust: TrustRoot) -> None:
    signed = R.new_record(ENT, "enterprise", ENT, owner, data={"name": "A"})
    (receipt,) = root.submit([signed])
    assert receipt.version == 1 and receipt.digest == R.record_digest(signed)
    answer = root.resolve(ENT)
    assert answer.kind == "record" and answer.record == signed and answer.history == []
    assert [d.record.id for d in answer.delegations] == [f"0/na.{P}"]
    verified = verify_answer(answer, trust, query=ENT)
    assert verified.authority == P and not verified.anchored


def test_resubmitting_stored_versions_is_a_no_op(root: Resolver, owner: PrivateKey) -> None:
    v1 = R.new_record(ENT, "enterprise", ENT, owner)
    v2 = R.deactivation(v1, owner, "merged into another enterprise")
    first = root.submit([v1, v2])
    size = root.tree_size()
    assert root.submit([v1, v2]) == first and root.tree_size() == size
    with pytest.raises(DeactivatedError):  # a different version 2 is no retry
        root.submit([R.next_version(v1, owner, data={"x": 1})])


@pytest.mark.parametrize("defect", ["version-skipped", "prev-of-another-version",
                                    "type-changed", "first-version-not-1"])
def test_changes_must_continue_the_chain(root: Resolver, owner: PrivateKey, defect: str) -> None:
    v1 = R.new_record(ENT, "enterprise", ENT, owner)
    root.submit([v1])
    v2 = R.next_version(v1, owner, data={"name": "renamed"})
    bad = {
        "version-skipped": lambda: R.next_version(v2, owner),
        "prev-of-another-version": lambda: R.next_version(
            R.new_record(ENT, "enterprise", ENT, owner, data={"x": 1}), owner),
        "type-changed": lambda: R.sign_record(
            v2.record.model_copy(update={"type": "site"}), owner),
        "first-version-not-1": lambda: R.next_version(
            R.new_record(f"{P}/ent.new", "enterprise", ENT, owner), owner),
    }[defect]()
    with pytest.raises(ConflictError):
        root.submit([bad])
    root.submit([v2])
    assert root.resolve(ENT).record == v2


def test_only_the_prefix_owner_signs(root: Resolver) -> None:
    stranger = PrivateKey.generate("intl")
    with pytest.raises(BadSignatureError, match="not an owner key"):
        root.submit([R.new_record(ENT, "enterprise", ENT, stranger)])
    assert root.tree_size() == 1  # only the bootstrap delegation


def test_a_forged_signature_is_refused(root: Resolver, owner: PrivateKey) -> None:
    signed = R.new_record(ENT, "enterprise", ENT, owner, data={"name": "A"})
    forged = signed.model_copy(update={"record": signed.record.model_copy(
        update={"data": {"name": "B"}})})
    with pytest.raises(BadSignatureError, match="does not verify"):
        root.submit([forged])


def test_writes_outside_the_nodes_prefixes(root: Resolver, owner: PrivateKey) -> None:
    with pytest.raises(NotAuthoritativeError, match="86.2000"):
        root.submit([R.new_record("86.2000/ent.x", "enterprise", ENT, owner)])


def test_a_batch_is_atomic(root: Resolver, owner: PrivateKey) -> None:
    good = R.new_record(ENT, "enterprise", ENT, owner)
    bad = R.next_version(R.new_record(f"{P}/ent.b", "enterprise", ENT, owner), owner)
    with pytest.raises(ConflictError):
        root.submit([good, bad])
    with pytest.raises(NotFoundError):
        root.resolve(ENT)


def test_deactivation_returns_history_and_is_final(root: Resolver, owner: PrivateKey,
                                                   trust: TrustRoot) -> None:
    v1 = R.new_record(f"{P}/dev.m1", "device", ENT, owner, data={"serial": "S1"})
    v2 = R.next_version(v1, owner, data={"serial": "S1", "firmware": "2.1"}, reason="upgrade")
    v3 = R.deactivation(v2, owner, "meter removed after tamper alarm")
    root.submit([v1, v2, v3])
    with pytest.raises(DeactivatedError, match="tamper alarm") as info:
        root.resolve(f"{P}/dev.m1")
    answer = info.value.answer
    assert [h.record.version for h in answer.history] == [1, 2]
    assert answer.record == v3
    verify_answer(answer, trust, query=f"{P}/dev.m1")
    with pytest.raises(DeactivatedError, match="cannot change"):
        root.submit([R.next_version(v3, owner, status="active")])


def test_not_found_and_invalid(root: Resolver) -> None:
    with pytest.raises(NotFoundError, match="not registered"):
        root.resolve(f"{P}/nothing")
    with pytest.raises(NotFoundError, match="no prefix known"):
        root.resolve("77.1/x")
    for text in ("", "86.1000.1", "86.1000.1/", "/x", "86..1/x", "86.1/x y", "86.1/" + "x" * 200):
        with pytest.raises(InvalidIdentifierError):
            root.resolve(text)


def test_cache_follows_changes(root: Resolver, owner: PrivateKey) -> None:
    v1 = R.new_record(ENT, "enterprise", ENT, owner, data={"name": "A"})
    root.submit([v1])
    assert root.resolve(ENT) is root.resolve(ENT)  # second one from the cache
    v2 = R.next_version(v1, owner, data={"name": "B"})
    root.submit([v2])
    assert root.resolve(ENT).record == v2


def _secondary(node_factory: Callable[..., Resolver], owner: PrivateKey, prefix: str,
               **settings: Any) -> Resolver:
    return node_factory(trust_key=owner, root=False, log_prefix=prefix, **settings)


def test_delegation_and_referral(root: Resolver, owner: PrivateKey, trust: TrustRoot,
                                 node_factory: Callable[..., Resolver]) -> None:
    enterprise = PrivateKey.generate("sm")
    node = _secondary(node_factory, owner, "86.2000.1", suite="sm")
    d = R.delegation("0", "86.2000.1", owner_keys=[enterprise.public_key()],
                     node_key=node.node_key.public_key(), url="http://node.test:8101",
                     log_id=node.settings.log_id, node_id=node.node_id, key=owner)
    root.submit([d])
    assert node.install_authority([d]) == "86.2000.1"
    dev = R.new_record("86.2000.1/dev.x", "device", "86.2000.1/ent.x", enterprise)
    node.submit([dev])

    referral = root.resolve("86.2000.1/dev.x")
    assert referral.kind == "referral" and referral.record == d
    assert referral.record.record.data["url"] == "http://node.test:8101"
    verify_answer(referral, trust, query="86.2000.1/dev.x")
    answer = node.resolve("86.2000.1/dev.x")
    verified = verify_answer(answer, trust, query="86.2000.1/dev.x")
    assert verified.authority == "86.2000.1" and verified.chain == (d,)
    # Deeper prefixes fall under the delegation too; the root never answers them itself.
    assert root.resolve("86.2000.1.7/x").kind == "referral"
    with pytest.raises(NotAuthoritativeError):
        root.submit([R.new_record("86.2000.1/dev.y", "device", "86.2000.1/ent.x", owner)])
    # The root owner cannot write under a prefix it delegated to someone else's key.
    with pytest.raises(BadSignatureError):
        node.submit([R.new_record("86.2000.1/dev.y", "device", "86.2000.1/ent.x", owner)])


@pytest.mark.parametrize("defect", ["other-node-key", "other-log", "not-from-root",
                                    "deactivated"])
def test_install_authority_refuses(root: Resolver, owner: PrivateKey, defect: str,
                                   node_factory: Callable[..., Resolver]) -> None:
    node = _secondary(node_factory, owner, "86.3000")
    args: dict[str, Any] = {"owner_keys": [owner.public_key()],
                            "node_key": node.node_key.public_key(), "url": "http://n.test",
                            "log_id": node.settings.log_id, "node_id": "n", "key": owner}
    if defect == "other-node-key":
        args["node_key"] = PrivateKey.generate("intl").public_key()
    elif defect == "other-log":
        args["log_id"] = "86.3000/log.other"
    elif defect == "not-from-root":
        args["key"] = PrivateKey.generate("intl")
    d = R.delegation("0", "86.3000", **args)
    if defect == "deactivated":
        d = R.deactivation(d, owner, "revoked")
    error = BadSignatureError if defect == "not-from-root" else InvalidRequestError
    with pytest.raises(error):
        node.install_authority([d])
    assert node.node_info().prefixes == []


def test_nested_delegation(root: Resolver, owner: PrivateKey, trust: TrustRoot,
                           node_factory: Callable[..., Resolver]) -> None:
    province, city = PrivateKey.generate("intl"), PrivateKey.generate("intl")
    a = _secondary(node_factory, owner, "86.4000")
    b = _secondary(node_factory, owner, "86.4000.21")
    d1 = R.delegation("0", "86.4000", owner_keys=[province.public_key()],
                      node_key=a.node_key.public_key(), url="http://a.test",
                      log_id=a.settings.log_id, node_id="a", key=owner)
    d2 = R.delegation("86.4000", "86.4000.21", owner_keys=[city.public_key()],
                      node_key=b.node_key.public_key(), url="http://b.test",
                      log_id=b.settings.log_id, node_id="b", key=province)
    root.submit([d1])
    a.install_authority([d1])
    a.submit([d2])
    b.install_authority([d1, d2])
    b.submit([R.new_record("86.4000.21/dev.1", "device", "86.4000.21/ent.1", city)])
    assert root.resolve("86.4000.21/dev.1").record == d1
    hop = a.resolve("86.4000.21/dev.1")
    assert hop.kind == "referral" and hop.record == d2 and hop.delegations == [d1]
    verify_answer(hop, trust, query="86.4000.21/dev.1", narrower_than="86.4000")
    verify_answer(b.resolve("86.4000.21/dev.1"), trust, query="86.4000.21/dev.1")
    # A delegation must narrow the delegator's prefix.
    with pytest.raises(InvalidRequestError, match="under it"):
        a.submit([R.delegation("86.4000", "86.5000", owner_keys=[city.public_key()],
                               node_key=b.node_key.public_key(), url="http://b.test",
                               log_id=b.settings.log_id, node_id="b", key=province)])


def test_anchoring_and_proofs(root: Resolver, owner: PrivateKey, trust: TrustRoot) -> None:
    root.submit([R.new_record(ENT, "enterprise", ENT, owner)])
    assert root.anchor_tick() is None  # not due: 2 records, 10 s not passed
    ref = root.anchor_tick(force=True)
    assert ref is not None and ref.tree_size == 2
    assert root.anchor_tick(force=True) is None  # nothing new
    answer = root.resolve(ENT)
    assert answer.proof.anchor == ref
    verified = verify_answer(answer, trust, query=ENT, require_anchor=True)
    assert verified.anchored and "anchor" in verified.passed
    # Written after the anchor: proven against a newer, not yet anchored head.
    root.submit([R.new_record(f"{P}/ent.b", "enterprise", ENT, owner)])
    later = root.resolve(f"{P}/ent.b")
    assert later.proof.anchor is None and later.proof.tree_size == 3
    assert root.resolve(ENT).proof.anchor == ref  # still the anchored head


def test_vanished_anchors_are_not_cited(node_factory: Callable[..., Resolver],
                                        owner: PrivateKey, chain: Any) -> None:
    from ledger_service._internal.chain import ChainClient

    node = node_factory(trust_key=owner)
    node.bootstrap(owner, [P], url=ROOT_URL)
    assert node.anchor_tick(force=True) is not None
    # The same database reopened against a fresh chain that never saw the anchor.
    fresh = Resolver.open(node.settings, chain=ChainClient.embedded(), engine=node.engine)
    assert fresh.latest_anchor() is None
    assert fresh.resolve(f"0/na.{P}").proof.anchor is None
    ref = fresh.anchor_tick(force=True)
    assert ref is not None and fresh.resolve(f"0/na.{P}").proof.anchor == ref


def test_bootstrap_needs_the_trust_root_key(root: Resolver) -> None:
    with pytest.raises(BadSignatureError):
        root.bootstrap(PrivateKey.generate("intl"), ["86.9"], url=ROOT_URL)


def test_node_info(root: Resolver) -> None:
    info = root.node_info()
    assert info.root and info.prefixes == ["0", P] and info.tree_size == 1
    assert info.log_key.key_id == root.node_key.public_key().key_id


def test_cache_never_keeps_an_answer_older_than_a_committed_change(
        root: Resolver, owner: PrivateKey) -> None:
    import threading

    current = R.new_record(ENT, "enterprise", ENT, owner, data={"n": 0})
    root.submit([current])
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                root.resolve(ENT)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 30):
            current = R.next_version(current, owner, data={"n": n})
            root.submit([current])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert root.resolve(ENT).record == current
