"""The resolver node's schema migrations (Alembic), configured in code.

:func:`upgrade` runs on every :class:`~identifier_resolver.resolver.Resolver` start,
under the same database-wide lock discipline as the ledger's
(:mod:`ledger_service._internal.migration_set`). The revision is kept in
``resolver_alembic_version`` rather than Alembic's default table, so a resolver sharing
a PostgreSQL database with a ledger never reads the ledger's revision as its own.
"""

from __future__ import annotations

from pathlib import Path

from ledger_service._internal.migration_set import MigrationSet

from ..db import metadata

__all__ = ["INITIAL_REVISION", "VERSION_TABLE", "upgrade", "downgrade", "current_revision",
           "head_revision", "schema_differences"]

INITIAL_REVISION = "r0001"
VERSION_TABLE = "resolver_alembic_version"
MIGRATIONS = MigrationSet(script_location=Path(__file__).resolve().parent, metadata=metadata,
                          initial_revision=INITIAL_REVISION, lock_name="resolver-migrate",
                          marker_table="record_versions", version_table=VERSION_TABLE)

head_revision = MIGRATIONS.head_revision
current_revision = MIGRATIONS.current_revision
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
schema_differences = MIGRATIONS.schema_differences
