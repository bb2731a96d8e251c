"""Deployments: an index of the ``model.deployment`` ledger entries (which version of a model was live when).

Revision ID: 0006_toolkit
Revises: 0005_access
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_toolkit"
down_revision = "0005_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deployments_model", "deployments", ["model_name", "effective_at"])


def downgrade() -> None:
    op.drop_index("ix_deployments_model", table_name="deployments")
    op.drop_table("deployments")
