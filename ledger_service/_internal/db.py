"""Database schema and engine: SQLAlchemy Core tables, SQLite or PostgreSQL.

Core (not the ORM) because ingest writes thousands of rows per second in bulk
``executemany`` statements. Times are stored as RFC 3339 UTC text, which sorts
correctly and reads the same in both databases.

The Merkle log stores only perfect-subtree hashes (``merkle_nodes``), keyed by a
single integer ``level << 48 | index`` so a whole inclusion proof is one ``IN``
query. ``log_state`` holds the tree size and is the row every appender locks, which
keeps two service processes from forking the log.

The schema is created and changed only by the Alembic migrations in
:mod:`ledger_service._internal.migrations`; a test keeps them equal to ``metadata``.
Statements whose SQL differs between the two databases (insert-or-ignore, the larger
of two values, advisory locks) are built here, so callers stay dialect-free.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

__all__ = [
    "metadata", "make_engine", "reader", "node_key", "NODE_LEVEL_SHIFT", "insert_or_ignore",
    "greatest", "advisory_xact_lock", "bulk_insert",
]

metadata = MetaData()
NODE_LEVEL_SHIFT = 48

enterprises = Table(
    "enterprises",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("enterprise_id", String(200), ForeignKey("enterprises.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
)

gateways = Table(
    "gateways",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("enterprise_id", String(200), ForeignKey("enterprises.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("site_id", String(200), ForeignKey("sites.id"), nullable=False),
    Column("gateway_id", String(200), ForeignKey("gateways.id"), nullable=True),
    Column("quantity", String(32), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("serial", Text, nullable=False),
    Column("calibration", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
    Column("last_seq", BigInteger, nullable=False, default=0),
)

device_keys = Table(
    "device_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("device_id", String(200), ForeignKey("devices.id"), nullable=False, index=True),
    Column("suite", String(8), nullable=False),
    Column("public_key", String(130), nullable=False),
    Column("valid_from", String(20), nullable=False),
    Column("revoked_at", String(20), nullable=True),
    Column("revocation_reason", Text, nullable=True),
)

readings = Table(
    "readings",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("device_id", String(200), ForeignKey("devices.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf_data", LargeBinary, nullable=False),
    Column("measured_at", String(20), nullable=False),
    Column("received_at", String(20), nullable=False),
    Column("gap_before", BigInteger, nullable=False, default=0),
    UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),
)
Index("ix_readings_device_measured", readings.c.device_id, readings.c.measured_at)

rejected_readings = Table(
    "rejected_readings",
    metadata,
    Column("device_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("measured_at", String(20), nullable=False),
    Column("received_at", String(20), nullable=False),
)

merkle_nodes = Table(
    "merkle_nodes",
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
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signed", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
)

anchors = Table(
    "anchors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False, index=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("tx_hash", String(66), nullable=False, unique=True),
    Column("raw_tx", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("block_number", BigInteger, nullable=True),
    Column("block_hash", String(66), nullable=True),
    Column("block_timestamp", BigInteger, nullable=True),
    Column("submitter", String(42), nullable=False),
    Column("gas_used", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", String(20), nullable=False),
    Column("updated_at", String(20), nullable=False),
)

gateway_keys = Table(
    "gateway_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("gateway_id", String(200), ForeignKey("gateways.id"), nullable=False, index=True),
    Column("suite", String(8), nullable=False),
    Column("public_key", String(130), nullable=False),
    Column("valid_from", String(20), nullable=False),
    Column("revoked_at", String(20), nullable=True),
)

inventories = Table(
    "inventories",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("gateway_id", String(200), ForeignKey("gateways.id"), nullable=False, index=True),
    Column("key_id", String(32), nullable=False),
    Column("period_label", String(32), nullable=False),
    Column("period_start", String(20), nullable=False),
    Column("period_end", String(20), nullable=False),
    Column("methodology_id", String(32), nullable=False),
    Column("rule_version", BigInteger, nullable=False),
    Column("total", Text, nullable=False),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf_data", LargeBinary, nullable=False),
    Column("received_at", String(20), nullable=False),
)

reports = Table(
    "reports",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("enterprise_id", String(200), nullable=False, index=True),
    Column("period_label", String(32), nullable=False),
    Column("report_hash", LargeBinary(32), nullable=False),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf_data", LargeBinary, nullable=False),
    Column("created_at", String(20), nullable=False),
)

log_records = Table(
    "log_records",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("enterprise_id", String(200), nullable=False, index=True),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf_data", LargeBinary, nullable=False),
    Column("created_at", String(20), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", String(20), nullable=False),
    Column("revoked_at", String(20), nullable=True),
    Column("party", String(200), nullable=True),
)

api_key_scopes = Table(
    "api_key_scopes",
    metadata,
    Column("key_id", String(32), ForeignKey("api_keys.key_id"), primary_key=True),
    Column("enterprise_id", String(200), primary_key=True),
)


def node_key(level: int, index: int) -> int:
    """The single-integer key of perfect subtree ``(level, index)``."""
    return (level << NODE_LEVEL_SHIFT) | index


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite: WAL, full fsync, and ``BEGIN IMMEDIATE`` transactions.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock when a transaction starts, so two
    appenders serialise on the lock instead of failing with "database is locked"
    halfway through. Connections with the execution option ``read_only=True`` (see
    :func:`reader`) begin deferred instead, so reads never wait for or hold the lock.
    ``synchronous=FULL`` makes an acknowledged batch survive power loss, not just a
    crash of the process.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"isolation_level": None, "timeout": 60,
                        **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            _ensure_wal(cur)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            deferred = conn.get_execution_options().get("read_only", False)
            conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _ensure_wal(cur: Any, deadline_s: float = 60.0) -> None:
    """Switch a SQLite file to WAL once; retry while another process holds the lock.

    WAL is a property of the file, so only the first connection ever needs to set it.
    Changing the journal mode needs an exclusive lock and SQLite does not always call
    the busy handler for it: when several processes open a brand-new file at the same
    moment, all but one get "database is locked" at once. Checking first and retrying
    turns that race into a short wait.
    """
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise
            time.sleep(0.05)


def reader(engine: Engine) -> Engine:
    """The same engine and pool, for read-only work (deferred transactions on SQLite)."""
    return engine.execution_options(read_only=True)


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows, values in ``columns`` order, in ``conn``'s transaction.

    Ingest inserts the readings and Merkle nodes of a batch while holding the log lock,
    so this is time every other appending process waits, and it goes straight to the
    driver (the columns hold plain strings, integers and bytes, which need no SQLAlchemy
    type processing):

    * PostgreSQL with psycopg 3: one ``COPY ... FROM STDIN``. For 1,000 readings and
      their 2,000 nodes, 25-35 ms against 70-85 ms for a pipelined ``executemany``.
    * SQLite: the driver's ``executemany``. SQLAlchemy's own spends longer building
      per-row parameters than SQLite spends inserting (about 10 us a row).
    * Any other driver: SQLAlchemy's ``executemany`` INSERT.
    """
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    dialect = (conn.dialect.name, conn.dialect.driver)
    if dialect == ("postgresql", "psycopg"):
        driver = conn.connection.driver_connection
        assert driver is not None
        copy_sql = f"COPY {quote(table.name)} ({names}) FROM STDIN"
        with driver.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    elif dialect == ("sqlite", "pysqlite"):
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})",
                               rows)
        finally:
            cursor.close()
    else:
        conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


