"""Alembic environment of the resolver schema, run only through
:mod:`identifier_resolver._internal.migrations` (it passes the connection, already in
the transaction holding the migration lock)."""

from __future__ import annotations

from alembic import context

from identifier_resolver._internal.db import metadata
from identifier_resolver._internal.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run resolver migrations through "
                       "identifier_resolver._internal.migrations, which passes the connection")
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
