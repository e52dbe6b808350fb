"""Inventories: gateway signing keys and signed inventories appended to the log.

A database made by ``metadata.create_all`` (stamped with 0001 when adopted, see
:mod:`ledger_service._internal.migrations`) may already hold these tables; they are
created only where missing.

Revision ID: 0002
Revises: 0001
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _missing(table: str) -> bool:
    return table not in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    if _missing("gateway_keys"):
        _create_gateway_keys()
    if _missing("inventories"):
        _create_inventories()


def _create_gateway_keys() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("gateway_id", sa.String(200), sa.ForeignKey("gateways.id"), nullable=False),
        sa.Column("suite", sa.String(8), nullable=False),
        sa.Column("public_key", sa.String(130), nullable=False),
        sa.Column("valid_from", sa.String(20), nullable=False),
        sa.Column("revoked_at", sa.String(20), nullable=True),
    )
    op.create_index("ix_gateway_keys_gateway_id", "gateway_keys", ["gateway_id"])


def _create_inventories() -> None:
    op.create_table(
        "inventories",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("gateway_id", sa.String(200), sa.ForeignKey("gateways.id"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("period_label", sa.String(32), nullable=False),
        sa.Column("period_start", sa.String(20), nullable=False),
        sa.Column("period_end", sa.String(20), nullable=False),
        sa.Column("methodology_id", sa.String(32), nullable=False),
        sa.Column("rule_version", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.String(20), nullable=False),
        sa.UniqueConstraint("leaf_index"),
    )
    op.create_index("ix_inventories_gateway_id", "inventories", ["gateway_id"])


def downgrade() -> None:
    op.drop_index("ix_inventories_gateway_id", table_name="inventories")
    op.drop_table("inventories")
    op.drop_index("ix_gateway_keys_gateway_id", table_name="gateway_keys")
    op.drop_table("gateway_keys")
