"""An Alembic script directory configured in code, upgraded under a database-wide lock.

The ledger and the identifier resolver each keep their own schema and scripts, but they
start the same way: every process runs :meth:`MigrationSet.upgrade` on start, on SQLite
and PostgreSQL alike. The whole upgrade runs in one transaction that first takes a
database-wide lock (``pg_advisory_xact_lock`` on PostgreSQL; SQLite's write lock via
``BEGIN IMMEDIATE``), so when two processes start at once against an empty database one
creates the schema and the other waits, then finds it at head and does nothing. Both
databases have transactional DDL, so a failed upgrade leaves nothing half-made.

Within one process every run, of either schema, is serialised by one thread lock:
Alembic keeps the running migration's context in module globals.

A database created before migrations existed (by ``metadata.create_all``) has the
tables but no version table; it is stamped with the initial revision, whose schema is
exactly what ``create_all`` made, and then upgraded as usual.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect

from . import db

__all__ = ["MigrationSet"]

_in_process = threading.Lock()


@dataclass(frozen=True)
class MigrationSet:
    """One schema's scripts: where they are, what they build, how their runs are locked."""

    script_location: Path
    metadata: MetaData
    initial_revision: str
    lock_name: str
    """The advisory lock's name: distinct per schema, so a ledger and a resolver sharing
    one PostgreSQL database do not wait for each other."""
    marker_table: str
    """A table ``create_all`` made: present without the version table means "stamp"."""
    version_table: str = "alembic_version"

    def config(self, connection: Connection | None = None, *, url: str | None = None
               ) -> Config:
        """An Alembic :class:`Config` for the scripts.

        ``connection`` (online) or ``url`` (``--sql`` output) travel in ``attributes``,
        not in the ini-style options, so a password with ``%`` in it needs no escaping.
        """
        cfg = Config()
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        if connection is not None:
            cfg.attributes["connection"] = connection
        if url is not None:
            cfg.attributes["url"] = url
        return cfg

    def head_revision(self) -> str:
        """The newest revision among the scripts."""
        head = ScriptDirectory.from_config(self.config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self, conn: Connection) -> str | None:
        """The revision the database is at (``None``: not under migration control)."""
        ctx = MigrationContext.configure(conn, opts={"version_table": self.version_table})
        return ctx.get_current_revision()

    def _created_without_migrations(self, conn: Connection) -> bool:
        names = set(inspect(conn).get_table_names())
        return self.version_table not in names and self.marker_table in names

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Upgrade the database to ``revision`` (default: head) under the migration lock."""
        with _in_process, engine.begin() as conn:
            db.advisory_xact_lock(conn, self.lock_name)
            cfg = self.config(conn)
            if self._created_without_migrations(conn):
                command.stamp(cfg, self.initial_revision)
            command.upgrade(cfg, revision)

    def downgrade(self, engine: Engine, revision: str = "base") -> None:
        """Downgrade the database to ``revision`` (default: drop everything) under the lock."""
        with _in_process, engine.begin() as conn:
            db.advisory_xact_lock(conn, self.lock_name)
            command.downgrade(self.config(conn), revision)

    def schema_differences(self, conn: Connection) -> list[object]:
        """What Alembic's autogenerate would change to make the database match the
        metadata (empty when the migrations and the declared tables agree)."""
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "version_table": self.version_table})
        return list(compare_metadata(ctx, self.metadata))
