"""The resolver node's append-only Merkle log of record versions (RFC 9162 §2.1).

Leaves are ``H(0x00 || canonical(signed_record))`` with the node's suite hash (SM3 or
SHA-256). Only perfect subtrees are stored; any proof element is a perfect subtree or a
right-edge range folded from O(log n) of them
(:func:`carbon_protocol.merkle.perfect_subtrees`), so a proof costs one indexed ``IN``
query. Appends run in the caller's transaction after :meth:`RecordLog.locked_size`;
the in-memory :class:`~carbon_protocol.merkle.Frontier` is a cache of the right edge,
reloaded whenever the stored size is not the cached one (another process appended).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, select, update

from carbon_protocol.merkle import (
    Frontier,
    consistency_proof_ranges,
    empty_root,
    inclusion_proof_ranges,
    perfect_subtrees,
    range_hash,
)
from carbon_protocol.suites import SuiteName, hash_fn

from ..errors import InvalidRequestError, ResolverError
from .db import log_nodes, log_state, node_key

__all__ = ["RecordLog"]

_CHUNK = 900  # bound parameters per IN query, under SQLite's default limit
_NODE_CACHE = 1_000_000  # stored nodes kept in memory (about 100 MB at most)

# Built once: constructing a statement per call costs more than running it on SQLite.
_SIZE = select(log_state.c.tree_size).where(log_state.c.id == 1)
_NODES = select(log_nodes.c.node, log_nodes.c.hash).where(
    log_nodes.c.node.in_(bindparam("keys", expanding=True)))


class RecordLog:
    """Storage-backed Merkle log of one resolver node."""

    def __init__(self, log_id: str, suite: SuiteName) -> None:
        self.log_id = log_id
        self.suite: SuiteName = suite
        self.h = hash_fn(suite)
        self._frontier = Frontier(self.h)
        self._nodes: dict[int, bytes] = {}
        """Stored perfect-subtree hashes already read: a stored node never changes (the
        log only grows), so proofs reuse them instead of asking the database again."""

    def ensure_state(self, conn: Connection) -> None:
        """Create the ``log_state`` row, or check that it names this log and suite."""
        row = conn.execute(select(log_state).where(log_state.c.id == 1)).mappings().first()
        if row is None:
            conn.execute(insert(log_state).values(id=1, log_id=self.log_id, suite=self.suite,
                                                  tree_size=0))
        elif (row["log_id"], row["suite"]) != (self.log_id, self.suite):
            raise ResolverError(
                f"database holds log {row['log_id']} ({row['suite']}), but the settings name "
                f"{self.log_id} ({self.suite}); refusing to mix logs"
            )

    def size(self, conn: Connection) -> int:
        """The committed tree size."""
        return int(conn.execute(_SIZE).scalar_one())

    def locked_size(self, conn: Connection) -> int:
        """The tree size, read with a row lock held until the transaction ends."""
        stmt = select(log_state.c.tree_size).where(log_state.c.id == 1)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return int(conn.execute(stmt).scalar_one())

    def _load_frontier(self, conn: Connection, size: int) -> Frontier:
        if self._frontier.size == size:
            return Frontier(self.h, size, self._frontier.hashes())
        nodes = perfect_subtrees(0, size) if size else []
        hashes = self._fetch(conn, nodes)
        return Frontier(self.h, size, [hashes[n] for n in nodes])

    def append(self, conn: Connection, size: int, leaf_hashes: Sequence[bytes]) -> Frontier:
        """Append leaves at ``size`` (the locked size); return the new frontier, to be
        adopted with :meth:`commit_frontier` once the transaction has committed."""
        frontier = self._load_frontier(conn, size)
        rows = []
        for leaf in leaf_hashes:
            for level, index, digest in frontier.append(leaf):
                rows.append({"node": node_key(level, index), "hash": digest})
        if rows:
            conn.execute(insert(log_nodes), rows)
        conn.execute(update(log_state).where(log_state.c.id == 1)
                     .values(tree_size=frontier.size))
        return frontier

    def commit_frontier(self, frontier: Frontier) -> None:
        """Adopt ``frontier`` as the cached right edge after its transaction committed."""
        self._frontier = frontier

    def _fetch(
        self, conn: Connection, nodes: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        keys = {node_key(level, index): (level, index) for level, index in nodes}
        known = self._nodes
        found: dict[tuple[int, int], bytes] = {}
        wanted = []
        for key, node in keys.items():
            hit = known.get(key)
            if hit is None:
                wanted.append(key)
            else:
                found[node] = hit
        if len(known) + len(wanted) > _NODE_CACHE:
            known.clear()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            for row in conn.execute(_NODES, {"keys": chunk}):
                value = bytes(row.hash)
                found[keys[row.node]] = value
                known[row.node] = value
        if len(found) != len(keys):
            missing = sorted(set(keys.values()) - set(found))
            raise ResolverError(f"Merkle log is missing stored nodes {missing[:5]}")
        return found

    def root(self, conn: Connection, size: int) -> bytes:
        """The root of the tree at ``size`` (any size up to the current one)."""
        if size == 0:
            return empty_root(self.h)
        if size == self._frontier.size:
            return self._frontier.root()
        nodes = perfect_subtrees(0, size)
        hashes = self._fetch(conn, nodes)
        return range_hash(self.h, [hashes[n] for n in nodes])

    def inclusion_proofs(
        self, conn: Connection, indices: Sequence[int], size: int
    ) -> list[list[bytes]]:
        """RFC 9162 §2.1.3.1 inclusion proofs of several leaves in the tree of ``size``,
        fetched together (one ``IN`` query per 900 stored nodes)."""
        # Leaves proven together share most of their upper proof ranges: split and fold
        # each distinct range once.
        per_leaf: list[list[tuple[int, int]]] = []
        splits: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for index in indices:
            if not 0 <= index < size:
                raise InvalidRequestError(f"leaf index {index} is outside a tree of size {size}")
            ranges = inclusion_proof_ranges(index, size)
            for r in ranges:
                if r not in splits:
                    splits[r] = perfect_subtrees(*r)
            per_leaf.append(ranges)
        wanted = {n for nodes in splits.values() for n in nodes}
        hashes = self._fetch(conn, list(wanted))
        folded = {r: range_hash(self.h, [hashes[n] for n in nodes]) for r, nodes in splits.items()}
        return [[folded[r] for r in ranges] for ranges in per_leaf]

    def consistency_proof(self, conn: Connection, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 consistency proof between two tree sizes."""
        current = self.size(conn)
        if not 0 < size1 <= size2 <= current:
            raise InvalidRequestError(
                f"consistency needs 0 < size1 <= size2 <= {current}, got {size1}, {size2}")
        ranges = [perfect_subtrees(a, b) for a, b in consistency_proof_ranges(size1, size2)]
        hashes = self._fetch(conn, [n for nodes in ranges for n in nodes])
        return [range_hash(self.h, [hashes[n] for n in nodes]) for nodes in ranges]
