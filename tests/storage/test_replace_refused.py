"""Every statement form that replaces or upserts a row is refused on the ledger tables, on SQLite and
PostgreSQL — not only UPDATE and DELETE. SQLite's REPLACE conflict resolution deletes the old row without
firing delete triggers (unless the attacker's own connection turns recursive_triggers on), so on SQLite
these forms overwrote ledger rows before migration 0002_trust."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import exc, text

from audit.entry import EntryDraft
from audit.ledger import Ledger
from audit.port import StoredCheckpoint, StoredKey
from storage.db import Database

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)

# table -> (primary-key values of a stored row, a replacement value for one other column, that column)
ROWS = {
    "ledger_entries": ({"idx": 0}, "canonical", b'{"forged":true}'),
    "ledger_nodes": ({"level": 1, "idx": 0}, "hash", b"\xff" * 32),
    "ledger_checkpoints": ({"tree_size": 4}, "note", "forged note"),
    "signing_keys": ({"key_id": "abcd1234"}, "public_key", b"\xee" * 32),
    "witness_cosignatures": ({"id": 1}, "line", "forged cosignature line"),
}
OTHER = {  # the remaining NOT NULL columns of a full row
    "ledger_entries": {"entry_type": "t", "recorded_at": "2026-03-03T12:00:00.000000Z", "leaf_hash": b"\x00" * 32},
    "ledger_nodes": {},
    "ledger_checkpoints": {"root_hash": b"r" * 32, "key_id": "abcd1234", "published_at": "2026-03-03T12:00:00Z"},
    "signing_keys": {"name": "origin", "created_at": "2026-03-03T12:00:00.000000Z"},
    "witness_cosignatures": {"tree_size": 4, "witness_key": "w", "cosigned_at": 1, "received_at": "2026-03-03"},
}


def _insert(verb: str, table: str, suffix: str = "") -> tuple[str, dict[str, object]]:
    keys, column, value = ROWS[table]
    values = {**keys, column: value, **OTHER[table]}
    names = ", ".join(values)
    params = ", ".join(f":{n}" for n in values)
    return f"{verb} {table} ({names}) VALUES ({params}){suffix}", values


def _upsert(table: str, target: bool) -> tuple[str, dict[str, object]]:
    keys, column, _ = ROWS[table]
    conflict = f"({', '.join(keys)})" if target else ""
    return _insert("INSERT INTO", table, f" ON CONFLICT {conflict} DO UPDATE SET {column} = excluded.{column}")


def _merge(table: str, action: str) -> tuple[str, dict[str, object]]:
    keys, column, value = ROWS[table]
    on = " AND ".join(f"t.{k} = :{k}" for k in keys)
    then = f"UPDATE SET {column} = :{column}" if action == "update" else "DELETE"
    return f"MERGE INTO {table} t USING (SELECT 1) s ON {on} WHEN MATCHED THEN {then}", {**keys, column: value}


FORMS = {
    "sqlite": {
        "REPLACE INTO": lambda t: _insert("REPLACE INTO", t),
        "INSERT OR REPLACE": lambda t: _insert("INSERT OR REPLACE INTO", t),
        "INSERT ON CONFLICT (pk) DO UPDATE": lambda t: _upsert(t, True),
        "INSERT ON CONFLICT DO UPDATE": lambda t: _upsert(t, False),
        "INSERT OR REPLACE, recursive_triggers on": lambda t: _insert("INSERT OR REPLACE INTO", t),
        "UPDATE OR REPLACE": lambda t: (f"UPDATE OR REPLACE {t} SET {ROWS[t][1]} = :v", {"v": ROWS[t][2]}),
    },
    "postgresql": {
        "INSERT ON CONFLICT (pk) DO UPDATE": lambda t: _upsert(t, True),
        "MERGE WHEN MATCHED UPDATE": lambda t: _merge(t, "update"),
        "MERGE WHEN MATCHED DELETE": lambda t: _merge(t, "delete"),
    },
}
CASES = [(dialect, form, table) for dialect, forms in FORMS.items() for form in forms for table in ROWS]


def seed(db: Database) -> None:
    with db.unit_of_work() as uow:
        Ledger(clock=lambda: NOW).append(uow.ledger, [EntryDraft("t", {"i": i}) for i in range(4)])
        uow.ledger.add_key(StoredKey("abcd1234", "origin", b"k" * 32, "2026-03-03T12:00:00.000000Z"))
        uow.ledger.append_checkpoint(StoredCheckpoint(4, b"r" * 32, "note", "abcd1234", "2026-03-03T12:00:00Z"))
    with db.engine.begin() as conn:
        statement, values = _insert("INSERT INTO", "witness_cosignatures")
        conn.execute(text(statement), {**values, "line": "cosignature line"})


def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    with db.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2"))] for t in ROWS}


@pytest.mark.parametrize(
    ("db_url", "form", "table"), CASES, ids=[f"{d}-{f}-{t}" for d, f, t in CASES], indirect=["db_url"]
)
def test_replacing_forms_are_refused(database, form, table):
    """Each form runs on the database whose dialect has it."""
    seed(database)
    before = snapshot(database)
    statement, params = FORMS[database.dialect][form](table)
    with pytest.raises(exc.DBAPIError, match="append-only"), database.engine.begin() as conn:
        if "recursive_triggers" in form:
            conn.exec_driver_sql("PRAGMA recursive_triggers = ON")
        conn.execute(text(statement), params)
    assert snapshot(database) == before
