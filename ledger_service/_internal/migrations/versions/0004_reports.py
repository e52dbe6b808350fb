"""Reports: each built report's RFC 8785 bytes, its hash and the log leaf it was
appended as (so its proof is served like an inventory's).

A database made by ``metadata.create_all`` (stamped with 0001 when adopted) may already
hold this table; it is created only where missing.

Revision ID: 0004
Revises: 0003
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "reports" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "reports",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("enterprise_id", sa.String(200), nullable=False),
        sa.Column("period_label", sa.String(32), nullable=False),
        sa.Column("report_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.UniqueConstraint("leaf_index"),
    )
    op.create_index("ix_reports_enterprise_id", "reports", ["enterprise_id"])


def downgrade() -> None:
    op.drop_index("ix_reports_enterprise_id", table_name="reports")
    op.drop_table("reports")
