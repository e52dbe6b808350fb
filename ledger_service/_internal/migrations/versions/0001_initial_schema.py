"""Initial schema: registry, readings, the Merkle log, tree heads and anchors.

Exactly what ``ledger_service._internal.db.metadata`` declared when migrations were
introduced (the same names, types, constraints and indexes), so a database made earlier
by ``metadata.create_all`` is simply stamped with this revision.

Revision ID: 0001
Revises:
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enterprises",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("enterprise_id", sa.String(200), sa.ForeignKey("enterprises.id"),
                  nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("enterprise_id", sa.String(200), sa.ForeignKey("enterprises.id"),
                  nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("site_id", sa.String(200), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("gateway_id", sa.String(200), sa.ForeignKey("gateways.id"), nullable=True),
        sa.Column("quantity", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("serial", sa.Text(), nullable=False),
        sa.Column("calibration", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "device_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("device_id", sa.String(200), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("suite", sa.String(8), nullable=False),
        sa.Column("public_key", sa.String(130), nullable=False),
        sa.Column("valid_from", sa.String(20), nullable=False),
        sa.Column("revoked_at", sa.String(20), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_device_keys_device_id", "device_keys", ["device_id"])
    op.create_table(
        "readings",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("device_id", sa.String(200), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_data", sa.LargeBinary(), nullable=False),
        sa.Column("measured_at", sa.String(20), nullable=False),
        sa.Column("received_at", sa.String(20), nullable=False),
        sa.Column("gap_before", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("leaf_index"),
        sa.UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),
    )
    op.create_index("ix_readings_device_measured", "readings", ["device_id", "measured_at"])
    op.create_table(
        "merkle_nodes",
        sa.Column("node", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("log_id", sa.String(200), nullable=False),
        sa.Column("suite", sa.String(8), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "tree_heads",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
    )
    op.create_table(
        "anchors",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(66), nullable=True),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("submitter", sa.String(42), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.String(20), nullable=False),
        sa.UniqueConstraint("tx_hash"),
    )
    op.create_index("ix_anchors_tree_size", "anchors", ["tree_size"])
    op.create_index("ix_anchors_status", "anchors", ["status"])


def downgrade() -> None:
    op.drop_index("ix_anchors_status", table_name="anchors")
    op.drop_index("ix_anchors_tree_size", table_name="anchors")
    op.drop_table("anchors")
    op.drop_table("tree_heads")
    op.drop_table("log_state")
    op.drop_table("merkle_nodes")
    op.drop_index("ix_readings_device_measured", table_name="readings")
    op.drop_table("readings")
    op.drop_index("ix_device_keys_device_id", table_name="device_keys")
    op.drop_table("device_keys")
    op.drop_table("devices")
    op.drop_table("gateways")
    op.drop_table("sites")
    op.drop_table("enterprises")
