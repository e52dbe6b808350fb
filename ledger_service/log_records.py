"""Log records: signed statements appended to the Merkle log beside the readings.

Readings, inventories and reports have tables of their own. Everything else the ledger
must be able to prove it was told, and when, is a *log record*: one JSON document (a
verification opened, an attestation, a data listing, a grant, a revocation, a read)
whose RFC 8785 bytes are one leaf, ``H(0x00 || bytes)``. The next anchor covers it, so
an owner or a regulator proves who saw what and when with an inclusion proof, and
nobody can drop a record later without breaking the consistency of the anchored heads.

A record's id is chosen by its writer and is unique: appending the same id again
appends nothing and answers the leaf it already has (a retried request cannot log a
grant twice). Appending an id that exists with *other* bytes is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Connection, select

from carbon_protocol.canonical import canonical_json
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import AnchorRef, PublicKeyInfo, SignedTreeHead
from carbon_protocol.suites import hash_fn

from ._internal.clock import utc_text
from ._internal.db import log_records
from .errors import ConflictError, NotFoundError
from .inventories import anchor_covering
from .ledger import Ledger

__all__ = ["RecordKind", "LoggedRecord", "RecordProof", "append_record", "get_record",
           "list_records", "record_proof"]

RecordKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""What a record is (``attestation``, ``data_grant``, ...): the writer's name for it."""


class LoggedRecord(BaseModel):
    """A record as stored: its document, and the leaf that holds the document's bytes."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    kind: RecordKind
    enterprise_id: str
    """The enterprise whose data the record concerns (who may read it back)."""
    leaf_index: int
    leaf_hash: str
    created_at: str
    document: dict[str, Any]


class RecordProof(BaseModel):
    """A record's document with its leaf's inclusion proof against the first final
    anchored tree head covering it. A stranger computes ``H(0x00 || RFC8785(document))``,
    folds the path to the root, checks the head's signature with ``log_key`` and finds
    the root in the anchor contract."""

    record: LoggedRecord
    inclusion_proof: list[str]
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef


def _row(conn: Connection, record_id: str) -> Mapping[Any, Any] | None:
    return conn.execute(select(log_records).where(log_records.c.id == record_id)
                        ).mappings().first()


def _logged(row: Mapping[Any, Any]) -> LoggedRecord:
    return LoggedRecord(record_id=row["id"], kind=row["kind"],
                        enterprise_id=row["enterprise_id"], leaf_index=int(row["leaf_index"]),
                        leaf_hash=bytes(row["leaf_hash"]).hex(), created_at=row["created_at"],
                        document=json.loads(bytes(row["leaf_data"])))


def append_record(ledger: Ledger, *, kind: str, record_id: str, enterprise_id: str,
                  document: Mapping[Any, Any]) -> tuple[bool, LoggedRecord]:
    """Append ``document`` (a JSON object) as one leaf: ``(created, record)``.

    The same id with the same document again appends nothing, ``(False, record)``;
    the same id with another document raises :class:`ConflictError`.
    """
    data = canonical_json(dict(document))
    leaf = leaf_hash(hash_fn(ledger.settings.log_suite), data)

    def write(conn: Connection, index: int) -> bytes:
        conn.execute(log_records.insert().values(
            id=record_id, kind=kind, enterprise_id=enterprise_id, leaf_index=index,
            leaf_hash=leaf, leaf_data=data, created_at=utc_text()))
        return leaf

    index = ledger.append_leaf(write, unless=lambda conn: _row(conn, record_id) is not None)
    with ledger.reader.connect() as conn:
        row = _row(conn, record_id)
    assert row is not None
    if bytes(row["leaf_data"]) != data:
        raise ConflictError(f"log record {record_id} exists with another document",
                            record_id=record_id)
    return index is not None, _logged(row)


def get_record(ledger: Ledger, record_id: str) -> LoggedRecord:
    """A record by id (:class:`NotFoundError` if there is none)."""
    with ledger.reader.connect() as conn:
        row = _row(conn, record_id)
    if row is None:
        raise NotFoundError(f"no log record {record_id}", record_id=record_id)
    return _logged(row)


def list_records(ledger: Ledger, *, enterprise_id: str | None = None,
                 kinds: tuple[str, ...] = (), limit: int = 10_000) -> list[LoggedRecord]:
    """Records in log order, optionally of one enterprise and some kinds."""
    query = select(log_records).order_by(log_records.c.leaf_index).limit(limit)
    if enterprise_id is not None:
        query = query.where(log_records.c.enterprise_id == enterprise_id)
    if kinds:
        query = query.where(log_records.c.kind.in_(kinds))
    with ledger.reader.connect() as conn:
        return [_logged(r) for r in conn.execute(query).mappings()]


def record_proof(ledger: Ledger, record_id: str) -> RecordProof:
    """The record's inclusion proof against the first final anchor covering its leaf
    (:class:`NotFoundError` until an anchor does)."""
    record = get_record(ledger, record_id)
    anchor = anchor_covering(ledger, record.leaf_index, f"log record {record_id}")
    sth = ledger.tree_head(anchor.tree_size)
    assert sth is not None
    return RecordProof(
        record=record,
        inclusion_proof=[p.hex() for p in ledger.inclusion_proof(record.leaf_index,
                                                                 anchor.tree_size)],
        signed_tree_head=sth, log_key=ledger.log_key_info(), anchor=anchor)
