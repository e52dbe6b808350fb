"""Signing and checking protocol objects: the bytes signed are always RFC 8785 JSON.

A reading is signed as ``canonical_json(reading)``; the Merkle leaf is
``canonical_json(signed_reading)``, so the log commits to the signature as well as the
reading. Tree heads are signed the same way by the log's key. The suite and key id
sit *inside* the signed object, so a signature cannot be re-labelled as another
suite's or another key's.
"""

from __future__ import annotations

from .canonical import canonical_json
from .errors import SignatureError
from .merkle import leaf_hash
from .models import Domain, Reading, SignedReading, SignedTreeHead, TreeHead
from .suites import PrivateKey, PublicKey, SuiteName, hash_fn

__all__ = [
    "reading_bytes",
    "sign_reading",
    "verify_reading",
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
