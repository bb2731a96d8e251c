"""Witness cosignatures of published checkpoints (C2SP tlog-cosignature), append-only like the ledger.

Revision ID: 0003_witness
Revises: 0002_trust
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_witness"
down_revision = "0002_trust"
branch_labels = None
depends_on = None

TABLE = "witness_cosignatures"
MESSAGE = "ledger is append-only"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("witness_key", sa.String(length=300), nullable=False),
        sa.Column("cosigned_at", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tree_size", "witness_key", name="uq_witness_cosignatures_size_key"),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index("ix_witness_cosignatures_key_size", ["witness_key", "tree_size"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # rationale_append_only() is created by 0001
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION rationale_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION rationale_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {action} on {TABLE} refused'); END"
            )
        # REPLACE deletes a conflicting row without firing DELETE triggers (see 0002_trust)
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE} WHEN EXISTS (SELECT 1 FROM {TABLE} "
            "WHERE id = NEW.id OR (tree_size = NEW.tree_size AND witness_key = NEW.witness_key)) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: replacing a row of {TABLE} refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index("ix_witness_cosignatures_key_size")
    op.drop_table(TABLE)
