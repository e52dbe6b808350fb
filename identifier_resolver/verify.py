"""Verifying resolution answers against a pinned trust root, step by numbered step.

Steps (each raises :class:`~identifier_resolver.errors.VerificationError` naming
itself, with the expected and found values where there are two):

1. authority: the delegation chain starts at the trust root, each record signed by an
   owner key of the prefix above, active, each delegated prefix under the one before;
   the last one covers the record's prefix (the root prefix needs no chain);
2. record signature: an owner key of that authority signed the record's RFC 8785 bytes;
3. identity: a record answer is about the identifier asked; a referral is an active
   delegation of a prefix covering it, longer than any referral followed before;
4. history: earlier versions are signed by the authority, numbered 1..n-1, and each
   version's ``prev`` is the digest of the one before;
5. leaf: ``H(0x00 || canonical(signed_record))`` with the log's hash is the proven leaf;
6. log key: the proof's log key is the authority's node key (the root's pinned log key
   for the root prefix) and the log id is the authority's;
7. inclusion: the RFC 9162 §2.1.3.2 proof leads from the leaf to the tree head's root;
8. tree head signature: the log key signed the tree head;
9. anchor: the anchor records this log (``keccak256(log_id)``), size and root; an answer
   without an anchor passes only when the caller does not require one;
10. chain (only with a :class:`~carbon_protocol.chain_view.ChainView`): the contract
    holds the same root for this log and size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from carbon_protocol.chain_view import ChainLookupError, ChainView, log_key
from carbon_protocol.errors import ProtocolError
from carbon_protocol.merkle import leaf_hash, root_from_inclusion_proof
from carbon_protocol.signing import verify_tree_head
from carbon_protocol.suites import PublicKey, hash_fn

from .errors import ResolverError, VerificationError
from .models import Answer, CustodyGraph, RecordProof, SignedRecord, TrustRoot
from .records import record_digest, signed_record_bytes, verify_record_signature
from .resolver import Authority, authority_from_delegation, covers

__all__ = ["STEPS", "VerifiedAnswer", "verify_answer", "verify_custody", "authority_of"]

STEPS: tuple[str, ...] = (
    "authority", "record signature", "identity", "history", "leaf", "log key", "inclusion",
    "tree head signature", "anchor", "chain",
)


@dataclass
class VerifiedAnswer:
    """An answer that passed verification, and what was checked."""

    answer: Answer
    authority: str
    """The prefix whose owner signed the record."""
    chain: tuple[SignedRecord, ...] = ()
    """The delegation chain (root first) that established that authority."""
    passed: list[str] = field(default_factory=list)
    anchored: bool = False
    chain_checked: bool = False
    hops: list[str] = field(default_factory=list)
    """Node URLs asked, in order (filled in by the client)."""


def _fail(step: int, message: str, expected: object = None, found: object = None) -> NoReturn:
    raise VerificationError(step, STEPS[step - 1], message,
                            expected=None if expected is None else str(expected),
                            found=None if found is None else str(found))


def _root_authority(trust: TrustRoot) -> Authority:
    owners = {k.key_id: PublicKey.from_hex(k.suite, k.public_key) for k in trust.owner_keys}
    return Authority(trust.root_prefix, owners,
                     PublicKey.from_hex(trust.log_key.suite, trust.log_key.public_key),
                     trust.log_id, ())


def authority_of(trust: TrustRoot, chain: Sequence[SignedRecord], prefix: str) -> Authority:
    """Step 1: the authority for ``prefix`` that ``chain`` (root first) establishes."""
    auth = _root_authority(trust)
    remaining = list(chain)
    while True:
        # The next link is a delegation made by the current authority whose prefix covers
        # ``prefix`` (a chain may hold links for other prefixes too, e.g. a custody walk's).
        candidates = [s for s in remaining if s.record.prefix == auth.prefix
                      and covers(str(s.record.data.get("prefix", "")), prefix)]
        if not candidates:
            break
        signed = max(candidates, key=lambda s: len(str(s.record.data["prefix"])))
        remaining.remove(signed)
        try:
            auth = authority_from_delegation(auth, signed, root_prefix=trust.root_prefix)
        except (ResolverError, ProtocolError) as exc:
            _fail(1, f"delegation {signed.record.id} does not chain up to the trust root: {exc}")
    if not covers(auth.prefix, prefix):
        _fail(1, f"no delegation chain reaches prefix {prefix}", expected=prefix,
              found=auth.prefix)
    return auth


def _verify_record(signed: SignedRecord, auth: Authority, step: int) -> None:
    key = auth.owner_keys.get(signed.record.signer.key_id)
    if key is None:
        _fail(step, f"{signed.record.id} version {signed.record.version} is signed by a key "
                    f"that is not an owner key of {auth.prefix}",
              expected=",".join(sorted(auth.owner_keys)), found=signed.record.signer.key_id)
    try:
        verify_record_signature(signed, key)
    except ProtocolError as exc:
        _fail(step, f"{signed.record.id} version {signed.record.version}: {exc}")


def _verify_proof(signed: SignedRecord, proof: RecordProof, auth: Authority,
                  trust: TrustRoot, *, require_anchor: bool, chain: ChainView | None,
                  passed: list[str]) -> tuple[bool, bool]:
    # 5. leaf
    h = hash_fn(proof.signed_tree_head.tree_head.suite)
    leaf = leaf_hash(h, signed_record_bytes(signed))
    if leaf.hex() != proof.leaf_hash:
        _fail(5, f"leaf hash mismatch for {signed.record.id}", expected=leaf.hex(),
              found=proof.leaf_hash)
    passed.append(STEPS[4])
    # 6. log key
    key = auth.node_key
    head = proof.signed_tree_head.tree_head
    if proof.log_key.key_id != key.key_id or head.key_id != key.key_id:
        _fail(6, f"tree head of {auth.prefix} is not signed by its node key",
              expected=key.key_id, found=head.key_id)
    if auth.prefix == trust.root_prefix:
        expected_log = trust.log_id
    else:
        expected_log = auth.log_id
    if head.log_id != expected_log or proof.log_id != expected_log:
        _fail(6, "the proof is from another log", expected=expected_log, found=head.log_id)
    passed.append(STEPS[5])
    # 7. inclusion
    if proof.tree_size != head.tree_size:
        _fail(7, "proof and tree head disagree on the tree size", expected=head.tree_size,
              found=proof.tree_size)
    try:
        root = root_from_inclusion_proof(h, proof.leaf_index, proof.tree_size, leaf,
                                         [bytes.fromhex(p) for p in proof.inclusion_proof])
    except ProtocolError as exc:
        _fail(7, str(exc))
    if root.hex() != head.root_hash:
        _fail(7, "the inclusion proof leads to another root", expected=head.root_hash,
              found=root.hex())
    passed.append(STEPS[6])
    # 8. tree head signature
    try:
        verify_tree_head(proof.signed_tree_head, key)
    except ProtocolError as exc:
        _fail(8, str(exc))
    passed.append(STEPS[7])
    # 9. anchor
    anchor = proof.anchor
    if anchor is None:
        if require_anchor:
            _fail(9, f"the tree head of size {head.tree_size} is not anchored yet")
        return False, False
    expected_key = log_key(head.log_id).hex()
    for what, want, got in (("log key", expected_key, anchor.log_key),
                            ("tree size", head.tree_size, anchor.tree_size),
                            ("root", head.root_hash, anchor.root_hash)):
        if want != got:
            _fail(9, f"the anchor records another {what}", expected=want, found=got)
    passed.append(STEPS[8])
    # 10. chain
    if chain is None:
        return True, False
    try:
        held = chain.anchor_of(anchor.contract, bytes.fromhex(anchor.log_key), anchor.tree_size)
    except ChainLookupError as exc:
        _fail(10, f"the chain could not be asked: {exc}")
    if held is None or held.root.hex() != anchor.root_hash:
        _fail(10, f"contract {anchor.contract} does not hold this root",
              expected=anchor.root_hash, found=None if held is None else held.root.hex())
    passed.append(STEPS[9])
    return True, True


def verify_answer(
    answer: Answer,
    trust: TrustRoot,
    *,
    query: str,
    delegations: Sequence[SignedRecord] | None = None,
    narrower_than: str | None = None,
    require_anchor: bool = False,
    chain: ChainView | None = None,
) -> VerifiedAnswer:
    """Check a resolution answer for ``query``; return what passed or raise.

    ``delegations`` (root first) replaces the chain the answer carries, for a client
    that learnt it by following referrals from the root; ``narrower_than`` is the prefix
    of the last referral followed (a new referral must be longer). Raises
    :class:`VerificationError` at the first step that fails.
    """
    passed: list[str] = []
    record = answer.record.record
    # 1. authority
    auth = authority_of(trust, answer.delegations if delegations is None else delegations,
                        record.prefix)
    passed.append(STEPS[0])
    # 2. record signature
    _verify_record(answer.record, auth, 2)
    passed.append(STEPS[1])
    # 3. identity
    if answer.query != query:
        _fail(3, "the answer is for another identifier", expected=query, found=answer.query)
    if answer.kind == "record":
        if record.id != query:
            _fail(3, "the record is for another identifier", expected=query, found=record.id)
    else:
        prefix = str(record.data.get("prefix"))
        if record.type != "delegation" or record.status != "active":
            _fail(3, f"a referral must be an active delegation, got a {record.status} "
                     f"{record.type}")
        if not covers(prefix, query.partition("/")[0]):
            _fail(3, "the referral's prefix does not cover the identifier",
                  expected=query.partition("/")[0], found=prefix)
        if narrower_than is not None and (prefix == narrower_than
                                          or not covers(narrower_than, prefix)):
            _fail(3, "the referral does not narrow the prefix of the previous one",
                  expected=f"under {narrower_than}", found=prefix)
    passed.append(STEPS[2])
    # 4. history
    versions = [*answer.history, answer.record]
    for n, version in enumerate(versions, 1):
        r = version.record
        if r.id != record.id or r.type != record.type or r.version != n:
            _fail(4, f"history entry {n} is not version {n} of {record.id}",
                  expected=f"{record.id} v{n}", found=f"{r.id} v{r.version}")
        if n > 1:
            want = record_digest(versions[n - 2]).value
            if r.prev != want:
                _fail(4, f"version {n} of {record.id} does not follow version {n - 1}",
                      expected=want, found=r.prev)
        if version is not answer.record:
            _verify_record(version, auth, 4)
        if n < len(versions) and r.status == "deactivated":
            _fail(4, f"version {n} of {record.id} is deactivated but has a successor")
    passed.append(STEPS[3])
    anchored, chain_checked = _verify_proof(answer.record, answer.proof, auth, trust,
                                            require_anchor=require_anchor, chain=chain,
                                            passed=passed)
    return VerifiedAnswer(answer=answer, authority=auth.prefix, chain=auth.chain,
                          passed=passed, anchored=anchored, chain_checked=chain_checked)


def verify_custody(graph: CustodyGraph, trust: TrustRoot, *, require_proofs: bool = True,
                   require_anchor: bool = False, chain: ChainView | None = None) -> int:
    """Check every proven node of a custody walk (fetched with ``proofs=true``).

    Each present node's record must be signed by the owner of its prefix and proven in
    the answering node's log (steps 1, 2, 5-10 per node); links are taken from the
    verified records, so every edge whose source is proven is one its owner signed.
    Returns the number of nodes verified. Raises :class:`VerificationError`.
    """
    declared: set[tuple[str, str, str]] = set()
    count = 0
    for node in graph.nodes:
        if node.state != "present":
            continue
        if node.record is None or node.proof is None:
            if require_proofs:
                _fail(5, f"custody node {node.id} carries no record and proof")
            continue
        if node.record.record.id != node.id:
            _fail(3, "custody node holds another record", expected=node.id,
                  found=node.record.record.id)
        r = node.record.record
        if (r.type, r.status, r.version, r.owner, r.hash, dict(r.data)) != (
                node.type, node.status, node.version, node.owner, node.hash, dict(node.data)):
            _fail(3, f"custody node {node.id} summary differs from its signed record")
        auth = authority_of(trust, graph.delegations, r.prefix)
        _verify_record(node.record, auth, 2)
        _verify_proof(node.record, node.proof, auth, trust, require_anchor=require_anchor,
                      chain=chain, passed=[])
        declared.update((r.id, link.rel, link.target) for link in r.links)
        count += 1
    proven = {n.id for n in graph.nodes if n.record is not None}
    for edge in graph.edges:
        if edge.source in proven and (edge.source, edge.rel, edge.target) not in declared:
            _fail(3, f"edge {edge.source} -{edge.rel}-> {edge.target} is not in the source's "
                     "signed record")
    return count
