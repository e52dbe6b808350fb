"""Schema migrations (Alembic), configured in code: no ``alembic.ini`` to ship or find.

:func:`upgrade` is what :class:`~ledger_service.ledger.Ledger` runs on every start, on
SQLite and PostgreSQL alike. The whole upgrade runs in one transaction that first takes
a database-wide lock (``pg_advisory_xact_lock`` on PostgreSQL; SQLite's write lock via
``BEGIN IMMEDIATE``), so when two service processes start at once against an empty
database one creates the schema and the other waits, then finds it at head and does
nothing. Both databases have transactional DDL, so a failed upgrade leaves nothing
half-made. Within one process the runs are also serialised by a thread lock, because
Alembic keeps the running migration's context in module globals.

A database created before migrations existed (by ``metadata.create_all``) has the
tables but no ``alembic_version``; it is stamped with the initial revision, whose
schema is exactly what ``create_all`` made, and then upgraded as usual.

For developers: ``python -m ledger_service._internal.migrations --help`` (upgrade,
downgrade, current, and ``revision --autogenerate`` against a scratch database).
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

from ..db import advisory_xact_lock, metadata

__all__ = ["INITIAL_REVISION", "alembic_config", "upgrade", "downgrade", "current_revision",
           "head_revision", "schema_differences"]

HERE = Path(__file__).resolve().parent
INITIAL_REVISION = "0001"
MIGRATION_LOCK = "migrate"
_in_process = threading.Lock()


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic :class:`Config` for this package's scripts.

    ``connection`` (online) or ``url`` (``--sql`` output) travel in ``attributes``, not
    in the ini-style options, so a password with ``%`` in it needs no escaping.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    """The newest revision among the scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None``: not under migration control)."""
    return MigrationContext.configure(conn).get_current_revision()


def _created_without_migrations(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names())
    return "alembic_version" not in names and "log_state" in names


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: head) under the migration lock."""
    with _in_process, engine.begin() as conn:
        advisory_xact_lock(conn, MIGRATION_LOCK)
        cfg = alembic_config(conn)
        if _created_without_migrations(conn):
            command.stamp(cfg, INITIAL_REVISION)
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the database to ``revision`` (default: drop everything) under the lock."""
    with _in_process, engine.begin() as conn:
        advisory_xact_lock(conn, MIGRATION_LOCK)
        command.downgrade(alembic_config(conn), revision)


def schema_differences(conn: Connection) -> list[object]:
    """What Alembic's autogenerate would change to make the database match ``metadata``
    (empty when the migrations and the declared tables agree)."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))
