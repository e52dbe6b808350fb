"""Automatic identifier registration: the ledger's registry and log, kept in a resolver.

The ledger calls :meth:`IdentifierSync.notify` (its one ``on_change`` listener) after
every registry write and every anchoring round that produced events. ``notify`` only
sets a flag and wakes a background thread, so ingestion never waits for the resolver
and a resolver that is down never costs a reading: readings live in the ledger, and the
resolver's records are derived from them.

Each round of the thread reads two high-water marks from the ledger's own tables (row
counts and newest creation times of the registry; count and newest tree size of final
anchors) and runs :func:`identifier_resolver.bridge.sync_ledger` for the parts whose
mark moved since the last *successful* round: one batch per anchor, never per reading.
The bridge is idempotent (records that already match are left alone, reading windows
already registered are skipped), so a round that failed half-way, a restart, or
several service processes syncing the same ledger all converge. A failed round is
retried with exponential backoff (``interval * 2**failures``, capped at ``max_wait``);
the marks are also polled every ``interval`` seconds, so changes made by another
process on the same database are registered without a notification.

Targets (``LEDGER_RESOLVER``): ``embedded``, a root resolver node in this process
under ``<data_dir>/resolver`` that delegates the ledger's prefix to itself and anchors
its own log through a ``CarbonAnchor`` of its own (on the embedded chain, beside the
ledger's; on an RPC chain through ``RESOLVER_CHAIN=rpc`` settings, else unanchored);
``remote``, the node authoritative for the prefix, over HTTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from carbon_protocol.suites import PrivateKey
from identifier_resolver.bridge import BridgeReport, RecordSink, sync_ledger

from ._internal import db as tables
from .ledger import Ledger, _write_private, load_or_create_key

__all__ = ["IdentifierSync", "SyncTarget", "Marks", "read_marks", "embedded_target",
           "remote_target"]

log = logging.getLogger(__name__)


@dataclass
class SyncTarget:
    """Where records go and who signs them."""

    sink: RecordSink
    keyring: Mapping[str, PrivateKey]
    """Prefix → owner key; records under a prefix without one are skipped."""
    after: Callable[[], object] | None = None
    """Run after every successful round (the embedded node's anchoring round)."""
    node: Any = None
    """The in-process :class:`~identifier_resolver.resolver.Resolver`, if embedded (to
    mount its API or read it directly)."""


@dataclass(frozen=True)
class Marks:
    """High-water marks of the ledger's state; a part is synced when its mark moves."""

    registry: tuple[object, ...]
    anchors: tuple[object, ...]


def read_marks(ledger: Ledger) -> Marks:
    """Read both marks in one short read transaction (a few aggregate queries)."""
    registry: list[object] = []
    with ledger.reader.connect() as conn:
        for table in (tables.enterprises, tables.sites, tables.gateways, tables.devices):
            registry.extend(conn.execute(select(func.count(), func.max(table.c.created_at))
                                         .select_from(table)).one())
        keys = tables.device_keys
        registry.extend(conn.execute(select(func.count(), func.count(keys.c.revoked_at))
                                     .select_from(keys)).one())
        final = tables.anchors.c.status == "final"
        anchors = tuple(conn.execute(select(func.count(), func.max(tables.anchors.c.tree_size))
                                     .where(final)).one())
        conn.rollback()
    return Marks(tuple(registry), anchors)


class IdentifierSync:
    """Registers what ``ledger`` holds in a resolver, in the background; see the module."""

    def __init__(self, ledger: Ledger, open_target: Callable[[], SyncTarget], *,
                 interval: float = 5.0, max_wait: float = 60.0) -> None:
        """``open_target`` is called in the background thread (and again after a round
        failed), so opening an embedded node or reading key files never delays the
        ledger's start."""
        if interval <= 0 or max_wait < interval:
            raise ValueError("need 0 < interval <= max_wait")
        self.ledger = ledger
        self.open_target = open_target
        self.interval = interval
        self.max_wait = max_wait
        self.target: SyncTarget | None = None
        self._synced: Marks | None = None
        self._round_lock = threading.Lock()
        self._state = threading.Condition()
        self._notified = 0
        """Notifications received; ``_done`` is the count the last good round covered."""
        self._done = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: BaseException | None = None
        self.last_report: BridgeReport | None = None

    @classmethod
    def from_settings(cls, ledger: Ledger) -> IdentifierSync:
        """The sync the ledger's ``LEDGER_RESOLVER*`` settings describe."""
        s = ledger.settings
        if s.resolver == "embedded":
            return cls(ledger, lambda: embedded_target(ledger), interval=s.resolver_sync_seconds)
        if s.resolver == "remote":
            return cls(ledger, lambda: remote_target(ledger), interval=s.resolver_sync_seconds)
        raise ValueError("LEDGER_RESOLVER is none: nothing to sync to")

    # -- the listener ---------------------------------------------------------------
    def notify(self, _what: str = "registry") -> None:
        """Something changed: wake the thread (starting it the first time). Never blocks
        on the resolver and never raises."""
        with self._state:
            self._notified += 1
        self.start()
        self._wake.set()

    def start(self) -> None:
        """Start the background thread if it is not running."""
        with self._state:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="identifier-sync",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current round."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wait_synced(self, timeout: float) -> bool:
        """Wait until a successful round began after the latest notification; False on
        timeout (e.g. the resolver is unreachable)."""
        with self._state:
            return self._state.wait_for(lambda: self._done >= self._notified, timeout)

    # -- rounds ---------------------------------------------------------------------
    def run_once(self) -> BridgeReport | None:
        """One round now, in the caller's thread: sync the parts whose mark moved.
        Returns the bridge's report, or ``None`` when nothing moved. Raises whatever
        the resolver or the ledger raised (nothing is lost: the next round redoes it)."""
        with self._round_lock:
            with self._state:
                covers = self._notified
            try:
                if self.target is None:
                    self.target = self.open_target()
                target = self.target
                marks = read_marks(self.ledger)
                synced = self._synced
                registry = synced is None or marks.registry != synced.registry
                anchors = synced is None or marks.anchors != synced.anchors
                report = None
                if registry or anchors:
                    report = sync_ledger(self.ledger, target.sink, target.keyring,
                                         registry=registry, log=anchors)
                    self.last_report = report
                    if report.skipped:
                        log.warning("%d identifiers have no owner key in the keyring, e.g. %s",
                                    len(report.skipped), report.skipped[0])
                self._synced = marks
                if target.after is not None:
                    target.after()
            except BaseException as exc:
                self.failures += 1
                self.consecutive_failures += 1
                self.last_error = exc
                raise
            self.rounds += 1
            self.consecutive_failures = 0
            with self._state:
                self._done = max(self._done, covers)
                self._state.notify_all()
            return report

    def next_wait(self) -> float:
        """Seconds until the next round: ``interval``, doubled per consecutive failure."""
        if self.consecutive_failures == 0:
            return self.interval
        return min(self.max_wait, self.interval * 2.0 ** min(self.consecutive_failures, 32))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # keep going: the next round catches up
                log.warning("identifier registration failed (retry in %.1f s): %s",
                            self.next_wait(), exc)
            self._wake.wait(self.next_wait())
            self._wake.clear()


def _owner_key(ledger: Ledger, default: Path | None) -> PrivateKey:
    """The prefix owner's key: the configured file, else ``default`` (created 0600)."""
    s = ledger.settings
    if s.resolver_owner_key_file is not None:
        return PrivateKey.from_pem(s.resolver_owner_key_file.read_bytes())
    assert default is not None
    return load_or_create_key(default, s.log_suite)


def embedded_target(ledger: Ledger) -> SyncTarget:
    """Open (or create) the embedded root node under ``<data_dir>/resolver``: it trusts
    the ledger prefix's owner key, delegates the prefix to itself, and anchors its log."""
    from identifier_resolver.errors import AnchorFailedError
    from identifier_resolver.resolver import Resolver
    from identifier_resolver.settings import ResolverSettings

    from ._internal.chain import ChainClient

    s = ledger.settings
    base = s.data_dir / "resolver"
    owner = _owner_key(ledger, base / "owner_key.pem")
    chain: ChainClient | None = None
    chain_setting = "none"
    if s.chain == "embedded":
        # Its own account and CarbonAnchor on the ledger's in-process chain, so the two
        # logs never compete for one account's nonces.
        key_file = base / "embedded_anchor_key.hex"
        if not key_file.exists():
            _write_private(key_file, secrets.token_hex(32).encode())  # or lost a race
        chain = ChainClient.embedded(private_key=key_file.read_text().strip(),
                                     w3=ledger.chain._w3)
    elif os.environ.get("RESOLVER_CHAIN") == "rpc":
        chain_setting = "rpc"
    settings = ResolverSettings(
        data_dir=base, root=True, node_id="embedded", log_suite=s.log_suite,
        trust_root_key=f"{owner.suite}:{owner.public_key().hex()}", chain=chain_setting,
        public_url=s.resolver_public_url)
    node = Resolver.open(settings, chain=chain)
    node.bootstrap(owner, [s.prefix], url=s.resolver_public_url)

    def anchor() -> None:
        try:
            node.anchor_tick()
        except AnchorFailedError as exc:
            log.warning("resolver anchoring deferred: %s", exc)

    return SyncTarget(node, {s.prefix: owner}, after=anchor, node=node)


def remote_target(ledger: Ledger) -> SyncTarget:
    """The node at ``LEDGER_RESOLVER_URL``, trusted through ``LEDGER_RESOLVER_TRUST_FILE``,
    records signed with ``LEDGER_RESOLVER_OWNER_KEY_FILE``."""
    from identifier_resolver.client import ResolverClient, remote_sink
    from identifier_resolver.models import TrustRoot

    s = ledger.settings
    assert s.resolver_url is not None and s.resolver_trust_file is not None
    trust = TrustRoot.model_validate_json(s.resolver_trust_file.read_bytes())
    if trust.url is None:
        trust = trust.model_copy(update={"url": s.resolver_url})
    owner = _owner_key(ledger, None)
    return SyncTarget(remote_sink(ResolverClient(trust), s.resolver_url), {s.prefix: owner})
