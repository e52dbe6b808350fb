"""A resolver node: records, delegation, proofs, anchoring; independent of HTTP.

A node is authoritative for the prefixes its delegation chains name (the root for its
``root_prefix`` too). It stores signed record versions for those prefixes, appends
each to its Merkle log, anchors the log's tree heads, and answers:

* a **record** for an identifier under one of its prefixes (410 with the history if
  the identifier was deactivated, 404 if it never existed);
* a **referral** when it delegated a longer prefix covering the identifier to another
  node: the delegation record (signed, proven, anchored) names that node's URL and
  keys, and the *client* asks it next. A node never fetches anything, least of all a
  URL a caller gave it;
* 404 when no prefix it knows covers the identifier; 400 when it is no identifier.

Owners sign, nodes verify: a write is accepted only if the owner key of the covering
authority signed it and it continues the stored version chain.

Answers are cached per identifier (bounded, FIFO eviction) until the identifier
changes, a delegation changes or a new anchor lands. One process writes a node's
database; readers in other processes (the CLI) open it read-only.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from carbon_protocol.errors import IdentifierError, ProtocolError
from carbon_protocol.identifiers import parse_identifier
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import AnchorRef, PublicKeyInfo, SignedTreeHead, TreeHead
from carbon_protocol.signing import sign_tree_head
from carbon_protocol.suites import PrivateKey, PublicKey

from ._internal import migrations
from ._internal.clock import utc_text
from ._internal.db import (
    anchors,
    authorities,
    links,
    log_state,
    make_engine,
    record_versions,
    records,
    tree_heads,
)
from ._internal.log import RecordLog
from .errors import (
    AnchorFailedError,
    BadSignatureError,
    ConflictError,
    DeactivatedError,
    InvalidIdentifierError,
    InvalidRequestError,
    NotAuthoritativeError,
    NotFoundError,
    ResolverError,
)
from .models import (
    Answer,
    CustodyGraph,
    Direction,
    NodeInfo,
    RecordProof,
    RecordReceipt,
    SignedRecord,
    TrustRoot,
    relation_direction,
)
from .records import record_digest, signed_record_bytes, verify_record_signature
from .settings import ResolverSettings

__all__ = ["Resolver", "Authority", "load_or_create_key", "covers", "ancestors"]

log = logging.getLogger(__name__)

_CHUNK = 900

# The hot path's statements, built once (building one costs more than running it).
_ROW = select(records.c.id, records.c.version, records.c.status, records.c.leaf_index,
              records.c.signed,
              select(log_state.c.tree_size).where(log_state.c.id == 1).scalar_subquery()
              .label("visible")).where(records.c.id == bindparam("id"))
"""The record and the tree size visible with it, in one statement (one snapshot)."""
_HISTORY = select(record_versions.c.signed).where(
    record_versions.c.id == bindparam("id"), record_versions.c.version < bindparam("version")
).order_by(record_versions.c.version)


def covers(prefix: str, other: str) -> bool:
    """True when ``other`` is ``prefix`` or lies under it (``86.1`` covers ``86.1.5``)."""
    return other == prefix or other.startswith(prefix + ".")


def ancestors(prefix: str) -> list[str]:
    """``prefix`` and every shorter prefix above it, longest first."""
    parts = prefix.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def load_or_create_key(path: Path, suite: str) -> PrivateKey:
    """Load a PEM private key, or create one readable by its owner only (0600)."""
    if path.exists():
        key = PrivateKey.from_pem(path.read_bytes())
        if key.suite != suite:
            raise ResolverError(f"key file {path} holds a {key.suite} key, settings want {suite}")
        return key
    key = PrivateKey.generate(suite)  # type: ignore[arg-type]
    _write_private(path, key.to_pem())
    return key


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_info(key: PublicKey) -> PublicKeyInfo:
    return PublicKeyInfo(suite=key.suite, public_key=key.hex(), key_id=key.key_id)


@dataclass(frozen=True)
class Authority:
    """A prefix a node (or a verifier) trusts, with the keys that speak for it."""

    prefix: str
    owner_keys: Mapping[str, PublicKey]
    """Keys (by key id) whose signatures make records under ``prefix``."""
    node_key: PublicKey
    """The key of the node that hosts the prefix (signs its log's tree heads)."""
    log_id: str
    chain: tuple[SignedRecord, ...]
    """Delegation records from the root to this prefix (empty for the root prefix)."""


def authority_from_delegation(
    parent: Authority, signed: SignedRecord, *, root_prefix: str
) -> Authority:
    """Check that ``parent`` delegated ``signed``'s prefix and return the new authority.

    Raises :class:`BadSignatureError` (not signed by the parent's owner key) or
    :class:`InvalidRequestError` (not a delegation, not active, not under the parent).
    """
    record = signed.record
    if record.type != "delegation":
        raise InvalidRequestError(f"{record.id} is a {record.type} record, not a delegation")
    if record.status != "active":
        raise InvalidRequestError(f"delegation {record.id} is deactivated: {record.reason}")
    if record.prefix != parent.prefix:
        raise InvalidRequestError(
            f"delegation {record.id} is not made by the authority for {parent.prefix}")
    prefix = str(record.data["prefix"])
    if parent.prefix == root_prefix:
        if covers(root_prefix, prefix):
            raise InvalidRequestError(f"the root cannot delegate its own prefix {prefix}")
    elif prefix == parent.prefix or not covers(parent.prefix, prefix):
        raise InvalidRequestError(
            f"{parent.prefix} can only delegate prefixes under it, not {prefix}")
    key = parent.owner_keys.get(record.signer.key_id)
    if key is None:
        raise BadSignatureError(
            f"delegation {record.id} is signed by key {record.signer.key_id}, which is not an "
            f"owner key of {parent.prefix}", expected=sorted(parent.owner_keys),
            found=record.signer.key_id)
    try:
        verify_record_signature(signed, key)
    except ProtocolError as exc:
        raise BadSignatureError(f"delegation {record.id}: {exc}") from exc
    owners: dict[str, PublicKey] = {}
    node_key: PublicKey | None = None
    for entry in record.keys:
        pub = PublicKey.from_hex(entry.suite, entry.public_key)
        if pub.key_id != entry.key_id:
            raise InvalidRequestError(f"delegation {record.id} lists key {entry.key_id} whose "
                                      f"id is really {pub.key_id}")
        if entry.role == "owner" and entry.revoked_at is None:
            owners[pub.key_id] = pub
        elif entry.role == "node":
            node_key = pub
    if not owners or node_key is None:
        raise InvalidRequestError(f"delegation {record.id} has no current owner or node key")
    return Authority(prefix, owners, node_key, str(record.data["log_id"]),
                     (*parent.chain, signed))


@dataclass
class _Context:
    """The tree head answers are proven against: size, signed head, anchor (if any)."""

    size: int
    sth: SignedTreeHead
    anchor: AnchorRef | None


_Cached = tuple[int, bytes, Answer]


class Resolver:
    """One resolver node over its database, log key and (optional) chain."""

    def __init__(self, settings: ResolverSettings, engine: Engine, node_key: PrivateKey,
                 chain: Any = None) -> None:
        """Open a node; ``chain`` is a ledger :class:`ChainClient` or ``None`` (no anchors)."""
        from ._internal.anchoring import ChainAnchorer

        self.settings = settings
        self.engine = engine
        self.reader = engine.execution_options(read_only=True)
        self.node_key = node_key
        self.node_id = settings.node_id
        self.root_prefix = settings.root_prefix
        self.log = RecordLog(settings.log_id, settings.log_suite)
        self.anchorer = None if chain is None else ChainAnchorer(chain, settings.log_id)
        self.trust_key = settings.trust_key
        self._write_lock = threading.Lock()
        self._anchor_lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._generation = 0
        """Bumped on every change; an answer computed across a change is not cached."""
        self._authorities: dict[str, Authority] = {}
        self._delegated: dict[str, SignedRecord] = {}
        self._anchored: _Context | None = None
        self._current: _Context | None = None
        self._last_anchor_at = time.monotonic()
        migrations.upgrade(engine)
        with engine.begin() as conn:
            self.log.ensure_state(conn)
        self._load_state()

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, settings: ResolverSettings | None = None, *, chain: Any = None,
             engine: Engine | None = None) -> Resolver:
        """Open (or create) the node the settings describe.

        ``chain``: a ledger ``ChainClient`` to anchor with (e.g. the ledger's own, when
        mounted in-process); without it the settings decide (embedded, rpc or none).
        """
        settings = settings or ResolverSettings()
        if chain is None and settings.chain != "none":
            from ledger_service._internal.chain import ChainClient

            if settings.chain == "embedded":
                key_file = settings.data_dir / "embedded_anchor_key.hex"
                if not key_file.exists():
                    _write_private(key_file, secrets.token_hex(32).encode())
                chain = ChainClient.embedded(private_key=key_file.read_text().strip())
            else:
                chain = ChainClient.connect(
                    str(settings.rpc_url), str(settings.anchor_private_key),
                    str(settings.contract_address), expected_chain_id=settings.chain_id)
        engine = engine or make_engine(settings.resolved_database_url)
        key = load_or_create_key(settings.resolved_node_key_file, settings.log_suite)
        node = cls(settings, engine, key, chain)
        node.check_anchors()
        return node

    def _root_authority(self) -> Authority:
        pub = self.node_key.public_key()
        return Authority(self.root_prefix, {self.trust_key.key_id: self.trust_key}, pub,
                         self.settings.log_id, ())

    def _load_state(self) -> None:
        auths: dict[str, Authority] = {}
        if self.settings.root:
            auths[self.root_prefix] = self._root_authority()
        with self.reader.connect() as conn:
            for row in conn.execute(select(authorities)):
                chain = [SignedRecord.model_validate_json(x) for x in json.loads(row.chain)]
                auths[row.prefix] = self._verify_chain(chain)
            delegated = {}
            for row in conn.execute(select(records.c.signed).where(
                    records.c.type == "delegation", records.c.status == "active")):
                signed = SignedRecord.model_validate_json(bytes(row.signed))
                delegated[str(signed.record.data["prefix"])] = signed
            anchored = conn.execute(select(anchors.c.ref).where(anchors.c.status == "anchored")
                                    .order_by(anchors.c.tree_size.desc()).limit(1)).first()
            context = None
            if anchored is not None:
                ref = AnchorRef.model_validate_json(anchored.ref)
                sth_row = conn.execute(select(tree_heads.c.signed).where(
                    tree_heads.c.tree_size == ref.tree_size)).first()
                if sth_row is not None:
                    context = _Context(ref.tree_size,
                                       SignedTreeHead.model_validate_json(sth_row.signed), ref)
            conn.rollback()
        self._authorities = auths
        self._delegated = delegated
        self._anchored = context
        self._forget()

    # -- authority ------------------------------------------------------------------
    def _verify_chain(self, chain: Sequence[SignedRecord]) -> Authority:
        auth = Authority(self.root_prefix, {self.trust_key.key_id: self.trust_key},
                         self.trust_key, "", ())
        for signed in chain:
            auth = authority_from_delegation(auth, signed, root_prefix=self.root_prefix)
        return auth

    def install_authority(self, chain: Sequence[SignedRecord]) -> str:
        """Become authoritative for the prefix the delegation ``chain`` (root first) ends in.

        The chain must start at the trust root, each delegation signed by the owner of
        the prefix above it, and the last must name this node's key and log id. Returns
        the prefix. Re-installing a prefix replaces its chain (e.g. after new owner keys).
        """
        if not chain:
            raise InvalidRequestError("an authority needs at least one delegation record")
        auth = self._verify_chain(chain)
        mine = self.node_key.public_key()
        if auth.node_key != mine:
            raise InvalidRequestError(
                f"delegation of {auth.prefix} names node key {auth.node_key.key_id}, but this "
                f"node's key is {mine.key_id}")
        if auth.log_id != self.settings.log_id:
            raise InvalidRequestError(
                f"delegation of {auth.prefix} names log {auth.log_id}, but this node keeps "
                f"{self.settings.log_id}")
        body = json.dumps([signed_record_bytes(s).decode() for s in chain])
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(delete(authorities).where(authorities.c.prefix == auth.prefix))
            conn.execute(insert(authorities).values(prefix=auth.prefix, chain=body,
                                                    installed_at=utc_text()))
        self._authorities[auth.prefix] = auth
        self._forget()
        return auth.prefix

    def bootstrap(self, owner_key: PrivateKey, prefixes: Iterable[str], *, url: str,
                  now: datetime | str | None = None) -> list[str]:
        """On the root: delegate ``prefixes`` to this very node and install them.

        ``owner_key`` must be the trust root's private key; it signs the delegation
        records (``<root_prefix>/na.<prefix>``) and becomes each prefix's owner key. The
        embedded single-node deployment uses this; a federation delegates to other
        nodes instead.
        """
        from .records import delegation

        if not self.settings.root:
            raise InvalidRequestError("only the root node can bootstrap delegations")
        if owner_key.public_key() != self.trust_key:
            raise BadSignatureError("bootstrap needs the trust root's own key")
        installed = []
        for prefix in prefixes:
            ident = f"{self.root_prefix}/na.{prefix}"
            current = self.current_records([ident]).get(ident)
            if current is not None and current.record.status == "active":
                signed = current
            else:
                signed = delegation(
                    self.root_prefix, prefix, owner_keys=[owner_key.public_key()],
                    node_key=self.node_key.public_key(), url=url, log_id=self.settings.log_id,
                    node_id=self.node_id, key=owner_key, now=now)
                self.submit([signed])
            installed.append(self.install_authority([signed]))
        return installed

    def authority_for(self, prefix: str) -> Authority | None:
        """The longest own authority covering ``prefix``, unless a longer delegation to
        another node covers it."""
        for candidate in ancestors(prefix):
            auth = self._authorities.get(candidate)
            if auth is not None:
                return auth
            if candidate in self._delegated:
                return None
        return None

    def _route(self, prefix: str) -> Authority | SignedRecord | None:
        for candidate in ancestors(prefix):
            auth = self._authorities.get(candidate)
            if auth is not None:
                return auth
            delegation = self._delegated.get(candidate)
            if delegation is not None:
                return delegation
        return None

    def is_local(self, ident: str) -> bool:
        """True when this node is authoritative for ``ident``'s prefix."""
        return self.authority_for(ident.partition("/")[0]) is not None

    def trust_root(self, url: str | None = None) -> TrustRoot:
        """What a client pins for this root node (only the root has one)."""
        if not self.settings.root:
            raise InvalidRequestError("only the root node defines the trust root")
        return TrustRoot(root_prefix=self.root_prefix, owner_keys=[_key_info(self.trust_key)],
                         log_id=self.settings.log_id,
                         log_key=_key_info(self.node_key.public_key()), url=url)

    def node_info(self) -> NodeInfo:
        """What this node says about itself."""
        chain_id = contract = None
        if self.anchorer is not None:
            chain_id, contract = self.anchorer.domain
        return NodeInfo(
            node_id=self.node_id, root=self.settings.root, root_prefix=self.root_prefix,
            trust_root=_key_info(self.trust_key), log_id=self.settings.log_id,
            log_key=_key_info(self.node_key.public_key()),
            prefixes=sorted(self._authorities), delegated=sorted(self._delegated),
            tree_size=self.tree_size(), chain_id=chain_id, contract=contract)

    # -- writes ---------------------------------------------------------------------
    def _check_signed(self, signed: SignedRecord) -> Authority:
        record = signed.record
        auth = self.authority_for(record.prefix)
        if auth is None:
            raise NotAuthoritativeError(
                f"node {self.node_id} is not authoritative for prefix {record.prefix}",
                id=record.id)
        key = auth.owner_keys.get(record.signer.key_id)
        if key is None:
            raise BadSignatureError(
                f"record {record.id} is signed by key {record.signer.key_id}, which is not an "
                f"owner key of prefix {auth.prefix}", id=record.id)
        try:
            verify_record_signature(signed, key)
        except ProtocolError as exc:
            raise BadSignatureError(f"record {record.id} version {record.version}: {exc}",
                                    id=record.id) from exc
        if record.type == "delegation":
            if record.prefix != auth.prefix:
                raise InvalidRequestError(f"delegation {record.id} must be made under "
                                          f"{auth.prefix}, the authority's own prefix")
            if record.status == "active":
                authority_from_delegation(auth, signed, root_prefix=self.root_prefix)
        return auth

    def submit(self, batch: Sequence[SignedRecord]) -> list[RecordReceipt]:
        """Store record versions (in order, atomically) and append them to the log.

        Each must be signed by an owner key of the authority covering its prefix and
        continue its identifier's chain: version 1 for a new identifier, else the next
        version whose ``prev`` is the stored version's digest. Re-submitting a version
        stored earlier (byte for byte) is a no-op that returns its receipt, so a batch can
        be resent after a lost answer. Raises the first problem found
        (nothing is stored then): :class:`NotAuthoritativeError`,
        :class:`BadSignatureError`, :class:`ConflictError`, :class:`DeactivatedError`.
        """
        if not batch:
            return []
        for signed in batch:
            self._check_signed(signed)
        prepared = []
        for signed in batch:
            data = signed_record_bytes(signed)
            prepared.append((signed, data, record_digest(signed, data)))
        ids = sorted({s.record.id for s in batch})
        receipts: list[RecordReceipt] = []
        with self._write_lock:
            with self.engine.begin() as conn:
                size = self.log.locked_size(conn)
                state: dict[str, tuple[int, bytes, str, str, int, bytes]] = {}
                for start in range(0, len(ids), _CHUNK):
                    for row in conn.execute(select(
                            records.c.id, records.c.version, records.c.digest, records.c.status,
                            records.c.type, records.c.leaf_index, records.c.signed)
                            .where(records.c.id.in_(ids[start:start + _CHUNK]))):
                        state[row.id] = (row.version, bytes(row.digest), row.status, row.type,
                                         row.leaf_index, bytes(row.signed))
                fresh: list[tuple[SignedRecord, bytes, Any, int]] = []
                for signed, data, dig in prepared:
                    r = signed.record
                    cur = state.get(r.id)
                    if cur is not None and cur[5] == data:
                        receipts.append(RecordReceipt(id=r.id, version=r.version, status=r.status,
                                                      leaf_index=cur[4], digest=dig))
                        continue
                    try:
                        self._check_chain(r.id, r.version, r.prev, r.type, cur)
                    except (ConflictError, DeactivatedError):
                        stored = conn.execute(select(record_versions.c.leaf_index).where(
                            record_versions.c.id == r.id, record_versions.c.version == r.version,
                            record_versions.c.signed == data)).first()
                        if stored is None:
                            raise
                        # A retry of a version stored earlier (e.g. a whole batch resent).
                        receipts.append(RecordReceipt(id=r.id, version=r.version,
                                                      status=r.status,
                                                      leaf_index=stored.leaf_index, digest=dig))
                        continue
                    index = size + len(fresh)
                    fresh.append((signed, data, dig, index))
                    state[r.id] = (r.version, bytes.fromhex(dig.value), r.status, r.type, index,
                                   data)
                    receipts.append(RecordReceipt(id=r.id, version=r.version, status=r.status,
                                                  leaf_index=index, digest=dig))
                if not fresh:
                    return receipts
                frontier = self.log.append(
                    conn, size, [leaf_hash(self.log.h, data) for _, data, _, _ in fresh])
                self._store(conn, fresh)
            self.log.commit_frontier(frontier)
            self._current = None
        self._forget(signed.record.id for signed, _, _, _ in fresh)
        if any(signed.record.type == "delegation" for signed, _, _, _ in fresh):
            self._refresh_delegations()
        return receipts

    @staticmethod
    def _check_chain(ident: str, version: int, prev: str | None, type_: str,
                     cur: tuple[int, bytes, str, str, int, bytes] | None) -> None:
        if cur is None:
            if version != 1:
                raise ConflictError(f"{ident} is not registered; its first version must be 1, "
                                    f"got {version}", id=ident)
            return
        stored_version, stored_digest, status, stored_type, _, _ = cur
        if status == "deactivated":
            raise DeactivatedError(f"{ident} is deactivated; it cannot change any more", id=ident)
        if type_ != stored_type:
            raise ConflictError(f"{ident} is a {stored_type}; a change cannot make it a {type_}",
                                id=ident)
        if version != stored_version + 1:
            raise ConflictError(f"{ident} is at version {stored_version}; expected version "
                                f"{stored_version + 1}, got {version}", id=ident,
                                expected=stored_version + 1, found=version)
        if prev != stored_digest.hex():
            raise ConflictError(f"{ident} version {version} does not follow the stored version: "
                                f"expected prev {stored_digest.hex()}, got {prev}", id=ident,
                                expected=stored_digest.hex(), found=prev)

    def _store(self, conn: Connection, fresh: Sequence[tuple[SignedRecord, bytes, Any, int]]
               ) -> None:
        latest: dict[str, tuple[SignedRecord, bytes, Any, int]] = {}
        versions = []
        for item in fresh:
            signed, data, _, index = item
            latest[signed.record.id] = item
            versions.append({"id": signed.record.id, "version": signed.record.version,
                             "leaf_index": index, "signed": data})
        conn.execute(insert(record_versions), versions)
        ids = list(latest)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            conn.execute(delete(records).where(records.c.id.in_(chunk)))
            conn.execute(delete(links).where(links.c.source.in_(chunk)))
        rows: list[dict[str, Any]] = []
        edges: list[dict[str, Any]] = []
        for signed, data, dig, index in latest.values():
            r = signed.record
            rows.append({"id": r.id, "type": r.type, "status": r.status, "version": r.version,
                         "owner": r.owner, "leaf_index": index, "signed": data,
                         "digest": bytes.fromhex(dig.value), "updated_at": r.updated_at})
            edges.extend({"source": r.id, "rel": link.rel, "target": link.target,
                          "dir": relation_direction(link.rel)} for link in r.links)
        conn.execute(insert(records), rows)
        if edges:
            conn.execute(insert(links), edges)

    def _refresh_delegations(self) -> None:
        delegated = {}
        with self.reader.connect() as conn:
            for row in conn.execute(select(records.c.signed).where(
                    records.c.type == "delegation", records.c.status == "active")):
                signed = SignedRecord.model_validate_json(bytes(row.signed))
                delegated[str(signed.record.data["prefix"])] = signed
            conn.rollback()
        self._delegated = delegated
        self._forget()

    def current_records(self, ids: Sequence[str]) -> dict[str, SignedRecord]:
        """The current signed version of each identifier held here (absent ones omitted)."""
        out: dict[str, SignedRecord] = {}
        wanted = list(dict.fromkeys(ids))
        with self.reader.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                for row in conn.execute(select(records.c.id, records.c.signed).where(
                        records.c.id.in_(wanted[start:start + _CHUNK]))):
                    out[row.id] = SignedRecord.model_validate_json(bytes(row.signed))
            conn.rollback()
        return out

    # -- tree heads and anchors -----------------------------------------------------
    def tree_size(self) -> int:
        """The number of record versions in this node's log."""
        with self.reader.connect() as conn:
            size = self.log.size(conn)
            conn.rollback()
        return size

    def tree_head(self, size: int | None = None) -> SignedTreeHead | None:
        """The signed tree head at ``size`` (default: current), signing it if new."""
        with self.reader.connect() as conn:
            current = self.log.size(conn)
            size = current if size is None else size
            if size == 0:
                conn.rollback()
                return None
            if not 0 < size <= current:
                raise InvalidRequestError(f"tree size {size} is outside the log (1..{current})")
            row = conn.execute(select(tree_heads.c.signed)
                               .where(tree_heads.c.tree_size == size)).first()
            conn.rollback()
        if row is not None:
            return SignedTreeHead.model_validate_json(row.signed)
        with self.engine.begin() as conn:
            row = conn.execute(select(tree_heads.c.signed)
                               .where(tree_heads.c.tree_size == size)).first()
            if row is not None:
                return SignedTreeHead.model_validate_json(row.signed)
            pub = self.node_key.public_key()
            head = TreeHead(log_id=self.settings.log_id, suite=self.settings.log_suite,
                            key_id=pub.key_id, tree_size=size,
                            root_hash=self.log.root(conn, size).hex(), timestamp=utc_text())
            sth = sign_tree_head(head, self.node_key)
            conn.execute(insert(tree_heads).values(tree_size=size, signed=sth.model_dump_json()))
            return sth

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of this node's log."""
        with self.reader.connect() as conn:
            proof = self.log.consistency_proof(conn, size1, size2)
            conn.rollback()
        return proof

    def latest_anchor(self) -> AnchorRef | None:
        """The newest anchor of this node's log that is still on chain."""
        return None if self._anchored is None else self._anchored.anchor

    def anchor_tick(self, *, force: bool = False) -> AnchorRef | None:
        """Anchor the current tree head if due (``anchor_every_records`` new versions or
        ``anchor_every_seconds`` since the last anchor), or now with ``force``.

        Returns the new anchor, or ``None`` when nothing was due or there is no chain.
        Raises :class:`AnchorFailedError` if the chain refused (try again later).
        """
        if self.anchorer is None:
            return None
        with self._anchor_lock:
            size = self.tree_size()
            last = 0 if self._anchored is None else self._anchored.size
            if size <= last:
                return None
            waited = time.monotonic() - self._last_anchor_at
            if not (force or size - last >= self.settings.anchor_every_records
                    or waited >= self.settings.anchor_every_seconds):
                return None
            sth = self.tree_head(size)
            assert sth is not None
            ref = self.anchorer.anchor(size, bytes.fromhex(sth.tree_head.root_hash))
            with self.engine.begin() as conn:
                conn.execute(delete(anchors).where(anchors.c.tree_size == size))
                conn.execute(insert(anchors).values(tree_size=size, ref=ref.model_dump_json(),
                                                    status="anchored", created_at=utc_text()))
            self._anchored = _Context(size, sth, ref)
            self._last_anchor_at = time.monotonic()
            self._forget()
            return ref

    def check_anchors(self) -> bool:
        """Check the newest anchor is still on chain; if not, mark every vanished anchor
        so no answer cites it (the next round anchors the current head anew)."""
        if self.anchorer is None or self._anchored is None:
            return True
        with self.reader.connect() as conn:
            rows = conn.execute(select(anchors.c.tree_size, anchors.c.ref)
                                .where(anchors.c.status == "anchored")
                                .order_by(anchors.c.tree_size.desc())).all()
            conn.rollback()
        vanished = []
        for row in rows:
            try:
                held = self.anchorer.holds(AnchorRef.model_validate_json(row.ref))
            except AnchorFailedError as exc:
                log.warning("cannot check anchors: %s", exc)
                return False
            if held:
                break
            vanished.append(int(row.tree_size))
        if not vanished:
            return True
        with self.engine.begin() as conn:
            conn.execute(update(anchors).where(anchors.c.tree_size.in_(vanished))
                         .values(status="vanished"))
        log.warning("%d resolver anchors are no longer on chain; will re-anchor", len(vanished))
        self._load_state()
        self._last_anchor_at = 0.0
        return False

    # -- answers --------------------------------------------------------------------
    def _context(self, max_leaf: int, visible: int) -> _Context:
        """The tree head to prove leaves up to ``max_leaf`` against: the newest anchored
        one if it covers them, else the newest signed one. ``visible`` is the tree size
        the caller's read transaction sees; a head beyond it (committed by another
        thread after that snapshot began) has nodes the snapshot cannot read."""
        anchored = self._anchored
        if anchored is not None and max_leaf < anchored.size <= visible:
            return anchored
        current = self._current
        if current is not None and max_leaf < current.size <= visible:
            return current
        sth = self.tree_head(visible)
        if sth is None or sth.tree_head.tree_size <= max_leaf:
            raise ResolverError(f"leaf {max_leaf} is not in the log of size {visible}")
        context = _Context(sth.tree_head.tree_size, sth, None)
        if current is None or context.size >= current.size:
            self._current = context
        return context

    def _proofs(self, conn: Connection, indices: Sequence[int], signed: Sequence[bytes],
                visible: int | None = None) -> list[RecordProof]:
        """Inclusion proofs for leaves read in ``conn``'s transaction (its snapshot)."""
        context = self._context(max(indices),
                                self.log.size(conn) if visible is None else visible)
        paths = self.log.inclusion_proofs(conn, indices, context.size)
        log_key = _key_info(self.node_key.public_key())
        return [
            RecordProof(log_id=self.settings.log_id, log_key=log_key, leaf_index=index,
                        tree_size=context.size, leaf_hash=leaf_hash(self.log.h, data).hex(),
                        inclusion_proof=[p.hex() for p in path],
                        signed_tree_head=context.sth, anchor=context.anchor)
            for index, data, path in zip(indices, signed, paths, strict=True)
        ]

    def _record_answer(self, conn: Connection, query: str, kind: Literal["record", "referral"],
                       row: Any, auth_chain: Sequence[SignedRecord]) -> Answer:
        data = bytes(row.signed)
        history: list[SignedRecord] = []
        if row.version > 1:
            history = [SignedRecord.model_validate_json(bytes(h.signed)) for h in conn.execute(
                _HISTORY, {"id": row.id, "version": row.version})]
        proof = self._proofs(conn, [int(row.leaf_index)], [data], int(row.visible))[0]
        return Answer(kind=kind, query=query, node_id=self.node_id,
                      record=SignedRecord.model_validate_json(data), history=history,
                      proof=proof, delegations=list(auth_chain))

    def _answer(self, ident: str) -> _Cached:
        try:
            parsed = parse_identifier(ident)
        except IdentifierError as exc:
            raise InvalidIdentifierError(str(exc)) from None
        route = self._route(parsed.prefix)
        if route is None:
            raise NotFoundError(f"no prefix known to node {self.node_id} covers {ident}; "
                                "resolve it from the root", id=ident)
        if isinstance(route, Authority):
            target, kind, chain = ident, "record", route.chain
        else:
            target, kind = route.record.id, "referral"
            auth = self.authority_for(route.record.prefix)
            chain = () if auth is None else auth.chain
        with self.reader.connect() as conn:
            row = conn.execute(_ROW, {"id": target}).first()
            if row is None:
                conn.rollback()
                raise NotFoundError(f"{ident} is not registered", id=ident)
            answer = self._record_answer(conn, ident, kind, row, chain)  # type: ignore[arg-type]
            conn.rollback()
        if kind == "record" and answer.record.record.status == "deactivated":
            problem = {"code": "deactivated",
                       "message": f"{ident} was deactivated: {answer.record.record.reason}",
                       "answer": answer.model_dump(mode="json")}
            return 410, json.dumps(problem, separators=(",", ":")).encode(), answer
        return 200, answer.model_dump_json().encode(), answer

    def _cached(self, ident: str) -> _Cached:
        hit = self._cache.get(ident)
        if hit is not None:
            return hit
        generation = self._generation
        result = self._answer(ident)
        size = self.settings.cache_size
        if size and generation == self._generation:
            if len(self._cache) >= size:
                try:
                    del self._cache[next(iter(self._cache))]
                except (StopIteration, KeyError, RuntimeError):
                    pass
            self._cache[ident] = result
            if generation != self._generation:  # a change landed meanwhile: drop it
                self._cache.pop(ident, None)
        return result

    def resolve(self, ident: str, *, cached: bool = True) -> Answer:
        """Resolve ``ident`` to a proven record or a referral.

        Raises :class:`InvalidIdentifierError` (not an identifier),
        :class:`NotFoundError` (nothing here and no delegation covers it) or
        :class:`DeactivatedError` whose ``answer`` holds the record and its history.
        """
        status, _, answer = self._cached(ident) if cached else self._answer(ident)
        if status == 410:
            raise DeactivatedError(f"{ident} was deactivated: {answer.record.record.reason}",
                                   answer=answer)
        return answer

    def resolve_json(self, ident: str) -> tuple[int, bytes]:
        """HTTP status and body of ``GET /resolve/{ident}`` (200 or 410), cached bytes."""
        status, body, _ = self._cached(ident)
        return status, body

    def _forget(self, ids: Iterable[str] | None = None) -> None:
        """Invalidate cached answers (all of them when ``ids`` is ``None``)."""
        self._generation += 1
        if ids is None:
            self._cache.clear()
        else:
            for ident in ids:
                self._cache.pop(ident, None)

    def cached_json(self, ident: str) -> tuple[int, bytes] | None:
        """The cached HTTP status and body for ``ident``, if any (never touches the DB)."""
        hit = self._cache.get(ident)
        return None if hit is None else (hit[0], hit[1])

    def invalidate(self) -> None:
        """Drop every cached answer (e.g. for an uncached benchmark)."""
        self._forget()

    def custody(self, ident: str, direction: Direction = "down", depth: int = 3, *,
                proofs: bool = False) -> CustodyGraph | Answer:
        """Walk the custody graph from ``ident`` (see :func:`identifier_resolver.custody.walk`);
        a referral :class:`Answer` when another node is authoritative for it."""
        from .custody import walk

        try:
            parsed = parse_identifier(ident)
        except IdentifierError as exc:
            raise InvalidIdentifierError(str(exc)) from None
        if not isinstance(self._route(parsed.prefix), Authority):
            return self.resolve(ident)
        return walk(self, ident, direction, depth, proofs=proofs)
