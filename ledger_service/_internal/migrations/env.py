"""Alembic environment of the ledger schema.

Run through :mod:`ledger_service._internal.migrations`, which configures Alembic in code
(there is no ``alembic.ini``) and hands over either an open connection, already inside
the transaction that holds the migration lock, or, for ``--sql`` output, a URL.
"""

from __future__ import annotations

from alembic import context

from ledger_service._internal.db import metadata

config = context.config

if context.is_offline_mode():
    context.configure(url=config.attributes["url"], target_metadata=metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through ledger_service._internal.migrations, "
                           "which passes the connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batches.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
