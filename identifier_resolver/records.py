"""Making and signing records: the bytes signed are always RFC 8785 JSON.

A prefix owner signs ``canonical_json(record)`` with its key (SM2 or Ed25519, named
inside the record as ``signer``, so a signature cannot be relabelled). The node's log
leaf is ``canonical_json(signed_record)``, so the log commits to the signature too,
and a record's digest (the ``prev`` of its next version) is the owner suite's hash
(SM3 or SHA-256) of those same bytes.

Owners keep their keys: a node verifies signatures, it never signs records. The
helpers here (:func:`new_record`, :func:`next_version`, :func:`deactivation`,
:func:`delegation`, :func:`maintenance`, :func:`calibration`) build correctly chained
versions on the owner's side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import SignatureError
from carbon_protocol.identifiers import parse_identifier
from carbon_protocol.models import format_utc
from carbon_protocol.suites import PrivateKey, PublicKey, SuiteName, digest

from ._internal.clock import utc_text
from .models import (
    DataValue,
    HashRef,
    Link,
    Record,
    RecordKey,
    RecordType,
    Relation,
    SignedRecord,
    Signer,
)

__all__ = [
    "record_bytes",
    "signed_record_bytes",
    "record_digest",
    "hash_ref",
    "sign_record",
    "verify_record_signature",
    "key_entry",
    "new_record",
    "next_version",
    "deactivation",
    "delegation",
    "maintenance",
    "calibration",
    "same_content",
]

_ALG: dict[str, str] = {"sm": "sm3", "intl": "sha256"}


def record_bytes(record: Record) -> bytes:
    """The exact bytes a prefix owner signs: RFC 8785 JSON of the record."""
    return canonical_json(record.model_dump(mode="json"))


def signed_record_bytes(signed: SignedRecord) -> bytes:
    """The log leaf data of a signed record: its RFC 8785 JSON.

    Assembled from the record's canonical bytes: the envelope's keys sort as
    ``record`` < ``signature`` and the signature is lowercase hex, so this equals
    ``canonical_json(signed.model_dump(mode="json"))`` (a test keeps it so).
    """
    return (b'{"record":' + record_bytes(signed.record) + b',"signature":"'
            + signed.signature.encode("ascii") + b'"}')


def hash_ref(suite: SuiteName, data: bytes) -> HashRef:
    """The suite's digest of ``data`` (SM3 or SHA-256) as a :class:`HashRef`."""
    return HashRef(alg=_ALG[suite], value=digest(suite, data).hex())  # type: ignore[arg-type]


def record_digest(signed: SignedRecord, data: bytes | None = None) -> HashRef:
    """Digest of a signed version with its signer's suite: the next version's ``prev``."""
    return hash_ref(signed.record.signer.suite, data or signed_record_bytes(signed))


def _check_signer(record: Record, key: PublicKey) -> None:
    if record.signer.suite != key.suite:
        raise SignatureError(f"record {record.id} names suite {record.signer.suite!r} but the "
                             f"key is {key.suite!r}")
    if record.signer.key_id != key.key_id:
        raise SignatureError(f"record {record.id} names key {record.signer.key_id} but the "
                             f"key given is {key.key_id}")


def sign_record(record: Record, key: PrivateKey) -> SignedRecord:
    """Sign ``record`` with the owner key it names as ``signer``."""
    _check_signer(record, key.public_key())
    return SignedRecord(record=record, signature=key.sign(record_bytes(record)).hex())


def verify_record_signature(signed: SignedRecord, key: PublicKey) -> None:
    """Raise :class:`~carbon_protocol.errors.SignatureError` unless ``key`` signed it."""
    _check_signer(signed.record, key)
    key.verify(bytes.fromhex(signed.signature), record_bytes(signed.record))


def key_entry(
    key: PublicKey, role: str, *, valid_from: str | None = None, revoked_at: str | None = None
) -> RecordKey:
    """A :class:`RecordKey` for a public key."""
    return RecordKey(role=role, suite=key.suite, public_key=key.hex(),  # type: ignore[arg-type]
                     key_id=key.key_id, valid_from=valid_from, revoked_at=revoked_at)


