"""Anchoring tree heads on chain, and tracking them until they are final.

The life of an anchor (``anchors.status``):

``signed``   the raw transaction is stored *before* it is sent, with its nonce, so a
             crash between signing and sending loses nothing: on restart it is sent
             again byte for byte (same hash, so never doubled);
``sent``     broadcast, not yet in a block;
``mined``    in a block, fewer than ``confirmations`` deep;
``final``    deep enough, its ``TreeHeadAnchored`` event in the receipt and its root
             readable through ``anchorOf``; reported final exactly once (the status
             update is conditional on the status read, so two trackers cannot both
             report it) and never left again by tracking;
``dropped``  the node forgot it: a ``mined`` anchor whose receipt vanished (a
             reorganisation) or a ``sent`` one the node no longer knows (dropped from
             its pool, a node restarted without its pool). The *same* signed
             transaction is broadcast again; if its nonce was taken by another
             transaction it becomes ``replaced`` and the current tree head is anchored
             anew at once;
``replaced`` superseded: its nonce went to another transaction, or (set by
             :meth:`Anchorer.verify_latest_final`) a final anchor the chain no longer
             holds;
``failed``   the contract refused it (status 0, with the decoded custom error), or the
             node refused the signed bytes for good (e.g. fees below the base fee after
             a long outage): the head is anchored again with a fresh transaction, at the
             same nonce when that nonce is still free.

Every write to the chain (:meth:`Anchorer.record`, :meth:`Anchorer.send_pending`),
every tracking round with open anchors, and an idle tracking round at least every
``check_interval`` seconds first check that the node is still the chain
and contract this ledger was set up for (``ChainClient.verify_deployment``): a node
restarted empty, or an endpoint re-pointed at another chain, makes anchoring refuse
with :class:`~ledger_service.errors.ChainMismatchError` naming what differs, instead of
signing for, sending to, or finalising on the wrong chain.

Finality is depth-based: safe against reorganisations shallower than
``confirmations``. ``ANCHOR_LATENCY`` observes, once per anchor, the seconds from
signing to final.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from carbon_protocol.chain_view import log_key as log_key_of

from ._internal.chain import ChainClient, SignedTx, TxReceipt
from ._internal.clock import utc_now, utc_text
from ._internal.db import anchors
from ._internal.metrics import ANCHOR_LATENCY
from .errors import AnchorError, ChainMismatchError, ChainUnavailableError

__all__ = ["Anchorer", "AnchorEvent", "OPEN_STATUSES"]

log = logging.getLogger(__name__)

OPEN_STATUSES = ("signed", "sent", "mined", "dropped")
_ANCHOR_EVENT = "TreeHeadAnchored"


@dataclass(frozen=True, slots=True)
class AnchorEvent:
    """Something that happened to an anchor during :meth:`Anchorer.track`."""

    tree_size: int
    tx_hash: str
    status: str


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Anchorer:
    """Decides when to anchor, sends, and tracks confirmations for one log."""

    def __init__(self, engine: Engine, chain: ChainClient, log_id: str, *, every_leaves: int,
                 every_seconds: float, confirmations: int) -> None:
        self.engine = engine
        self.chain = chain
        self.log_id = log_id
        self.log_key = log_key_of(log_id)
        self.every_leaves = every_leaves
        self.every_seconds = every_seconds
        self.confirmations = confirmations
        # Wall-clock signing times of this process's anchors (``created_at`` has whole
        # seconds only); anchors signed before a restart fall back to ``created_at``.
        self._signed_at: dict[str, float] = {}
        self.check_interval = 30.0
        """Seconds between deployment checks while there is nothing to send or track."""
        self._last_check = float("-inf")
        # One sender at a time in this process: the anchor loop and request threads
        # (opening a verification anchors) would otherwise broadcast the same stored
        # transaction twice, and a node that refuses the second copy ("already
        # mining", "underpriced") would get the anchor marked failed while it is mined.
        self._sending = threading.Lock()

    # -- the chain ------------------------------------------------------------------
    def check_chain(self) -> None:
        """Raise :class:`ChainMismatchError` unless the node is still our chain and
        contract (chain id and runtime code, expected vs got)."""
        try:
            self.chain.verify_deployment()
        except ChainMismatchError as exc:
            log.error("refusing to anchor: %s", exc)
            raise
        self._last_check = time.monotonic()

    # -- deciding -------------------------------------------------------------------
    def last_anchor(self, conn: Connection) -> tuple[int, str] | None:
        """(tree size, created_at) of the newest anchor that is not failed or replaced."""
        row = conn.execute(
            select(anchors.c.tree_size, anchors.c.created_at)
            .where(anchors.c.status.in_(OPEN_STATUSES + ("final",)))
            .order_by(anchors.c.tree_size.desc()).limit(1)
        ).first()
        return None if row is None else (int(row.tree_size), str(row.created_at))

    def due(self, conn: Connection, size: int, now: datetime | None = None) -> bool:
        """True when there is something new to anchor and the log grew by
        ``every_leaves``, or ``every_seconds`` passed since the last anchor, or an anchor
        of a larger head was lost (replaced) and must be made again."""
        last = self.last_anchor(conn)
        if last is None:
            return size > 0
        last_size, created = last
        if size <= last_size:
            return False
        if size - last_size >= self.every_leaves:
            return True
        lost = conn.execute(
            select(anchors.c.id).where(anchors.c.status == "replaced",
                                       anchors.c.tree_size > last_size).limit(1)
        ).first()
        if lost is not None:
            return True
        elapsed = ((now or utc_now()) - datetime.fromisoformat(created.replace("Z", "+00:00")))
        return elapsed.total_seconds() >= self.every_seconds

    # -- sending --------------------------------------------------------------------
    @property
    def _submitter(self) -> str:
        """This process's anchoring account, as stored in ``anchors.submitter``."""
        return str(self.chain.account).lower()

    def _next_nonce(self, conn: Connection) -> int:
        chain_nonce = int(self.chain.pending_nonce())
        # Open anchors the node may have forgotten still own their nonces: they are
        # resent as they are, so a new anchor must not take one of them. Only this
        # account's anchors count: another process may anchor with its own key.
        row = conn.execute(
            select(anchors.c.nonce).where(anchors.c.status.in_(OPEN_STATUSES),
                                          anchors.c.submitter == self._submitter)
            .order_by(anchors.c.nonce.desc()).limit(1)
        ).first()
        return chain_nonce if row is None else max(chain_nonce, int(row.nonce) + 1)

    def record(self, conn: Connection, tree_size: int, root: bytes) -> str:
        """Sign the anchor transaction and store it (status ``signed``) in ``conn``'s
        transaction; the caller commits, then calls :meth:`send_pending`."""
        self.check_chain()
        nonce = self._next_nonce(conn)
        tx = self.chain.sign_anchor_tx(self.log_key, tree_size, root, nonce=nonce)
        now = utc_text()
        existing = conn.execute(select(anchors.c.id).where(anchors.c.tx_hash == tx.tx_hash)).first()
        if existing is not None:
            # The very same transaction (same nonce, same fields) was made before and
            # then lost, e.g. with a chain that restarted empty: send it again as is.
            conn.execute(update(anchors).where(anchors.c.id == existing.id).values(
                status="signed", block_number=None, block_hash=None, block_timestamp=None,
                updated_at=now))
        else:
            conn.execute(insert(anchors).values(
                tree_size=tree_size, root_hash=root, nonce=tx.nonce, tx_hash=tx.tx_hash,
                raw_tx=tx.raw, status="signed", submitter=str(self.chain.account).lower(),
                attempts=0, created_at=now, updated_at=now,
            ))
        self._signed_at.setdefault(tx.tx_hash, time.time())
        return str(tx.tx_hash)

    def send_pending(self) -> int:
        """Broadcast every stored transaction not yet known to be on chain, in nonce order.

        Resends are the stored bytes, so the hash never changes. Raises
        :class:`ChainUnavailableError` (the rest waits for the next round) and
        :class:`ChainMismatchError` (nothing is sent to a chain that is not ours).
        """
        with self._sending:
            return self._send_pending()

    def _send_pending(self) -> int:
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(anchors.c.id, anchors.c.raw_tx, anchors.c.tx_hash, anchors.c.attempts,
                       anchors.c.status)
                .where(anchors.c.status.in_(("signed", "dropped")),
                       anchors.c.submitter == self._submitter)
                .order_by(anchors.c.nonce)
            ).all()
        if not rows:
            return 0
        self.check_chain()
        sent = 0
        for row in rows:
            try:
                self.chain.send_raw(SignedTx(bytes(row.raw_tx), row.tx_hash, 0))
                status = "sent"
            except ChainUnavailableError:
                raise
            except AnchorError as exc:
                # Its nonce went to another transaction: this one can never be mined.
                # Anything else the node refuses for good (fees now below the base fee,
                # funds): the head is anchored again with a fresh transaction.
                status = "replaced" if exc.details.get("reason") == "nonce_used" else "failed"
                log.warning("anchor tx %s refused on send (now %s): %s", row.tx_hash,
                            status, exc)
            if row.status == "dropped" and status == "sent":
                log.info("anchor tx %s broadcast again (same bytes)", row.tx_hash)
            self._set(row.id, row.status, status=status, attempts=row.attempts + 1)
            if status != "sent":
                self._signed_at.pop(row.tx_hash, None)
            sent += status == "sent"
        return sent

    def _set(self, row_id: int, expected_status: str, **values: Any) -> bool:
        """Update one anchor if its status is still ``expected_status``; True if it was."""
        values["updated_at"] = utc_text()
        with self.engine.begin() as conn:
            result = conn.execute(update(anchors).where(
                anchors.c.id == row_id, anchors.c.status == expected_status).values(**values))
        return bool(result.rowcount == 1)

    # -- tracking -------------------------------------------------------------------
    def _anchored_event(self, receipt: TxReceipt, tree_size: int, root: bytes) -> bool:
        for event in receipt.events:
            if (event.name == _ANCHOR_EVENT and int(event.args.get("treeSize", -1)) == tree_size
                    and str(event.args.get("root", "")).lower() == "0x" + root.hex()
                    and str(event.args.get("logKey", "")).lower() == "0x" + self.log_key.hex()):
                return True
        return False

    def _next_state(self, row: Any, head: int) -> dict[str, Any] | None:
        """The new column values of one open anchor, or None to leave it as it is."""
        tx_hash = str(row["tx_hash"])
        receipt = self.chain.receipt(tx_hash)
        gone = {"status": "dropped", "block_number": None, "block_hash": None,
                "block_timestamp": None}
        if receipt is None:
            if row["status"] == "mined" or not self.chain.is_known(tx_hash):
                return gone
            return None  # still waiting in the node's pool
        if receipt.status != 1:
            return {"status": "failed", "block_number": receipt.block_number,
                    "block_hash": receipt.block_hash.lower(), "gas_used": receipt.gas_used}
        block_hash, timestamp = self.chain.block(receipt.block_number)
        if block_hash.lower() != receipt.block_hash.lower():
            return gone  # a stale receipt from a reorganised-away block
        root = bytes(row["root_hash"])
        if not self._anchored_event(receipt, int(row["tree_size"]), root):
            # Status 1 without our event: the call reached no CarbonAnchor (say, code
            # that vanished between our check and the send). Not an anchor.
            log.error("anchor tx %s succeeded without a %s event for tree size %s",
                      tx_hash, _ANCHOR_EVENT, row["tree_size"])
            return {"status": "failed", "block_number": receipt.block_number,
                    "block_hash": receipt.block_hash.lower(), "gas_used": receipt.gas_used}
        values: dict[str, Any] = {
            "status": "mined", "block_number": receipt.block_number,
            "block_hash": receipt.block_hash.lower(), "block_timestamp": timestamp,
            "gas_used": receipt.gas_used}
        if head - receipt.block_number + 1 >= self.confirmations:
            try:
                on_chain = self.chain.anchor_of(self.log_key, int(row["tree_size"]))
            except (ChainUnavailableError, ChainMismatchError):
                raise
            except AnchorError as exc:
                # A read the node refused for now (a pruning node asked for state it
                # dropped as the next block was mined under another thread's request):
                # mined stays mined, and the next round asks again.
                log.info("anchor tx %s: anchorOf refused, checked again next round: %s",
                         row["tx_hash"], exc)
                return values
            if (on_chain is None or on_chain.root != root
                    or on_chain.block_number != receipt.block_number):
                return None  # the chain moved under us; look again next round
            values["status"] = "final"
        return values

    def track(self) -> list[AnchorEvent]:
        """Advance every open anchor: mined, final, dropped or failed. Idempotent.

        Returns the changes made by this call; an anchor's ``final`` is returned by
        exactly one call, ever.
        """
        events: list[AnchorEvent] = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(anchors).where(anchors.c.status.in_(("sent", "mined")))
                .order_by(anchors.c.nonce)
            ).mappings().all()
        if not rows:
            # Idle: still notice, now and then, a node that lost our contract or changed
            # chains, rather than only when the next anchor falls due.
            if time.monotonic() - self._last_check >= self.check_interval:
                self.check_chain()
            return events
        self.check_chain()
        head = int(self.chain.block_number())
        for row in rows:
            values = self._next_state(row, head)
            if values is None or (values["status"] == row["status"]
                                  and values.get("block_hash") == row["block_hash"]):
                continue
            if not self._set(row["id"], row["status"], **values):
                continue  # another tracker moved it first, and reported it
            status = str(values["status"])
            events.append(AnchorEvent(int(row["tree_size"]), str(row["tx_hash"]), status))
            if status == "final":
                signed_at = self._signed_at.pop(str(row["tx_hash"]), None)
                if signed_at is None:
                    signed_at = _epoch(str(row["created_at"]))
                ANCHOR_LATENCY.observe(max(0.0, time.time() - signed_at))
            elif status == "failed":
                self._signed_at.pop(str(row["tx_hash"]), None)
            elif status == "dropped":
                log.warning("anchor tx %s of tree size %s was dropped by the chain; "
                            "it will be broadcast again", row["tx_hash"], row["tree_size"])
        return events

    def verify_latest_final(self) -> bool:
        """Check that the newest final anchor is still on chain; if not, walk back and
        mark every vanished final anchor ``replaced``, so no proof cites it.

        Cheap on every start: one ``eth_call`` while the chain is intact. An embedded
        (in-memory) chain forgets everything when its process ends, and this is how the
        ledger notices; the next anchoring round then anchors the current head again.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(anchors.c.id, anchors.c.tree_size, anchors.c.root_hash)
                .where(anchors.c.status == "final").order_by(anchors.c.tree_size.desc())
            ).all()
        vanished = []
        for row in rows:
            rec = self.chain.anchor_of(self.log_key, int(row.tree_size))
            if rec is not None and rec.root == bytes(row.root_hash):
                break
            vanished.append(row.id)
        if not vanished:
            return True
        with self.engine.begin() as conn:
            conn.execute(update(anchors).where(anchors.c.id.in_(vanished)).values(
                status="replaced", updated_at=utc_text()))
        log.warning("%d final anchors are no longer on chain; will re-anchor", len(vanished))
        return False