def insert_or_ignore(conn: Connection, table: Table, *conflict_columns: str) -> Insert:
    """``INSERT ... ON CONFLICT (conflict_columns) DO NOTHING`` for ``conn``'s database.

    Both PostgreSQL and SQLite (3.24+) have the clause. Where two processes may insert
    the same key (the same signed tree head, the single ``log_state`` row), the loser's
    insert becomes a no-op instead of a unique violation, and it reads the winner's row.
    """
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"insert-or-ignore is not written for {name}")


def greatest(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    """The larger of two SQL values: ``GREATEST`` in PostgreSQL, two-argument ``MAX`` in
    SQLite."""
    if conn.dialect.name == "sqlite":
        return func.max(a, b)
    return func.greatest(a, b)


def _lock_id(name: str) -> int:
    """A stable signed 64-bit advisory lock id for ``name``."""
    return int.from_bytes(hashlib.sha256(f"carbon-ledger:{name}".encode()).digest()[:8],
                          "big", signed=True)


def advisory_xact_lock(conn: Connection, name: str) -> None:
    """Hold the database-wide lock ``name`` until ``conn``'s transaction ends.

    PostgreSQL: ``pg_advisory_xact_lock``, so two processes serialise on it and a
    crashed holder releases it with its connection. SQLite: nothing to do, since every
    writing transaction already holds the database's one write lock (``BEGIN
    IMMEDIATE``, see :func:`make_engine`).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(name)})
