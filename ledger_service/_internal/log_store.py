"""The append-only Merkle log kept in SQL (RFC 6962 / RFC 9162 hashing).

Only perfect subtrees are stored. Any proof node is either a perfect subtree or a
right-edge range, which is folded from O(log n) perfect subtrees, so an inclusion or
consistency proof costs one indexed ``IN`` query whatever the tree size.

Appends run inside the caller's transaction, after it has locked ``log_state``
(:meth:`MerkleLog.locked_size`): the lock is what keeps two appenders from forking
the log. The in-memory frontier is only a cache of the right edge; it is replaced
after a commit and reloaded whenever the stored size is not the cached one.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from carbon_protocol.inventory import leaf_set_proof_nodes
from carbon_protocol.merkle import (
    Frontier,
    consistency_proof_ranges,
    empty_root,
    inclusion_proof_ranges,
    perfect_subtrees,
    range_hash,
)
from carbon_protocol.suites import SuiteName, hash_fn

from ..errors import InvalidInputError, LedgerError
from .db import bulk_insert, insert_or_ignore, log_state, merkle_nodes, node_key

__all__ = ["MerkleLog"]


class MerkleLog:
    """Storage-backed Merkle log for one deployment's log."""

    def __init__(self, log_id: str, suite: SuiteName) -> None:
        self.log_id = log_id
        self.suite: SuiteName = suite
        self.h = hash_fn(suite)
        self._frontier = Frontier(self.h)

    def ensure_state(self, conn: Connection) -> None:
        """Create the single ``log_state`` row, or check it names this log and suite.

        Two processes starting at once may both find no row: the insert is an
        insert-or-ignore, and both then check the row that won.
        """
        conn.execute(insert_or_ignore(conn, log_state, "id").values(
            id=1, log_id=self.log_id, suite=self.suite, tree_size=0))
        row = conn.execute(select(log_state).where(log_state.c.id == 1)).mappings().one()
        if (row["log_id"], row["suite"]) != (self.log_id, self.suite):
            raise LedgerError(
                f"database holds log {row['log_id']} ({row['suite']}), but the settings name "
                f"{self.log_id} ({self.suite}); refusing to mix logs"
            )

    def size(self, conn: Connection) -> int:
        """The committed tree size."""
        return int(conn.execute(select(log_state.c.tree_size).where(log_state.c.id == 1))
                   .scalar_one())

    def locked_size(self, conn: Connection) -> int:
        """The tree size, read with a row lock held until the transaction ends."""
        stmt = select(log_state.c.tree_size).where(log_state.c.id == 1)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return int(conn.execute(stmt).scalar_one())

    def _load_frontier(self, conn: Connection, size: int) -> Frontier:
        # ``size`` was read under the row lock. If another process appended since this
        # one last did, the sizes differ and the right edge is read from the database;
        # an equal size means the same tree, since the log only grows under that lock.
        if self._frontier.size == size:
            return Frontier(self.h, size, self._frontier.hashes())
        nodes = perfect_subtrees(0, size) if size else []
        hashes = self._fetch(conn, nodes)
        return Frontier(self.h, size, [hashes[n] for n in nodes])

    def append(self, conn: Connection, size: int, leaf_hashes: Sequence[bytes]) -> Frontier:
        """Append leaves at ``size`` (the locked size); return the new frontier.

        Call :meth:`commit_frontier` with the result once the transaction commits.
        """
        frontier = self._load_frontier(conn, size)
        rows = [
            (node_key(level, index), digest)
            for leaf in leaf_hashes
            for level, index, digest in frontier.append(leaf)
        ]
        bulk_insert(conn, merkle_nodes, ("node", "hash"), rows)
        conn.execute(update(log_state).where(log_state.c.id == 1)
                     .values(tree_size=frontier.size))
        return frontier

    def commit_frontier(self, frontier: Frontier) -> None:
        """Adopt ``frontier`` as the cached right edge after its transaction committed."""
        self._frontier = frontier

    def _fetch(
        self, conn: Connection, nodes: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not nodes:
            return {}
        keys = {node_key(level, index): (level, index) for level, index in nodes}
        found = {
            keys[row.node]: bytes(row.hash)
            for row in conn.execute(
                select(merkle_nodes.c.node, merkle_nodes.c.hash)
                .where(merkle_nodes.c.node.in_(list(keys)))
            )
        }
        if len(found) != len(keys):
            missing = sorted(set(keys.values()) - set(found))
            raise LedgerError(f"Merkle log is missing stored nodes {missing[:5]}")
        return found

    def _ranges(self, conn: Connection, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        per_range = [perfect_subtrees(a, b) for a, b in ranges]
        hashes = self._fetch(conn, [n for nodes in per_range for n in nodes])
        return [range_hash(self.h, [hashes[n] for n in nodes]) for nodes in per_range]

    def root(self, conn: Connection, size: int) -> bytes:
        """The root of the tree at ``size`` (any size up to the current one)."""
        if size == 0:
            return empty_root(self.h)
        if size == self._frontier.size:
            return self._frontier.root()
        return self._ranges(conn, [(0, size)])[0]

    def _check_size(self, conn: Connection, size: int) -> None:
        current = self.size(conn)
        if not 0 < size <= current:
            raise InvalidInputError(f"tree size {size} is outside the log (1..{current})",
                                    tree_size=size, current=current)

    def inclusion_proof(self, conn: Connection, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size``."""
        self._check_size(conn, size)
        if not 0 <= index < size:
            raise InvalidInputError(f"leaf index {index} is outside a tree of size {size}")
        return self._ranges(conn, inclusion_proof_ranges(index, size))

    def consistency_proof(self, conn: Connection, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 consistency proof between two tree sizes."""
        self._check_size(conn, size2)
        if not 0 < size1 <= size2:
            raise InvalidInputError(f"consistency needs 0 < size1 <= size2, got {size1}, {size2}")
        return self._ranges(conn, consistency_proof_ranges(size1, size2))

    def leaf_set_proof(self, conn: Connection, indices: Sequence[int], size: int) -> list[bytes]:
        """The hashes proving the leaves at ``indices`` (ascending) together in the tree
        of ``size``: each maximal subtree holding none of them
        (:func:`carbon_protocol.inventory.leaf_set_proof_nodes`), as the log's range
        hash, in the order the verifier consumes them."""
        return self._ranges(conn, leaf_set_proof_nodes(size, indices)) if indices else []
