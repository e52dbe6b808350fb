"""Initial resolver schema: records, versions, links, the Merkle log, tree heads,
anchors and authorities; exactly what ``identifier_resolver._internal.db.metadata``
declared when migrations were introduced.

Revision ID: r0001
Revises:
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("updated_at", sa.String(20), nullable=False),
    )
    op.create_index("ix_resolver_records_type", "records", ["type", "status"])
    op.create_table(
        "record_versions",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", "version", name="pk_resolver_record_versions"),
    )
    op.create_table(
        "links",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("rel", sa.String(24), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("dir", sa.String(4), nullable=False),
        sa.PrimaryKeyConstraint("source", "rel", "target", name="pk_resolver_links"),
    )
    op.create_index("ix_resolver_links_target", "links", ["target", "dir"])
    op.create_table(
        "log_nodes",
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
        sa.Column("signed", sa.Text(), nullable=False),
    )
    op.create_table(
        "anchors",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
    )
    op.create_table(
        "authorities",
        sa.Column("prefix", sa.String(80), primary_key=True),
        sa.Column("chain", sa.Text(), nullable=False),
        sa.Column("installed_at", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    for table in ("authorities", "anchors", "tree_heads", "log_state", "log_nodes"):
        op.drop_table(table)
    op.drop_index("ix_resolver_links_target", table_name="links")
    op.drop_table("links")
    op.drop_table("record_versions")
    op.drop_index("ix_resolver_records_type", table_name="records")
    op.drop_table("records")
