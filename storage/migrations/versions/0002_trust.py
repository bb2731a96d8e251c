"""Trust: refuse replacing inserts on the ledger tables (SQLite), and index key-rotation entries.

SQLite's REPLACE conflict resolution (``REPLACE INTO``, ``INSERT OR REPLACE``) deletes the conflicting row
without firing DELETE triggers unless the connection turns ``recursive_triggers`` on — which an attacker's
own connection decides. A BEFORE INSERT trigger fires before conflict resolution, so refusing an insert
whose primary key already exists closes that door for every form. PostgreSQL has no REPLACE; its upserts
(``ON CONFLICT DO UPDATE``, ``MERGE``) go through the UPDATE/DELETE triggers of 0001.

The partial index lets a verifier find the ``key.rotated`` entries without scanning the ledger; it holds
only those rows, so appends of other entries do not pay for it.

Revision ID: 0002_trust
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002_trust"
down_revision = "0001"
branch_labels = None
depends_on = None

MESSAGE = "ledger is append-only"
PRIMARY_KEYS = {
    "ledger_entries": ("idx",),
    "ledger_nodes": ("level", "idx"),
    "ledger_checkpoints": ("tree_size",),
    "signing_keys": ("key_id",),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, keys in PRIMARY_KEYS.items():
            match = " AND ".join(f"{k} = NEW.{k}" for k in keys)
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {match}) "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: replacing a row of {table} refused'); END"
            )
    op.execute("CREATE INDEX ix_ledger_entries_rotations ON ledger_entries (idx) WHERE entry_type = 'key.rotated'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_ledger_entries_rotations")
    if op.get_bind().dialect.name == "sqlite":
        for table in PRIMARY_KEYS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
