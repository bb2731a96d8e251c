"""Access control: API keys (hashes only), the access index, export owners and audiences.

Revision ID: 0005_access
Revises: 0003_witness
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_access"
down_revision = "0003_witness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "access_index",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("subject_ref", sa.String(length=200), nullable=True),
        sa.Column("decision_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_index", schema=None) as batch_op:
        batch_op.create_index("ix_access_index_subject", ["subject_ref"], unique=False)
        batch_op.create_index("ix_access_index_decision", ["decision_id"], unique=False)
    op.create_table(
        "export_owners",
        sa.Column("export_id", sa.String(length=64), nullable=False),
        sa.Column("owner_key_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("export_id"),
    )
    op.create_table(
        "export_audience",
        sa.Column("export_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("export_id", "key_id"),
    )
    with op.batch_alter_table("export_audience", schema=None) as batch_op:
        batch_op.create_index("ix_export_audience_key", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_table("export_audience")
    op.drop_table("export_owners")
    op.drop_table("access_index")
    op.drop_table("api_keys")
