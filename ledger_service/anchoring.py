"""Anchoring tree heads on chain, and tracking them until they are final.

The life of an anchor (``anchors.status``):

``signed``  the raw transaction is stored *before* it is sent, with its nonce, so a
            crash between signing and sending loses nothing: on restart it is sent
            again byte for byte (same hash, so never doubled);
``sent``    broadcast, not yet in a block;
``mined``   in a block, fewer than ``confirmations`` deep;
``final``   deep enough; reported final exactly once;
``dropped`` its receipt vanished (a reorg, a node that forgot it): the same signed
            transaction is broadcast again; if its nonce was taken by something else
            it becomes ``replaced`` and the current tree head is anchored anew;
``failed``  the contract refused it (status 0), with the decoded custom error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update

from carbon_protocol.chain_view import log_key as log_key_of

from ._internal.chain import ChainClient, SignedTx
from ._internal.clock import utc_now, utc_text
from ._internal.db import anchors
from .errors import AnchorError, ChainUnavailableError

__all__ = ["Anchorer", "AnchorEvent", "OPEN_STATUSES"]

log = logging.getLogger(__name__)

OPEN_STATUSES = ("signed", "sent", "mined", "dropped")


@dataclass(frozen=True, slots=True)
class AnchorEvent:
    """Something that happened to an anchor during :meth:`Anchorer.track`."""

    tree_size: int
    tx_hash: str
    status: str


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
        """True when the log grew by ``every_leaves`` or ``every_seconds`` passed since the
        last anchor and there is something new to anchor."""
        last = self.last_anchor(conn)
        if last is None:
            return size > 0
        last_size, created = last
        if size <= last_size:
            return False
        if size - last_size >= self.every_leaves:
            return True
        elapsed = ((now or utc_now()) - datetime.fromisoformat(created.replace("Z", "+00:00")))
        return elapsed.total_seconds() >= self.every_seconds

    # -- sending --------------------------------------------------------------------
    def _next_nonce(self, conn: Connection) -> int:
        chain_nonce = int(self.chain.pending_nonce())
        row = conn.execute(
            select(anchors.c.nonce).where(anchors.c.status.in_(("signed", "sent")))
            .order_by(anchors.c.nonce.desc()).limit(1)
        ).first()
        return chain_nonce if row is None else max(chain_nonce, int(row.nonce) + 1)

    def record(self, conn: Connection, tree_size: int, root: bytes) -> str:
        """Sign the anchor transaction and store it (status ``signed``) in ``conn``'s
        transaction; the caller commits, then calls :meth:`send_pending`."""
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
        return str(tx.tx_hash)

    def send_pending(self) -> int:
        """Broadcast every stored transaction not yet known to be on chain, in nonce order."""
        sent = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(anchors.c.id, anchors.c.raw_tx, anchors.c.tx_hash, anchors.c.attempts)
                .where(anchors.c.status.in_(("signed", "dropped"))).order_by(anchors.c.nonce)
            ).all()
        for row in rows:
            try:
                self.chain.send_raw(SignedTx(bytes(row.raw_tx), row.tx_hash, 0))
                status = "sent"
            except ChainUnavailableError:
                raise
            except AnchorError as exc:
                log.warning("anchor tx %s refused on send: %s", row.tx_hash, exc)
                status = "replaced"
            with self.engine.begin() as conn:
                conn.execute(update(anchors).where(anchors.c.id == row.id).values(
                    status=status, attempts=row.attempts + 1, updated_at=utc_text()))
            sent += status == "sent"
        return sent

    # -- tracking -------------------------------------------------------------------
    def track(self) -> list[AnchorEvent]:
        """Advance every open anchor: mined, final, dropped or failed. Idempotent."""
        events: list[AnchorEvent] = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(anchors).where(anchors.c.status.in_(("sent", "mined")))
                .order_by(anchors.c.nonce)
            ).mappings().all()
        if not rows:
            return events
        head = int(self.chain.block_number())
        for row in rows:
            receipt = self.chain.receipt(row["tx_hash"])
            values: dict[str, object] = {}
            if receipt is None:
                if row["status"] == "mined":
                    values = {"status": "dropped", "block_number": None, "block_hash": None,
                              "block_timestamp": None}
            elif receipt.status != 1:
                values = {"status": "failed", "block_number": receipt.block_number,
                          "block_hash": receipt.block_hash, "gas_used": receipt.gas_used}
            else:
                block_hash, timestamp = self.chain.block(receipt.block_number)
                if block_hash.lower() != receipt.block_hash.lower():
                    values = {"status": "dropped"}
                else:
                    depth = head - receipt.block_number + 1
                    status = "final" if depth >= self.confirmations else "mined"
                    values = {"status": status, "block_number": receipt.block_number,
                              "block_hash": receipt.block_hash.lower(),
                              "block_timestamp": timestamp, "gas_used": receipt.gas_used}
            if values and (values.get("status") != row["status"]
                           or values.get("block_hash") != row["block_hash"]):
                values["updated_at"] = utc_text()
                with self.engine.begin() as conn:
                    conn.execute(update(anchors).where(anchors.c.id == row["id"]).values(**values))
                events.append(AnchorEvent(row["tree_size"], row["tx_hash"], str(values["status"])))
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
