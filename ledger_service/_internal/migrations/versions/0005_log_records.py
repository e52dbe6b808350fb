"""Log records: signed statements that are not readings, inventories or reports
(verification openings and attestations, data listings, grants, revocations and
reads), each the RFC 8785 bytes of one document appended to the log as one leaf.

Revision ID: 0005
Revises: 0004
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "log_records" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "log_records",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(200), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.UniqueConstraint("leaf_index"),
    )
    op.create_index("ix_log_records_enterprise_id", "log_records", ["enterprise_id"])


def downgrade() -> None:
    op.drop_index("ix_log_records_enterprise_id", table_name="log_records")
    op.drop_table("log_records")
