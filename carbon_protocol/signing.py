"""Signing and checking protocol objects: the bytes signed are always RFC 8785 JSON.

A reading is signed as ``canonical_json(reading)``; the Merkle leaf is
``canonical_json(signed_reading)``, so the log commits to the signature as well as the
reading. Tree heads are signed the same way by the log's key. The suite and key id
sit *inside* the signed object, so a signature cannot be re-labelled as another
suite's or another key's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

from .canonical import canonical_json
from .errors import ProtocolError, SignatureError
from .merkle import leaf_hash
from .models import Domain, Reading, SignedReading, SignedTreeHead, TreeHead
from .suites import PrivateKey, PublicKey, SuiteName, hash_fn

__all__ = [
    "reading_bytes",
    "sign_reading",
    "verify_reading",
    "first_bad_reading",
    "check_readings_in_order",
    "leaf_bytes",
    "reading_leaf_hash",
    "reading_id",
    "tree_head_bytes",
    "sign_tree_head",
    "verify_tree_head",
]


_READING_FIELDS = frozenset({
    "cumulative", "device", "domain", "key_id", "measured_at", "quality", "quantity", "salt",
    "seq", "suite", "unit", "v", "value",
})
_DOMAIN_FIELDS = frozenset({"chain_id", "contract", "log_id"})
if set(Reading.model_fields) != _READING_FIELDS or set(Domain.model_fields) != _DOMAIN_FIELDS:
    # reading_bytes spells every field out; a field it did not know would go unsigned.
    raise ImportError("Reading or Domain gained or lost a field: update reading_bytes")


def reading_bytes(reading: Reading) -> bytes:
    """The exact bytes a device signs: RFC 8785 JSON of the reading.

    Assembled field by field in RFC 8785 key order rather than serialised generically,
    because this runs once per reading on the ingest path, where the generic
    ``canonical_json`` cost a tenth of all the time. It is exact because the model
    admits nothing that needs care: every string is validated against a pattern or a
    fixed set of characters that JSON never escapes (digits, letters, ``.:_-/``), and
    every integer is below 2**53. A property test compares it with the reference
    ``rfc8785`` package on random readings, and the import-time check above refuses
    a model with fields this does not spell out.
    """
    r, d = reading, reading.domain
    cumulative = "null" if r.cumulative is None else f'"{r.cumulative}"'
    return (
        f'{{"cumulative":{cumulative},"device":"{r.device}","domain":{{"chain_id":'
        f'{d.chain_id},"contract":"{d.contract}","log_id":"{d.log_id}"}},"key_id":'
        f'"{r.key_id}","measured_at":"{r.measured_at}","quality":"{r.quality}",'
        f'"quantity":"{r.quantity}","salt":"{r.salt}","seq":{r.seq},"suite":"{r.suite}",'
        f'"unit":"{r.unit}","v":{r.v},"value":"{r.value}"}}'
    ).encode("ascii")


def _check_key(label: str, suite: str, key_id: str, key: PublicKey) -> None:
    if suite != key.suite:
        raise SignatureError(f"{label} names suite {suite!r} but the key is {key.suite!r}")
    if key_id != key.key_id:
        raise SignatureError(f"{label} names key {key_id} but the key given is {key.key_id}")


def sign_reading(reading: Reading, key: PrivateKey) -> SignedReading:
    """Sign ``reading`` with a device key whose suite and id the reading names."""
    _check_key("reading", reading.suite, reading.key_id, key.public_key())
    return SignedReading(reading=reading, signature=key.sign(reading_bytes(reading)).hex())


def verify_reading(
    signed: SignedReading, key: PublicKey, *, reading_data: bytes | None = None
) -> None:
    """Raise :class:`SignatureError` unless ``key`` signed ``signed.reading``.

    ``reading_data`` lets a caller that already holds ``reading_bytes(signed.reading)``
    skip serialising it again.
    """
    r = signed.reading
    _check_key(f"reading {r.device}#{r.seq}", r.suite, r.key_id, key)
    key.verify(bytes.fromhex(signed.signature), reading_data or reading_bytes(r))


_CHUNK = 512
"""Readings per task of :func:`first_bad_reading`: enough that a task's overhead is lost
in its signatures, few enough that the threads finish together."""


def _first_bad(items: Sequence[tuple[SignedReading, PublicKey]], start: int,
               stop: int) -> tuple[int, ProtocolError] | None:
    for i in range(start, stop):
        signed, key = items[i]
        try:
            verify_reading(signed, key)
        except ProtocolError as exc:
            return i, exc
    return None


def first_bad_reading(items: Sequence[tuple[SignedReading, PublicKey]], *,
                      threads: int | None = None) -> tuple[int, ProtocolError] | None:
    """The position and error of the first reading in ``items`` that ``verify_reading``
    refuses, or ``None`` when every signature holds.

    Checked in ``threads`` threads (default: one per CPU this process may use), because
    both suites' native verifiers (tongsuopy's SM2 through cffi, cryptography's Ed25519)
    release the GIL: two cores check about twice as many signatures. The answer is the
    one a loop in order would give."""
    n = len(items)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    workers = min(threads, -(-n // _CHUNK))
    if workers <= 1:
        return _first_bad(items, 0, n)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="verify-signatures")
    try:
        tasks = [pool.submit(_first_bad, items, start, min(start + _CHUNK, n))
                 for start in range(0, n, _CHUNK)]
        for task in tasks:  # in order, so the first failure found is the first in order
            found = task.result()
            if found is not None:
                return found
        return None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_readings_in_order(
    count: int,
    before: Callable[[int], tuple[SignedReading, PublicKey]],
    after: Callable[[int], None],
    on_bad_signature: Callable[[int, ProtocolError], NoReturn],
    *,
    threads: int | None = None,
) -> None:
    """Check readings ``0 .. count-1`` as this loop would, with the signatures checked in
    threads (see :func:`first_bad_reading`)::

        for pos in range(count):
            signed, key = before(pos)      # facts that come first; the key to check with
            verify_reading(signed, key)    # on failure: on_bad_signature(pos, error)
            after(pos)                     # facts that come after the signature

    ``before`` and ``after`` raise to fail; whichever failure the loop meets first is the
    one raised. They run in order, in this thread, up to the first that fails, so a
    verifier keeps its exact first failure while its signatures use every core."""
    items: list[tuple[SignedReading, PublicKey]] = []
    failed: Exception | None = None
    for pos in range(count):
        try:
            items.append(before(pos))
        except Exception as exc:  # the caller's own failure, raised again below
            failed = exc
            break
        try:
            after(pos)
        except Exception as exc:
            failed = exc  # this reading's signature still comes first
            break
    bad = first_bad_reading(items, threads=threads)
    if bad is not None:
        on_bad_signature(*bad)
    if failed is not None:
        raise failed


def leaf_bytes(signed: SignedReading, *, reading_data: bytes | None = None) -> bytes:
    """The Merkle leaf data for a signed reading: its RFC 8785 JSON.

    Assembled from the reading's canonical bytes instead of re-serialising the whole
    envelope: the envelope's keys sort as ``reading`` < ``signature`` and the signature
    is lowercase hex, which needs no escaping, so this is byte-identical to
    ``canonical_json(signed.model_dump(mode="json"))`` (a test keeps it so) at half
    the cost on the ingest path.
    """
    data = reading_data or reading_bytes(signed.reading)
    return b'{"reading":' + data + b',"signature":"' + (
        signed.signature.encode("ascii") + b'"}'
    )


def reading_leaf_hash(signed: SignedReading, log_suite: SuiteName) -> bytes:
    """RFC 6962 leaf hash ``H(0x00 || leaf_bytes)`` with the log's hash function."""
    return leaf_hash(hash_fn(log_suite), leaf_bytes(signed))


def reading_id(prefix: str, leaf: bytes) -> str:
    """The identifier of a stored reading: anyone holding the leaf can derive it."""
    return f"{prefix}/r.{leaf[:16].hex()}"


def tree_head_bytes(head: TreeHead) -> bytes:
    """The exact bytes a log signs for a tree head."""
    return canonical_json(head.model_dump(mode="json"))


def sign_tree_head(head: TreeHead, key: PrivateKey) -> SignedTreeHead:
    """Sign a tree head with the log key it names."""
    _check_key("tree head", head.suite, head.key_id, key.public_key())
    return SignedTreeHead(tree_head=head, signature=key.sign(tree_head_bytes(head)).hex())


def verify_tree_head(sth: SignedTreeHead, key: PublicKey) -> None:
    """Raise :class:`SignatureError` unless ``key`` signed the tree head."""
    head = sth.tree_head
    _check_key(f"tree head of size {head.tree_size}", head.suite, head.key_id, key)
    key.verify(bytes.fromhex(sth.signature), tree_head_bytes(head))
