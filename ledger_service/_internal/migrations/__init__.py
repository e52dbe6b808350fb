"""The ledger's schema migrations (Alembic), configured in code: no ``alembic.ini`` to
ship or find.

:func:`upgrade` is what :class:`~ledger_service.ledger.Ledger` runs on every start; how
concurrent starts are kept apart, and how a database made by ``metadata.create_all``
before migrations existed is adopted, is :mod:`ledger_service._internal.migration_set`.

For developers: ``python -m ledger_service._internal.migrations --help`` (upgrade,
downgrade, current, and ``revision --autogenerate`` against a scratch database).
"""

from __future__ import annotations

from pathlib import Path

from ..db import metadata
from ..migration_set import MigrationSet

__all__ = ["INITIAL_REVISION", "MIGRATIONS", "alembic_config", "upgrade", "downgrade",
           "current_revision", "head_revision", "schema_differences"]

INITIAL_REVISION = "0001"
MIGRATIONS = MigrationSet(script_location=Path(__file__).resolve().parent, metadata=metadata,
                          initial_revision=INITIAL_REVISION, lock_name="migrate",
                          marker_table="log_state")

alembic_config = MIGRATIONS.config
head_revision = MIGRATIONS.head_revision
current_revision = MIGRATIONS.current_revision
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
schema_differences = MIGRATIONS.schema_differences
