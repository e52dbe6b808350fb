"""Offline verification of a proof bundle, step by numbered step.

Steps (each raises :class:`BundleVerificationError` naming itself, with the expected
and found values):

1. device key: the bundled key parses, belongs to the reading's device, and its id
   and suite are the ones the reading names;
2. reading signature: the device key signed the RFC 8785 bytes of the reading;
3. leaf: ``H(0x00 || canonical(signed_reading))`` equals the bundled leaf hash, and the
   reading identifier is the one derived from it;
4. inclusion: the RFC 9162 §2.1.3.2 proof leads from the leaf to the tree head's root;
5. log key: the bundled log key parses, has the tree head's id and suite, and is
   trusted when the caller pins trusted log keys;
6. tree head signature: the log key signed the tree head;
7. domain: the reading was signed for this chain, contract and log;
8. anchor: the anchor records this log, tree size and root;
9. key validity: the anchor's block time lies inside the device key's validity
   (a reading anchored before a key was revoked stays valid; later ones do not);
10. chain (only with a :class:`ChainView`): the chain id matches, the contract holds
    the same root for this log and size, and the anchor transaction sits in the
    named block on the canonical chain.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NoReturn

from .chain_view import ChainLookupError, ChainView, log_key
from .errors import BundleVerificationError, ProtocolError
from .merkle import root_from_inclusion_proof
from .models import ProofBundle, parse_utc
from .signing import reading_id, reading_leaf_hash, verify_reading, verify_tree_head
from .suites import PublicKey, hash_fn

__all__ = ["STEPS", "VerificationReport", "verify_bundle"]

STEPS: tuple[str, ...] = (
    "device key",
    "reading signature",
    "leaf",
    "inclusion",
    "log key",
    "tree head signature",
    "domain",
    "anchor",
    "key validity",
    "chain",
)


@dataclass
class VerificationReport:
    """What was checked; ``passed`` lists step names in order."""

    passed: list[str] = field(default_factory=list)
    chain_checked: bool = False
    confirmations: int | None = None


class _Steps:
    def __init__(self, report: VerificationReport) -> None:
        self.report = report
        self.number = 0

    def begin(self) -> None:
        self.number += 1

    def fail(self, message: str, expected: object = None, found: object = None) -> NoReturn:
        raise BundleVerificationError(
            self.number,
            STEPS[self.number - 1],
            message,
            expected=None if expected is None else str(expected),
            found=None if found is None else str(found),
        )

    def done(self) -> None:
        self.report.passed.append(STEPS[self.number - 1])


def verify_bundle(
    bundle: ProofBundle,
    *,
    chain: ChainView | None = None,
    trusted_log_keys: Collection[str] | None = None,
    min_confirmations: int = 1,
) -> VerificationReport:
    """Check every link of ``bundle``; return the report or raise at the first failure.

    ``trusted_log_keys`` pins log key ids (hex); without it the bundled log key is
    accepted as long as the anchor on chain matches (step 10 is the trust root then).
    """
    report = VerificationReport()
    s = _Steps(report)
    signed = bundle.signed_reading
    reading = signed.reading
    sth = bundle.signed_tree_head
    head = sth.tree_head
    anchor = bundle.anchor

    s.begin()  # 1. device key
    dk = bundle.device_key
    try:
        device_key = PublicKey.from_hex(dk.suite, dk.public_key)
    except ProtocolError as exc:
        s.fail(f"device key does not parse: {exc}")
    if device_key.key_id != dk.key_id:
        s.fail("device key id is not derived from the key", device_key.key_id, dk.key_id)
    if dk.device != reading.device:
        s.fail("device key belongs to another device", reading.device, dk.device)
    if (dk.suite, dk.key_id) != (reading.suite, reading.key_id):
        s.fail("reading names another key", f"{dk.suite}:{dk.key_id}",
               f"{reading.suite}:{reading.key_id}")
    s.done()

    s.begin()  # 2. reading signature
    try:
        verify_reading(signed, device_key)
    except ProtocolError as exc:
        s.fail(str(exc))
    s.done()

    s.begin()  # 3. leaf
    leaf = reading_leaf_hash(signed, head.suite)
    if leaf.hex() != bundle.leaf_hash:
        s.fail("leaf hash mismatch", leaf.hex(), bundle.leaf_hash)
    derived = reading_id(bundle.reading_id.partition("/")[0], leaf)
    if derived != bundle.reading_id:
        s.fail("reading identifier is not derived from the leaf", derived, bundle.reading_id)
    s.done()

    s.begin()  # 4. inclusion
    try:
        root = root_from_inclusion_proof(
            hash_fn(head.suite),
            bundle.leaf_index,
            head.tree_size,
            leaf,
            [bytes.fromhex(p) for p in bundle.inclusion_proof],
        )
    except (ProtocolError, ValueError) as exc:
        s.fail(f"inclusion proof is malformed: {exc}")
    if root.hex() != head.root_hash:
        s.fail("root calculated from the inclusion proof differs from the tree head",
               head.root_hash, root.hex())
    s.done()

    s.begin()  # 5. log key
    lk = bundle.log_key
    try:
        log_pub = PublicKey.from_hex(lk.suite, lk.public_key)
    except ProtocolError as exc:
        s.fail(f"log key does not parse: {exc}")
    if log_pub.key_id != lk.key_id:
        s.fail("log key id is not derived from the key", log_pub.key_id, lk.key_id)
    if (lk.suite, lk.key_id) != (head.suite, head.key_id):
        s.fail("tree head names another log key", f"{head.suite}:{head.key_id}",
               f"{lk.suite}:{lk.key_id}")
    if trusted_log_keys is not None and lk.key_id not in trusted_log_keys:
        s.fail("log key is not trusted", " or ".join(sorted(trusted_log_keys)), lk.key_id)
    s.done()

    s.begin()  # 6. tree head signature
    try:
        verify_tree_head(sth, log_pub)
    except ProtocolError as exc:
        s.fail(str(exc))
    s.done()

    s.begin()  # 7. domain
    dom = reading.domain
    if dom.log_id != head.log_id:
        s.fail("reading was signed for another log", head.log_id, dom.log_id)
    if dom.chain_id != anchor.chain_id:
        s.fail("reading was signed for another chain", anchor.chain_id, dom.chain_id)
    if dom.contract != anchor.contract:
        s.fail("reading was signed for another anchor contract", anchor.contract, dom.contract)
    s.done()

    s.begin()  # 8. anchor
    key_hex = log_key(head.log_id).hex()
    if anchor.log_key != key_hex:
        s.fail("anchor is for another log", key_hex, anchor.log_key)
    if anchor.tree_size != head.tree_size:
        s.fail("anchor is for another tree size", head.tree_size, anchor.tree_size)
    if anchor.root_hash != head.root_hash:
        s.fail("anchored root differs from the tree head", head.root_hash, anchor.root_hash)
    s.done()

    s.begin()  # 9. key validity
    anchored_at = anchor.block_timestamp
    valid_from = int(parse_utc(dk.valid_from).timestamp())
    if anchored_at < valid_from:
        s.fail("reading was anchored before its key became valid",
               f">= {dk.valid_from}", f"block time {anchored_at}")
    if dk.revoked_at is not None and anchored_at >= int(parse_utc(dk.revoked_at).timestamp()):
        s.fail("reading was anchored after its key was revoked",
               f"< {dk.revoked_at}", f"block time {anchored_at}")
    s.done()

    s.begin()  # 10. chain
    if chain is None:
        return report
    try:
        _check_chain(s, bundle, chain, min_confirmations)
    except ChainLookupError as exc:
        s.fail(f"chain look-up failed: {exc}")
    s.done()
    report.chain_checked = True
    return report


def _check_chain(s: _Steps, bundle: ProofBundle, chain: ChainView, min_conf: int) -> None:
    anchor = bundle.anchor
    chain_id = chain.chain_id()
    if chain_id != anchor.chain_id:
        s.fail("the endpoint serves another chain", anchor.chain_id, chain_id)
    on_chain = chain.anchor_of(anchor.contract, bytes.fromhex(anchor.log_key), anchor.tree_size)
    if on_chain is None:
        s.fail("no anchor on chain for this log and tree size", anchor.root_hash, "nothing")
    if on_chain.root.hex() != anchor.root_hash:
        s.fail("anchored root on chain differs", anchor.root_hash, on_chain.root.hex())
    if on_chain.block_number != anchor.block_number:
        s.fail("anchor block on chain differs", anchor.block_number, on_chain.block_number)
    receipt = chain.receipt(anchor.tx_hash)
    if receipt is None or receipt.status != 1:
        s.fail("anchor transaction is not mined successfully", anchor.tx_hash, receipt)
    if receipt.block_hash != anchor.block_hash:
        s.fail("anchor transaction is in another block", anchor.block_hash, receipt.block_hash)
    canonical = chain.block_hash(anchor.block_number)
    if canonical != anchor.block_hash:
        s.fail("anchor block is not on the canonical chain", anchor.block_hash, canonical)
    confirmations = chain.head_block() - anchor.block_number + 1
    s.report.confirmations = confirmations
    if confirmations < min_conf:
        s.fail("anchor is not confirmed deeply enough", f">= {min_conf}", confirmations)