def _when(now: datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    return format_utc(now) if now is not None else utc_text()


def _links(links: Iterable[Link | tuple[Relation, str]]) -> list[Link]:
    return [x if isinstance(x, Link) else Link(rel=x[0], target=x[1]) for x in links]


def new_record(
    ident: str,
    type: RecordType,
    owner: str,
    key: PrivateKey,
    *,
    keys: Sequence[RecordKey] = (),
    hash: HashRef | None = None,
    links: Iterable[Link | tuple[Relation, str]] = (),
    data: Mapping[str, DataValue] | None = None,
    reason: str | None = None,
    now: datetime | str | None = None,
) -> SignedRecord:
    """Version 1 of a record, signed by the prefix owner ``key``."""
    parse_identifier(ident)
    pub = key.public_key()
    record = Record(
        id=ident, type=type, version=1, owner=owner, keys=list(keys), hash=hash,
        links=_links(links), data=dict(data or {}), reason=reason, updated_at=_when(now),
        signer=Signer(suite=pub.suite, key_id=pub.key_id),
    )
    return sign_record(record, key)


_UNSET: object = object()


def next_version(
    current: SignedRecord,
    key: PrivateKey,
    *,
    keys: Sequence[RecordKey] | None = None,
    hash: HashRef | None | object = _UNSET,
    links: Iterable[Link | tuple[Relation, str]] | None = None,
    data: Mapping[str, DataValue] | None = None,
    owner: str | None = None,
    reason: str | None = None,
    status: str = "active",
    now: datetime | str | None = None,
) -> SignedRecord:
    """The version after ``current``, chained to it by ``prev``; unchanged fields carry over."""
    old = current.record
    pub = key.public_key()
    record = Record(
        id=old.id, type=old.type, version=old.version + 1, status=status,  # type: ignore[arg-type]
        owner=owner or old.owner,
        keys=list(old.keys if keys is None else keys),
        hash=old.hash if hash is _UNSET else hash,  # type: ignore[arg-type]
        links=list(old.links) if links is None else _links(links),
        data=dict(old.data if data is None else data),
        prev=record_digest(current).value, reason=reason, updated_at=_when(now),
        signer=Signer(suite=pub.suite, key_id=pub.key_id),
    )
    return sign_record(record, key)


def deactivation(
    current: SignedRecord, key: PrivateKey, reason: str, *, now: datetime | str | None = None
) -> SignedRecord:
    """The final version of a record: same content, status ``deactivated``, a reason."""
    return next_version(current, key, status="deactivated", reason=reason, now=now)


def delegation(
    delegator_prefix: str,
    prefix: str,
    *,
    owner_keys: Sequence[PublicKey],
    node_key: PublicKey,
    url: str,
    log_id: str,
    node_id: str,
    key: PrivateKey,
    owner: str | None = None,
    now: datetime | str | None = None,
) -> SignedRecord:
    """A delegation of ``prefix`` to a node, signed by the delegating prefix's owner.

    Its identifier is ``<delegator_prefix>/na.<prefix>`` (Handle's "naming authority"
    records). It publishes the owner keys that sign records under ``prefix``, the
    node's tree-head key, its log id and the URL clients ask next.
    """
    return new_record(
        f"{delegator_prefix}/na.{prefix}", "delegation", owner or f"{delegator_prefix}/na.{prefix}",
        key,
        keys=[*(key_entry(k, "owner") for k in owner_keys), key_entry(node_key, "node")],
        data={"prefix": prefix, "url": url, "log_id": log_id, "node_id": node_id}, now=now,
    )


def maintenance(
    ident: str,
    device: str,
    owner: str,
    key: PrivateKey,
    *,
    performed_at: str,
    kind: str,
    description: str,
    performed_by: str | None = None,
    document: bytes | None = None,
    now: datetime | str | None = None,
) -> SignedRecord:
    """A maintenance operation on a device (repair, replacement, seal change...)."""
    data: dict[str, DataValue] = {"performed_at": performed_at, "kind": kind,
                                  "description": description}
    if performed_by is not None:
        data["performed_by"] = performed_by
    return new_record(ident, "maintenance", owner, key, links=[("performed_on", device)],
                      data=data, now=now,
                      hash=None if document is None else hash_ref(key.suite, document))


def calibration(
    ident: str,
    device: str,
    owner: str,
    key: PrivateKey,
    *,
    calibrated_at: str,
    laboratory: str,
    certificate: str,
    next_due: str | None = None,
    document: bytes | None = None,
    now: datetime | str | None = None,
) -> SignedRecord:
    """A calibration of a device by a laboratory, with its certificate number."""
    data: dict[str, DataValue] = {"calibrated_at": calibrated_at, "laboratory": laboratory,
                                  "certificate": certificate}
    if next_due is not None:
        data["next_due"] = next_due
    return new_record(ident, "calibration", owner, key, links=[("calibrates", device)],
                      data=data, now=now,
                      hash=None if document is None else hash_ref(key.suite, document))


def same_content(a: Record, b: Record) -> bool:
    """True when two versions say the same thing (ignoring version, time, signer, chain)."""
    skip = {"version", "prev", "updated_at", "signer", "reason"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)
