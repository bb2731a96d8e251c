"""`verify` is total: whatever an attacker writes into any column of any ledger table — text for bytes, NULL,
wrong lengths, garbage notes, non-integer or colliding indexes — gives a finding that names the table (and
the index where there is one), never an exception. Generated with hypothesis on SQLite and PostgreSQL.

Each example corrupts one value inside a transaction that is rolled back afterwards, on a database whose
ledger tables the attacker first "loosened" (constraints, types and triggers gone, as an owner can)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from audit.checkpoint import publish_checkpoint
from audit.entry import EntryDraft
from audit.keys import Keyring
from audit.ledger import Ledger
from audit.trust import ROTATION_TYPE, KeyRotation, VerifierKey
from audit.verify import verify_ledger
from storage.db import Database
from storage.ledger_store import SqlLedgerStore

ORIGIN = "rationale.test/ledger"
NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)

# table -> [(column, kind)], kind: int, text, bytes, or stamp (unsigned metadata: only garbage is detectable)
COLUMNS = {
    "ledger_entries": [
        ("idx", "int"),
        ("entry_type", "text"),
        ("recorded_at", "text"),
        ("canonical", "bytes"),
        ("leaf_hash", "bytes"),
    ],
    "ledger_nodes": [("level", "int"), ("idx", "int"), ("hash", "bytes")],
    "ledger_checkpoints": [
        ("tree_size", "int"),
        ("root_hash", "bytes"),
        ("note", "text"),
        ("key_id", "text"),
        ("published_at", "stamp"),
    ],
    "signing_keys": [("key_id", "text"), ("name", "text"), ("public_key", "bytes"), ("created_at", "stamp")],
}
KEYS = {"ledger_entries": ("idx",), "ledger_nodes": ("level", "idx"), "ledger_checkpoints": ("tree_size",)}
KEYS["signing_keys"] = ("key_id",)


def clock() -> datetime:
    return NOW


@pytest.fixture
def built(database: Database, tmp_path) -> tuple[Database, list[VerifierKey]]:
    """13 entries, a key rotation at index 6, checkpoints at 5, 9 and 13 (the last by the new key)."""
    keyring = Keyring(tmp_path / "keys", name=ORIGIN, clock=clock)
    first = keyring.ensure()
    ledger = Ledger(clock=clock)

    def grow(n: int) -> None:
        with database.unit_of_work() as uow:
            size = uow.ledger.size()
            ledger.append(uow.ledger, [EntryDraft("t", {"n": size + i, "s": "é"}) for i in range(n)])

    def publish() -> None:
        with database.unit_of_work() as uow:
            publish_checkpoint(uow.ledger, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)

    grow(5)
    publish()
    grow(1)
    nxt = keyring.prepare()
    rotation = KeyRotation.sign(previous=keyring.private(first.key_id), name=ORIGIN, next_key=VerifierKey.of(nxt))
    with database.unit_of_work() as uow:
        ledger.append(uow.ledger, [EntryDraft(ROTATION_TYPE, rotation.to_payload())])
        uow.ledger.add_key(nxt)
    grow(2)
    publish()  # by the first key still
    keyring.activate(nxt.key_id)
    grow(4)
    publish()
    anchors = [VerifierKey.of(first)]
    with database.unit_of_work(write=False) as uow:
        report = verify_ledger(uow.ledger, anchors=anchors)
        assert report.ok and report.checkpoints_checked == 3, report.failure
    return database, anchors


def loosen(conn: Any, dialect: str) -> None:
    """What a database owner can do: drop the triggers, the keys, the NOT NULLs and (SQLite) the types."""
    if dialect == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table, columns in COLUMNS.items():
            conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey"))
            for column, kind in columns:
                conn.execute(text(f'ALTER TABLE {table} ALTER COLUMN "{column}" DROP NOT NULL'))
                if kind in ("text", "stamp"):  # no length limits either
                    conn.execute(text(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE text'))
        return
    for table, columns in COLUMNS.items():
        names = ", ".join(c for c, _ in columns)
        conn.execute(text(f"CREATE TABLE {table}_loose ({names})"))
        conn.execute(text(f"INSERT INTO {table}_loose SELECT {names} FROM {table}"))
        conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text(f"ALTER TABLE {table}_loose RENAME TO {table}"))


def values(kind: str, dialect: str, original: Any) -> st.SearchStrategy[Any]:
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    texts = st.text(chars, max_size=60)
    blobs = st.binary(max_size=80)
    ints = st.integers(-(2**31), 2**31 - 1)
    near: list[st.SearchStrategy[Any]] = []
    if isinstance(original, bytes):
        near.append(
            st.builds(
                lambda i, b: original[:i] + bytes([b]) + original[i + 1 :],
                st.integers(0, len(original)),
                st.integers(0, 255),
            )
        )
        near.append(st.integers(0, len(original)).map(lambda i: original[:i]))
        if dialect == "sqlite":
            near.append(st.just(original.decode("utf-8", "replace")))  # the same bytes, stored as text
    elif isinstance(original, str) and kind != "stamp":
        near.append(st.builds(lambda i, c: original[:i] + c + original[i + 1 :], st.integers(0, len(original)), chars))
    elif isinstance(original, int):
        near.append(st.integers(-3, 40))
    if dialect == "postgresql":  # values keep their column's type there
        same = {"int": ints, "text": texts, "stamp": texts, "bytes": blobs}[kind]
        return st.one_of(st.none(), same, *near)
    floats = st.floats(allow_nan=False, allow_infinity=False)
    return st.one_of(st.none(), texts, blobs, ints, floats, *near)


def corrupt_and_verify(db: Database, anchors: list[VerifierKey], data: st.DataObject) -> None:
    table = data.draw(st.sampled_from(sorted(COLUMNS)), label="table")
    column, kind = data.draw(st.sampled_from(COLUMNS[table]), label="column")
    with db.engine.connect() as conn:
        trans = conn.begin()
        try:
            keys = KEYS[table]
            rows = conn.execute(
                text(f"SELECT {', '.join(keys)}, {column} FROM {table} ORDER BY {', '.join(keys)}")
            ).all()
            row = rows[data.draw(st.integers(0, len(rows) - 1), label="row")]
            original = row[-1]
            original = bytes(original) if isinstance(original, memoryview) else original
            value = data.draw(values(kind, db.dialect, original), label="value")
            assume(type(value) is not type(original) or value != original)
            loosen(conn, db.dialect)
            where = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(keys))
            params = {f"k{i}": v for i, v in enumerate(row[:-1])}
            conn.execute(text(f'UPDATE {table} SET "{column}" = :v WHERE {where}'), {**params, "v": value})
            report = verify_ledger(SqlLedgerStore(Session(bind=conn)), anchors=anchors)
        finally:
            trans.rollback()
    assert not report.ok, f"{table}.{column} = {value!r} went unnoticed"
    failure = report.failure
    import os

    if os.environ.get("SHOW"):
        print(db.dialect, table, column, repr(value)[:30], "->", failure.message[:150])
    assert failure is not None and failure.table == table, (table, column, value, failure)
    if table == "ledger_entries" and column != "idx":
        assert failure.position == row[0], failure


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_in_any_ledger_column_is_a_named_finding(built, data):
    db, anchors = built
    corrupt_and_verify(db, anchors, data)


def test_text_canonical_bytes_are_named_not_a_type_error(built):
    db, anchors = built
    if db.dialect != "sqlite":  # PostgreSQL keeps bytea bytes; the attacker must change the column type
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(
                text("ALTER TABLE ledger_entries ALTER COLUMN canonical TYPE text USING encode(canonical, 'escape')")
            )
    else:
        with db.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
            conn.execute(text("UPDATE ledger_entries SET canonical = CAST(canonical AS TEXT) WHERE idx = 3"))
    with db.unit_of_work(write=False) as uow:
        report = verify_ledger(uow.ledger, anchors=anchors)
    assert not report.ok and report.failure.table == "ledger_entries"
    assert report.failure.position == (3 if db.dialect == "sqlite" else 0)
    assert "canonical holds str" in report.failure.message
