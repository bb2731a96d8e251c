"""The tamper suite: edit the ledger behind the application's back (triggers dropped or bypassed, raw SQL)
and show that `rationale verify` reports each change and names the place — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import text

from api.services.checkpoints import publish_now
from api.services.verification import verify_whole_ledger
from api.workers.local_pool import drain
from audit.entry import EntryDraft, StoredEntry, parse_timestamp
from tests.api.helpers import applicant_rows


@pytest.fixture
def ledger(client, services, registered):
    rows = applicant_rows(6)
    decisions = [{"decision_id": f"t-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows[:3])]
    client.post("/v1/decisions", json={"decisions": decisions})
    drain(services)
    publish_now(services)  # checkpoint at 7 entries
    decisions = [{"decision_id": f"t-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows[3:], 3)]
    client.post("/v1/decisions", json={"decisions": decisions})
    drain(services)
    publish_now(services)  # checkpoint at 13
    with services.db.unit_of_work(write=False) as uow:
        assert uow.ledger.size() == 13
    assert verify_whole_ledger(services, quiet=True) == 0
    return services


def behind_the_back(services, statements: Callable[[object], None]) -> None:
    """Run raw SQL with the append-only triggers out of the way, as an attacker with DB access would."""
    with services.db.engine.begin() as conn:
        if services.db.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for table in ("ledger_entries", "ledger_checkpoints", "ledger_nodes"):
                for action in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
        statements(conn)


def _read(conn, idx: int) -> tuple[bytes, bytes]:
    row = conn.execute(text("SELECT canonical, leaf_hash FROM ledger_entries WHERE idx = :i"), {"i": idx}).one()
    return bytes(row[0]), bytes(row[1])


def _set(conn, idx: int, canonical: bytes, leaf: bytes) -> None:
    conn.execute(
        text("UPDATE ledger_entries SET canonical = :c, leaf_hash = :h WHERE idx = :i"),
        {"c": canonical, "h": leaf, "i": idx},
    )


def modify_bytes(conn) -> None:
    canonical, leaf = _read(conn, 4)
    _set(conn, 4, canonical.replace(b'"type":"', b'"type":"x'), leaf)


def modify_consistently(conn) -> None:
    canonical, _ = _read(conn, 4)
    import json

    doc = json.loads(canonical)
    doc["payload"]["quality"]["additivity_error"] = 0.5  # entry 4 is the first explanation
    forged = StoredEntry.build(
        index=4, draft=EntryDraft(doc["type"], doc["payload"]), recorded_at=parse_timestamp(doc["recorded_at"])
    )
    _set(conn, 4, forged.canonical, forged.leaf_hash)


def delete_entry(conn) -> None:
    conn.execute(text("DELETE FROM ledger_entries WHERE idx = 4"))


def reorder_entries(conn) -> None:
    conn.execute(text("UPDATE ledger_entries SET idx = -1 WHERE idx = 4"))
    conn.execute(text("UPDATE ledger_entries SET idx = 4 WHERE idx = 5"))
    conn.execute(text("UPDATE ledger_entries SET idx = 5 WHERE idx = -1"))


def insert_entry(conn) -> None:
    for idx in range(12, 3, -1):
        conn.execute(text("UPDATE ledger_entries SET idx = :n WHERE idx = :o"), {"n": idx + 1, "o": idx})
    forged = StoredEntry.build(
        index=4,
        draft=EntryDraft("decision.recorded", {"forged": True}),
        recorded_at=parse_timestamp("2026-03-03T12:00:00.000000Z"),
    )
    conn.execute(
        text(
            "INSERT INTO ledger_entries (idx, entry_type, recorded_at, canonical, leaf_hash) VALUES (4, :t, :r, :c, :h)"
        ),
        {"t": forged.type, "r": forged.recorded_at, "c": forged.canonical, "h": forged.leaf_hash},
    )


def truncate_tail(conn) -> None:
    conn.execute(text("DELETE FROM ledger_entries WHERE idx >= 9"))


def edit_checkpoint(conn) -> None:
    conn.execute(text("UPDATE ledger_checkpoints SET note = REPLACE(note, '\n13\n', '\n12\n') WHERE tree_size = 13"))


def checkpoint_root(conn) -> None:
    conn.execute(text("UPDATE ledger_checkpoints SET root_hash = :r WHERE tree_size = 7"), {"r": b"\x00" * 32})


TAMPERS = {
    "modified entry bytes": (modify_bytes, "entry 4"),
    "entry rewritten with a matching leaf hash": (modify_consistently, "entries 4.."),
    "deleted entry": (delete_entry, "entry 4"),
    "reordered entries": (reorder_entries, "entry 4"),
    "inserted entry": (insert_entry, "entry 5"),  # where the displaced original now stands
    "truncated ledger": (truncate_tail, "checkpoint at tree size 13"),
    "edited checkpoint": (edit_checkpoint, "checkpoint 13"),
    "checkpoint root replaced": (checkpoint_root, "checkpoint 7"),
}


@pytest.mark.parametrize("how", list(TAMPERS))
def test_verify_reports_the_tampering_and_names_the_place(ledger, how, capsys):
    tamper, place = TAMPERS[how]
    behind_the_back(ledger, tamper)
    assert verify_whole_ledger(ledger, quiet=True) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and place in err, err


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_postgresql_truncate_behind_the_triggers_is_reported(ledger, capsys):
    behind_the_back(ledger, lambda conn: conn.execute(text("TRUNCATE ledger_entries")))
    assert verify_whole_ledger(ledger, quiet=True) == 1
    assert "checkpoint at tree size 7" in capsys.readouterr().err


def test_the_cli_names_the_modified_entry(ledger):
    behind_the_back(ledger, modify_bytes)
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": ledger.settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(ledger.settings.data_dir),
        "RATIONALE_ORIGIN": ledger.settings.origin,
    }
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--quiet"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "entry 4: stored bytes do not hash to its leaf hash" in result.stderr
