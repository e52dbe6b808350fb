"""API keys name their party: the organisation (a bank, a verifier) a key belongs to.

A bank's loan projects and a verifier's verifications belong to the organisation, not
to one key, so a second key of the same bank or verifier (a rotation, a second
employee) reaches them and another organisation's key does not. Nullable: keys of
enterprises, gateways, buyers and associations name none, and keys issued before this
revision have none (a bank or verifier key without a party is refused where its party
decides, until it is replaced by one that names it).

A database made by ``metadata.create_all`` and adopted at 0001 already has the column;
it is added only where missing. SQLite cannot drop a column in place: the environment
renders batch operations there, so the downgrade rebuilds the table.

Revision ID: 0006
Revises: 0005
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _has_party() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("api_keys")
    return any(c["name"] == "party" for c in columns)


def upgrade() -> None:
    if _has_party():
        return
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("party", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("party")
