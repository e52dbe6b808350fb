"""The resolver node's schema: SQLAlchemy Core tables, SQLite or PostgreSQL.

``records`` holds the current version of every identifier this node is authoritative
for (its canonical signed bytes, so answers need no re-serialisation);
``record_versions`` every version ever stored, each at its own log leaf; ``links`` the
current version's custody edges, indexed both ways so a walk is one ``IN`` query per
level. The Merkle log keeps only perfect-subtree hashes (``log_nodes``, keyed
``level << 48 | index``) and its size in the single ``log_state`` row every appender
locks. ``authorities`` keeps the delegation chains that make this node authoritative.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from ledger_service._internal.db import make_engine as ledger_engine
from ledger_service._internal.db import node_key

__all__ = [
    "metadata", "records", "record_versions", "links", "log_nodes", "log_state",
    "tree_heads", "anchors", "authorities", "make_engine", "node_key",
]

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("type", String(24), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("leaf_index", BigInteger, nullable=False),
    Column("signed", LargeBinary, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("updated_at", String(20), nullable=False),
)
Index("ix_resolver_records_type", records.c.type, records.c.status)

record_versions = Table(
    "record_versions",
    metadata,
    Column("id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("signed", LargeBinary, nullable=False),
    PrimaryKeyConstraint("id", "version", name="pk_resolver_record_versions"),
)

links = Table(
    "links",
    metadata,
    Column("source", String(200), nullable=False),
    Column("rel", String(24), nullable=False),
    Column("target", String(200), nullable=False),
    Column("dir", String(4), nullable=False),
    PrimaryKeyConstraint("source", "rel", "target", name="pk_resolver_links"),
)
Index("ix_resolver_links_target", links.c.target, links.c.dir)

log_nodes = Table(
    "log_nodes",
    metadata,
    Column("node", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

log_state = Table(
    "log_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_id", String(200), nullable=False),
    Column("suite", String(8), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
)

tree_heads = Table(
    "tree_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("signed", Text, nullable=False),
)

anchors = Table(
    "anchors",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("ref", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", String(20), nullable=False),
)

authorities = Table(
    "authorities",
    metadata,
    Column("prefix", String(80), primary_key=True),
    Column("chain", Text, nullable=False),
    Column("installed_at", String(20), nullable=False),
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """The ledger's engine set-up (SQLite: WAL set once, ``synchronous=FULL``,
    ``BEGIN IMMEDIATE`` writes, deferred reads with ``read_only=True``), refusing an
    in-memory SQLite database: one per pooled connection would give each its own empty
    node. Connections may cross threads (the resolver's ASGI front answers from a pool).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path in ("", ":memory:"):
            raise ValueError("the resolver needs a SQLite file, not an in-memory database")
        kwargs["connect_args"] = {"check_same_thread": False, **kwargs.get("connect_args", {})}
    return ledger_engine(url, **kwargs)
