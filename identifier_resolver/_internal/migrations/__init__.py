"""The resolver node's schema migrations (Alembic), configured in code.

:func:`upgrade` runs on every :class:`~identifier_resolver.resolver.Resolver` start, on
SQLite and PostgreSQL alike, in one transaction that first takes a database-wide lock
(``pg_advisory_xact_lock`` on PostgreSQL; SQLite's write lock via ``BEGIN IMMEDIATE``),
so two nodes starting at once on an empty database do not both create the schema. The
revision is kept in ``resolver_alembic_version`` rather than Alembic's default table,
so a resolver sharing a PostgreSQL database with a ledger never reads the ledger's
revision as its own.

A database made before migrations existed (by ``metadata.create_all``) has the tables
but no version table: it is stamped with the initial revision, whose schema is exactly
what ``create_all`` made, then upgraded as usual.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from ledger_service._internal.db import advisory_xact_lock

from ..db import metadata

__all__ = ["INITIAL_REVISION", "VERSION_TABLE", "upgrade", "downgrade", "current_revision",
           "head_revision", "schema_differences"]

HERE = Path(__file__).resolve().parent
INITIAL_REVISION = "r0001"
VERSION_TABLE = "resolver_alembic_version"
MIGRATION_LOCK = "resolver-migrate"
_in_process = threading.Lock()
"""Alembic keeps the running migration's context in module globals: one at a time."""


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision among the scripts."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None``: not under migration control)."""
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def _created_without_migrations(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names())
    return VERSION_TABLE not in names and "record_versions" in names


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: head) under the migration lock."""
    with _in_process, engine.begin() as conn:
        advisory_xact_lock(conn, MIGRATION_LOCK)
        cfg = _config(conn)
        if _created_without_migrations(conn):
            command.stamp(cfg, INITIAL_REVISION)
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the database to ``revision`` (default: drop everything) under the lock."""
    with _in_process, engine.begin() as conn:
        advisory_xact_lock(conn, MIGRATION_LOCK)
        command.downgrade(_config(conn), revision)


def schema_differences(conn: Connection) -> list[object]:
    """What autogenerate would change to make the database match ``metadata`` (empty
    when the migrations and the declared tables agree)."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                 "version_table": VERSION_TABLE})
    return list(compare_metadata(ctx, metadata))
