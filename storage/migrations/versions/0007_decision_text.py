"""A decision's JSON columns keep their exact text on PostgreSQL (``json``, not ``jsonb``).

storage.db writes them as RFC 8785 text, the spelling of the ledger's entries, so `rationale verify` can
compare a decision row with its entry's bytes as text rather than parse every entry as jsonb
(storage/rowscan.py). SQLite's JSON columns are text already: nothing changes there.

Existing rows are re-spelled from their *own* values, never from the ledger: a row an attacker edited before
the upgrade stays edited, and `verify` still names it.

Revision ID: 0007_decision_text
Revises: 0006_toolkit
"""

from __future__ import annotations

import json

from alembic import op
from sqlalchemy import text

from audit.canonical import canonical_bytes
from audit.errors import NonCanonicalValueError

revision = "0007_decision_text"
down_revision = "0006_toolkit"
branch_labels = None
depends_on = None

COLUMNS = ("inputs", "output", "client_output", "context")
BATCH = 5_000


def _respelled(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return canonical_bytes(json.loads(value)).decode("utf-8")
    except (ValueError, NonCanonicalValueError):
        return value  # kept as it stands; verify compares it the slow way


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.execute(f"ALTER TABLE decisions ALTER COLUMN {column} TYPE json USING {column}::text::json")
    listed = ", ".join(f"{c}::text" for c in COLUMNS)
    assigned = ", ".join(f"{c} = CAST(:{c} AS json)" for c in COLUMNS)
    last = 0
    while True:
        rows = bind.execute(
            text(f"SELECT seq, {listed} FROM decisions WHERE seq > :last ORDER BY seq LIMIT {BATCH}"), {"last": last}
        ).all()
        changed = [
            {"seq": row[0], **{c: _respelled(v) for c, v in zip(COLUMNS, row[1:], strict=True)}}
            for row in rows
        ]
        if changed:
            bind.execute(text(f"UPDATE decisions SET {assigned} WHERE seq = :seq"), changed)
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.execute(f"ALTER TABLE decisions ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
