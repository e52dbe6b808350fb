"""The ledger: one object that owns the database, the Merkle log, the log key and the chain.

The HTTP API, the CLI and the demo all drive this class; none of them touches tables
directly. It is safe to share between threads (appends serialise on a lock and on the
database's own lock) and between processes on one database: the ``log_state`` row lock
keeps the log linear, the schema is migrated under a database-wide lock, tree heads and
the log state are insert-or-ignore, anchoring decisions are made under a lock, and a
key file is created whole or not at all, so a process that loses a race reads what the
winner made.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine, func, select

from carbon_protocol.chain_view import log_key as log_key_of
from carbon_protocol.inventory import InventoryProof, SignedInventory
from carbon_protocol.models import (
    AnchorRef,
    Domain,
    ProofBundle,
    PublicKeyInfo,
    SignedReading,
    SignedTreeHead,
    TreeHead,
)
from carbon_protocol.signing import sign_tree_head
from carbon_protocol.suites import PrivateKey
from carbon_rules.errors import RulesError
from carbon_rules.models import Methodology
from carbon_rules.registry_client import RuleRegistryClient

from . import registry
from ._internal import migrations
from ._internal.chain import ChainClient
from ._internal.clock import utc_text
from ._internal.db import (
    advisory_xact_lock,
    anchors,
    insert_or_ignore,
    inventories,
    log_records,
    make_engine,
    reader,
    readings,
    reports,
    tree_heads,
)
from ._internal.faults import crash_point
from ._internal.group_commit import GroupCommitter
from ._internal.log_store import MerkleLog
from ._internal.wal_checkpoint import WalCheckpointer
from .anchoring import Anchorer, AnchorEvent
from .errors import InvalidInputError, LedgerError, NotFoundError
from .ingest import Outcome, Verified, store_batch, verify_batch
from .inventories import InventoryReceipt, StoredInventory
from .models import (
    AnchorPublic,
    IngestItem,
    IngestResult,
    Problem,
    Receipt,
    SequenceReport,
)
from .settings import Settings

__all__ = ["Ledger", "load_or_create_key"]


def load_or_create_key(path: Path, suite: str) -> PrivateKey:
    """Load a PEM private key, or create one readable by its owner only (0600).

    Two processes starting at once on one data directory both try to create it; one
    wins and both use the winner's key.
    """
    if not path.exists():
        key = PrivateKey.generate(suite)  # type: ignore[arg-type]
        if _write_private(path, key.to_pem()):
            return key
    key = PrivateKey.from_pem(path.read_bytes())
    if key.suite != suite:
        raise LedgerError(f"key file {path} holds a {key.suite} key, settings want {suite}")
    return key


def _write_private(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data``, readable by its owner only (0600); never overwrite.

    The data goes to a private temporary file (``O_EXCL``) that is then hard-linked to
    ``path``: the link either fails because ``path`` exists or makes the name appear
    with its whole content, so another process never reads a half-written key.
    Returns ``False`` when ``path`` already existed (the caller reads that file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


class Ledger:
    """The ledger service's core, independent of HTTP."""

    def __init__(self, settings: Settings, engine: Engine, chain: ChainClient,
                 log_key: PrivateKey) -> None:
        self.settings = settings
        self.engine = engine
        self.reader = reader(engine)
        self.chain = chain
        self.log_key = log_key
        self.log = MerkleLog(settings.log_id, settings.log_suite)
        self.domain = Domain(
            chain_id=int(chain.chain_id),
            contract=str(chain.contract_address).lower(),
            log_id=settings.log_id,
        )
        self.anchorer = Anchorer(
            engine, chain, settings.log_id, every_leaves=settings.anchor_every_leaves,
            every_seconds=settings.anchor_every_seconds, confirmations=settings.confirmations,
        )
        self._append_lock = threading.Lock()
        self._rules: RuleRegistryClient | None = None
        self._methodologies: dict[str, Methodology] = {}
        self.quota_registry_address: str | None = None
        """This ledger's own ``QuotaRegistry`` (:mod:`.quotas`), if its chain has one."""
        self.data_market_address: str | None = None
        """This ledger's ``DataMarket`` (:mod:`.market`), if its chain has one."""
        self.on_change: Callable[[Literal["registry", "anchors"]], None] | None = None
        """The one listener of registry writes and anchor events (identifier
        registration, :mod:`.identifiers_sync`); it must return at once and never raise."""
        self._group_commit: GroupCommitter[Verified, Outcome] = GroupCommitter(
            self._store_verified, max_items=settings.max_batch, lock=self._append_lock)
        self._checkpointer = WalCheckpointer.for_engine(engine, self)
        migrations.upgrade(engine)
        with engine.begin() as conn:
            self.log.ensure_state(conn)

    @classmethod
    def open(cls, settings: Settings | None = None, *, chain: ChainClient | None = None,
             rules: bool = False) -> Ledger:
        """Open (or create) the ledger the settings describe, connecting to its chain.

        ``rules``: give an embedded chain a ``RuleRegistry`` with the default
        methodology (about 2.5 s more; inventories need it), a ``QuotaRegistry``
        (:mod:`.quotas`) and a ``DataMarket`` (:mod:`.market`). On a real chain they are
        the ones the deployment file names.
        """
        settings = settings or Settings()
        quota_registry: str | None = None
        data_market: str | None = None
        if chain is None:
            if settings.chain == "embedded":
                # A fixed anchoring key per data directory deploys the contract at the
                # same address (its nonce 0) on every start, so the signing domain of an
                # embedded deployment survives restarts of its in-memory chain.
                key_file = settings.data_dir / "embedded_anchor_key.hex"
                if not key_file.exists():
                    _write_private(key_file, secrets.token_hex(32).encode())  # or lost a race
                if rules:
                    from .inventories import association_key, embedded_chain_with_rules
                    from .quotas import deploy_embedded

                    chain = embedded_chain_with_rules(settings.data_dir,
                                                      key_file.read_text().strip())
                    quota_registry = deploy_embedded(
                        chain.w3, association_key(settings.data_dir), settings.data_dir)
                    from .market.contract import deploy_beside

                    data_market = deploy_beside(chain, association_key(settings.data_dir))
                else:
                    chain = ChainClient.embedded(private_key=key_file.read_text().strip())
            else:
                chain = ChainClient.connect(
                    str(settings.rpc_url), str(settings.anchor_private_key),
                    str(settings.contract_address), expected_chain_id=settings.chain_id,
                )
                if settings.deployment_file is not None:
                    from .deployment import Deployment

                    deployment = Deployment.load(settings.deployment_file)
                    chain.rule_registry_address = deployment.rule_registry_address
                    quota_registry = deployment.quota_registry_address
                    data_market = deployment.data_market_address
        key = load_or_create_key(settings.resolved_log_key_file, settings.log_suite)
        engine = make_engine(settings.resolved_database_url)
        try:
            ledger = cls(settings, engine, chain, key)
        except BaseException:
            engine.dispose()  # e.g. the database holds another log: close what was opened
            raise
        ledger.quota_registry_address = quota_registry
        ledger.data_market_address = data_market
        ledger.anchorer.send_pending()
        ledger.anchorer.verify_latest_final()
        if settings.resolver != "none":
            from .identifiers_sync import IdentifierSync

            ledger.on_change = IdentifierSync.from_settings(ledger).notify
        return ledger

    # -- registry -------------------------------------------------------------------
    def call(self, fn: object, *args: object, **kwargs: object) -> object:
        """Run a :mod:`registry` function in its own transaction."""
        with self.engine.begin() as conn:
            result = fn(conn, *args, **kwargs)  # type: ignore[operator]
        if self.on_change is not None:
            self.on_change("registry")
        return result

    # -- ingest ---------------------------------------------------------------------
    def _outcomes(self, batch: Sequence[SignedReading], now: datetime | None) -> list[Outcome]:
        if len(batch) > self.settings.max_batch:
            raise InvalidInputError(f"batch of {len(batch)} readings exceeds the limit of "
                                    f"{self.settings.max_batch}")
        with self.reader.connect() as conn:
            verified, errors = verify_batch(
                conn, batch, domain=self.domain, log_suite=self.settings.log_suite,
                prefix=self.settings.prefix, now=now,
            )
            conn.rollback()
        if errors:
            from .rejections import record_rejections

            with self.engine.begin() as conn:
                record_rejections(conn, batch, errors, now=now)
        outcomes: dict[int, Outcome] = dict(errors)
        if verified:
            stored = self._group_commit.submit(verified, now)
            outcomes.update((v.index, out) for v, out in zip(verified, stored, strict=True))
        return [outcomes[i] for i in range(len(batch))]

    def _store_verified(self, verified: Sequence[Verified], now: Hashable) -> list[Outcome]:
        """One transaction for the verified readings of one or more concurrent requests
        (see :mod:`._internal.group_commit`); an outcome per reading, in order."""
        with self.engine.begin() as conn:
            size = self.log.locked_size(conn)
            fresh, outcomes = store_batch(conn, verified, log_id=self.settings.log_id,
                                          first_index=size, now=now)  # type: ignore[arg-type]
            frontier = self.log.append(conn, size, [v.leaf_hash for v in fresh])
            crash_point("ledger.before_commit")
        self.log.commit_frontier(frontier)
        crash_point("ledger.after_commit")
        if self._checkpointer is not None:
            self._checkpointer.poke()
        return outcomes

    def ingest(
        self, batch: Sequence[SignedReading], *, now: datetime | None = None
    ) -> IngestResult:
        """Verify, store and append a batch; every reading gets a receipt or a typed error."""
        items = []
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for i, out in enumerate(self._outcomes(batch, now)):
            if isinstance(out, LedgerError):
                items.append(IngestItem(index=i, status="rejected",
                                        error=Problem(**out.diagnostics())))
                counts["rejected"] += 1
            else:
                status, receipt = out
                items.append(IngestItem.model_construct(index=i, status=status,
                                                        receipt=receipt))
                counts[status] += 1
        return IngestResult(accepted=counts["accepted"], duplicates=counts["duplicate"],
                            rejected=counts["rejected"], items=items)

    def ingest_one(
        self, signed: SignedReading, *, now: datetime | None = None
    ) -> tuple[Literal["accepted", "duplicate"], Receipt]:
        """Ingest a single reading; raises its typed :class:`LedgerError` if refused."""
        out = self._outcomes([signed], now)[0]
        if isinstance(out, LedgerError):
            raise out
        return out

    # -- tree heads and proofs ------------------------------------------------------
    def tree_size(self) -> int:
        with self.reader.connect() as conn:
            return self.log.size(conn)

    def log_key_info(self) -> PublicKeyInfo:
        pub = self.log_key.public_key()
        return PublicKeyInfo(suite=pub.suite, public_key=pub.hex(), key_id=pub.key_id)

    def _sign_head(self, size: int, root: bytes) -> SignedTreeHead:
        pub = self.log_key.public_key()
        head = TreeHead(log_id=self.settings.log_id, suite=self.settings.log_suite,
                        key_id=pub.key_id, tree_size=size, root_hash=root.hex(),
                        timestamp=utc_text())
        return sign_tree_head(head, self.log_key)

    def tree_head(self, size: int | None = None) -> SignedTreeHead | None:
        """The signed tree head at ``size`` (default: current), signing it if new.

        A head already signed is read without taking the write lock, so exporting
        proofs never waits behind an ingest batch.
        """
        with self.reader.connect() as conn:
            current = self.log.size(conn)
            size = current if size is None else size
            if size == 0:
                return None
            if size > current:
                raise NotFoundError(f"tree size {size} is beyond the log ({current})")
            row = conn.execute(select(tree_heads.c.signed)
                               .where(tree_heads.c.tree_size == size)).first()
        if row is not None:
            return SignedTreeHead.model_validate_json(row.signed)
        with self.engine.begin() as conn:
            row = conn.execute(select(tree_heads.c.signed)
                               .where(tree_heads.c.tree_size == size)).first()
            if row is None:
                sth = self._sign_head(size, self.log.root(conn, size))
                # Another process may be signing this size right now: the first insert
                # wins (the loser's waits for it, then does nothing) and every caller
                # returns the head that was stored, so one size has one signed head.
                conn.execute(insert_or_ignore(conn, tree_heads, "tree_size").values(
                    tree_size=size, root_hash=bytes.fromhex(sth.tree_head.root_hash),
                    signed=sth.model_dump_json(), created_at=sth.tree_head.timestamp))
                row = conn.execute(select(tree_heads.c.signed)
                                   .where(tree_heads.c.tree_size == size)).one()
        return SignedTreeHead.model_validate_json(row.signed)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self.reader.connect() as conn:
            return self.log.inclusion_proof(conn, index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self.reader.connect() as conn:
            return self.log.consistency_proof(conn, size1, size2)

    # -- anchoring ------------------------------------------------------------------
    def _anchor_due(self, conn: Connection, size: int, force: bool,
                    now: datetime | None) -> bool:
        return self.anchorer.due(conn, size, now) or (
            force and size > 0 and (self.anchorer.last_anchor(conn) or (0, ""))[0] < size)

    def anchor_tick(self, *, force: bool = False, now: datetime | None = None) -> list[AnchorEvent]:
        """One round of the anchoring loop: anchor the head if due, send, track."""
        with self.reader.connect() as conn:
            size = self.log.size(conn)
            due = self._anchor_due(conn, size, force, now)
            conn.rollback()
        if due:
            sth = self.tree_head(size)
            assert sth is not None
            with self.engine.begin() as conn:
                # Every service process on this database runs this loop. The decision is
                # taken again under a database-wide lock, so when two find the head due
                # at once one records the anchor and the other then sees it and does not
                # anchor the same head a second time.
                advisory_xact_lock(conn, "anchor")
                if self._anchor_due(conn, size, force, now):
                    self.anchorer.record(conn, size, bytes.fromhex(sth.tree_head.root_hash))
        self.anchorer.send_pending()
        events = self.anchorer.track()
        if events and self.on_change is not None:
            self.on_change("anchors")
        return events

    def anchors(self) -> list[AnchorPublic]:
        head = int(self.chain.block_number())
        with self.reader.connect() as conn:
            rows = conn.execute(select(anchors).order_by(anchors.c.id)).mappings().all()
        return [
            AnchorPublic(
                tree_size=r["tree_size"], root_hash=bytes(r["root_hash"]).hex(),
                tx_hash=r["tx_hash"], nonce=r["nonce"], status=r["status"],
                block_number=r["block_number"], block_hash=r["block_hash"],
                block_timestamp=r["block_timestamp"],
                confirmations=None if r["block_number"] is None
                else head - r["block_number"] + 1,
            )
            for r in rows
        ]

    # -- evidence -------------------------------------------------------------------
    def export_proof(self, reading_id: str) -> ProofBundle:
        """The proof bundle of one reading against the first final anchor covering it."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(readings).where(readings.c.id == reading_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"reading {reading_id} is not stored", id=reading_id)
            signed = SignedReading.model_validate_json(bytes(row["leaf_data"]))
            anchor = conn.execute(
                select(anchors).where(anchors.c.status == "final",
                                      anchors.c.tree_size > row["leaf_index"])
                .order_by(anchors.c.tree_size).limit(1)
            ).mappings().first()
            if anchor is None:
                raise NotFoundError(f"reading {reading_id} is not yet covered by a final "
                                    "anchor; try again after the next anchor", id=reading_id)
            size = int(anchor["tree_size"])
            proof = self.log.inclusion_proof(conn, int(row["leaf_index"]), size)
            key = registry.device_key_info(conn, signed.reading.key_id)
            # The anchored head was signed before it was anchored: read it here rather
            # than through tree_head(), which would open a second connection.
            head = conn.execute(select(tree_heads.c.signed)
                                .where(tree_heads.c.tree_size == size)).first()
        sth = (SignedTreeHead.model_validate_json(head.signed) if head is not None
               else self.tree_head(size))
        assert sth is not None
        return ProofBundle(
            reading_id=reading_id, signed_reading=signed, device_key=key,
            leaf_index=int(row["leaf_index"]), leaf_hash=bytes(row["leaf_hash"]).hex(),
            inclusion_proof=[p.hex() for p in proof], signed_tree_head=sth,
            log_key=self.log_key_info(),
            anchor=AnchorRef(
                chain_id=self.domain.chain_id, contract=self.domain.contract,
                log_key=log_key_of(self.settings.log_id).hex(), tree_size=size,
                root_hash=bytes(anchor["root_hash"]).hex(), tx_hash=anchor["tx_hash"],
                block_number=anchor["block_number"], block_hash=anchor["block_hash"],
                block_timestamp=anchor["block_timestamp"], submitter=anchor["submitter"],
            ),
        )

    def sequence_report(self, device_id: str) -> SequenceReport:
        """Received count, range and missing sequence numbers of one device."""
        with self.reader.connect() as conn:
            registry.get_device(conn, device_id)
            seqs = [int(s) for (s,) in conn.execute(
                select(readings.c.seq).where(readings.c.device_id == device_id)
                .order_by(readings.c.seq))]
        missing: list[tuple[int, int]] = []
        expected = 1
        for s in seqs:
            if s > expected:
                missing.append((expected, s - 1))
            expected = s + 1
        return SequenceReport(device=device_id, count=len(seqs),
                              first_seq=seqs[0] if seqs else None,
                              last_seq=seqs[-1] if seqs else None, missing=missing)

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash at ``index`` (a reading's, an inventory's, a report's or a
        log record's)."""
        with self.reader.connect() as conn:
            leaf = conn.execute(select(readings.c.leaf_hash)
                                .where(readings.c.leaf_index == index)).scalar_one_or_none()
            if leaf is None:
                leaf = conn.execute(select(inventories.c.leaf_hash).where(
                    inventories.c.leaf_index == index)).scalar_one_or_none()
            if leaf is None:
                leaf = conn.execute(select(reports.c.leaf_hash).where(
                    reports.c.leaf_index == index)).scalar_one_or_none()
            if leaf is None:
                leaf = conn.execute(select(log_records.c.leaf_hash).where(
                    log_records.c.leaf_index == index)).scalar_one_or_none()
        if leaf is None:
            raise NotFoundError(f"no leaf at index {index}", leaf_index=index)
        return bytes(leaf)

    def append_leaf(self, write: Callable[[Connection, int], bytes], *,
                    unless: Callable[[Connection], bool] | None = None) -> int | None:
        """Append one leaf that is not a reading (an inventory, a report, a log record):
        ``write(conn, index)`` stores its row in the appending transaction and returns
        its leaf hash. Skipped, returning ``None``, when ``unless(conn)`` holds under the
        log lock (another process appended the same object first). Returns the leaf index."""
        with self._append_lock:
            with self.engine.begin() as conn:
                size = self.log.locked_size(conn)
                if unless is not None and unless(conn):
                    return None
                frontier = self.log.append(conn, size, [write(conn, size)])
            self.log.commit_frontier(frontier)
        return size

    # -- inventories ----------------------------------------------------------------
    def rules(self) -> RuleRegistryClient:
        """A read-only client of the ``RuleRegistry`` on this ledger's chain."""
        if self._rules is None:
            from .inventories import registry_client

            self._rules = registry_client(
                self.chain, None if self.settings.chain == "embedded" else
                str(self.settings.rpc_url))
        return self._rules

    def methodology(self, methodology_id: str) -> Methodology:
        """Every published version of a methodology, read from the chain (versions are
        immutable, so they are fetched again only when their number grows)."""
        count = self.rules().version_count(methodology_id)
        cached = self._methodologies.get(methodology_id)
        if cached is None or len(cached.versions) != count:
            cached = self.rules().methodology(methodology_id)
            self._methodologies[methodology_id] = cached
        return cached

    def submit_inventory(self, signed: SignedInventory, *, now: datetime | None = None
                         ) -> tuple[bool, InventoryReceipt]:
        """Check, recompute, store and log a gateway's inventory (see
        :mod:`ledger_service.inventories`); ``(created, receipt)``."""
        from . import inventories as inv

        try:
            methodology = self.methodology(signed.inventory.rule.methodology_id)
        except RulesError as exc:
            raise inv.InventoryRuleError(exc) from exc
        return inv.submit(self, signed, methodology, now=now)

    def inventory(self, inventory_id: str) -> StoredInventory:
        """A stored inventory and its receipt."""
        from . import inventories as inv

        return inv.get(self, inventory_id)

    def inventory_proof(self, inventory_id: str, *, with_readings: bool = False
                        ) -> InventoryProof:
        """The inventory's proof against the first final anchor covering it; with
        ``with_readings``, also every reading it used and their leaf-set proof."""
        from . import inventories as inv

        return inv.proof(self, inventory_id, with_readings=with_readings)

    def reading_count(self) -> int:
        with self.reader.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(readings)).scalar_one())
