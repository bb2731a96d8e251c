"""Migration 0007 on PostgreSQL: a decision's JSON columns become ``json`` holding RFC 8785 text, each row
re-spelled from its own values. A row edited before the upgrade must stay edited (the migration never copies
from the ledger), and rows recorded afterwards are written in the entry's spelling."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import text, update

from audit.canonical import canonical_bytes
from storage.db import Database
from storage.tables import DecisionRow
from tests.db_fixtures import _admin, _sqlalchemy_url, postgres_unreachable

ROW = {
    "decision_id": "m-1",
    "model_version_id": 1,
    "model_ref": "credit@1",
    "output_mismatch": False,
    "subject_ref": "s-1",
    "occurred_at": "2026-03-01T12:00:00+00:00",
    "recorded_at": "2026-03-01T12:00:01+00:00",
    "body_sha256": "0" * 64,
    "ledger_index": 0,
}
INPUTS = {"income": 40000.5, "age": 31, "purpose": "car", "note": "zoë", "tiny": 1e-07}


@pytest.fixture
def at_0006() -> Iterator[Database]:
    name = f"rationale_test_m0007_{uuid.uuid4().hex[:8]}"
    try:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        postgres_unreachable(exc)
    db = Database.from_url(_sqlalchemy_url(name))
    cfg = db.alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006_toolkit")
    yield db
    db.dispose()
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _column(db: Database, column: str, decision_id: str) -> tuple[str, str]:
    with db.engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT pg_typeof({column})::text, {column}::text FROM decisions WHERE decision_id = :d"),
            {"d": decision_id},
        ).one()
    return str(row[0]), str(row[1])


def test_0007_respells_rows_from_their_own_values(at_0006: Database) -> None:
    with at_0006.engine.begin() as conn:
        for decision_id, inputs in (("m-1", INPUTS), ("m-2", {**INPUTS, "age": 99})):  # m-2: edited by an insider
            conn.execute(
                text(
                    "INSERT INTO decisions (decision_id, model_version_id, model_ref, inputs, output, client_output, "
                    "output_mismatch, subject_ref, occurred_at, recorded_at, context, body_sha256, ledger_index) "
                    "VALUES (:decision_id, :model_version_id, :model_ref, CAST(:inputs AS jsonb), "
                    "CAST(:output AS jsonb), NULL, :output_mismatch, :subject_ref, :occurred_at, :recorded_at, "
                    "CAST('{}' AS jsonb), :body_sha256, :ledger_index)"
                ),
                {
                    **ROW,
                    "decision_id": decision_id,
                    "inputs": json.dumps(inputs),
                    "output": json.dumps({"label": "approved", "scores": {"approved": 0.75, "declined": 0.25}}),
                    "ledger_index": 0 if decision_id == "m-1" else 1,
                },
            )
    assert _column(at_0006, "inputs", "m-1")[0] == "jsonb"
    assert _column(at_0006, "inputs", "m-1")[1] != canonical_bytes(INPUTS).decode()  # jsonb's own spelling

    at_0006.upgrade()

    for column in ("inputs", "output", "context"):
        assert _column(at_0006, column, "m-1")[0] == "json"
    assert _column(at_0006, "inputs", "m-1")[1] == canonical_bytes(INPUTS).decode()
    assert json.loads(_column(at_0006, "inputs", "m-2")[1])["age"] == 99  # the edit survives the upgrade
    # what the service writes from now on is canonical: the engine's serializer, not json.dumps
    with at_0006.engine.begin() as conn:
        conn.execute(update(DecisionRow).where(DecisionRow.decision_id == "m-1").values(context={"b": 1, "a": 2.0}))
    assert _column(at_0006, "context", "m-1")[1] == '{"a":2,"b":1}'
