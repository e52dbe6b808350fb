"""API keys: principals (role, key hash, revocation) and the enterprises each may touch.

No foreign key to ``enterprises``: an enterprise's or gateway's key is issued before the
gateway registers the enterprise it names. A database made by ``metadata.create_all``
(stamped with 0001 when adopted) may already hold these tables; they are created only
where missing.

Revision ID: 0003
Revises: 0002
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _missing(table: str) -> bool:
    return table not in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    if _missing("api_keys"):
        _create_api_keys()
    if _missing("api_key_scopes"):
        _create_api_key_scopes()


def _create_api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.Column("revoked_at", sa.String(20), nullable=True),
    )


def _create_api_key_scopes() -> None:
    op.create_table(
        "api_key_scopes",
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.key_id"), primary_key=True),
        sa.Column("enterprise_id", sa.String(200), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("api_key_scopes")
    op.drop_table("api_keys")
