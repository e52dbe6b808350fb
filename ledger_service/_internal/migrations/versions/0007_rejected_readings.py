"""Rejected readings: each reading of a registered device refused for a bad signature, a
wrong domain, or a key that is unknown, revoked or not yet valid, once per (device,
sequence number, reason).

The ledger stores nothing of a refused reading, so without this table the financing
code's ``signature_failures`` rule had nothing to count. Only the claim's device,
sequence number and measurement time are kept: enough to count per enterprise and
period, nothing a forger could use.

Revision ID: 0007
Revises: 0006
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "rejected_readings" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "rejected_readings",
        sa.Column("device_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("measured_at", sa.String(20), nullable=False),
        sa.Column("received_at", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rejected_readings")
