"""The storage contract, run on SQLite and PostgreSQL: schema, append-only triggers, gapless concurrent
appends, job leases and fencing, search, error translation, blobs."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from audit.entry import EntryDraft
from audit.ledger import Ledger
from audit.port import StoredCheckpoint, StoredKey
from storage.blobs import BlobStore
from storage.db import Database, LedgerAppendOnlyError
from storage.errors import BlobIntegrityError, ConflictError, SchemaOutdatedError, UnavailableError
from storage.records import NewJob

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def append(db: Database, n: int) -> list[int]:
    with db.unit_of_work() as uow:
        entries = Ledger(clock=clock).append(uow.ledger, [EntryDraft("t", {"i": i}) for i in range(n)])
    return [e.index for e in entries]


def seed_ledger(db: Database) -> None:
    """Rows in every append-only table, so that the triggers have something to refuse."""
    append(db, 4)
    with db.unit_of_work() as uow:
        uow.ledger.add_key(StoredKey("abcd1234", "origin", b"k" * 32, "2026-03-03T12:00:00.000000Z"))
        uow.ledger.append_checkpoint(StoredCheckpoint(4, b"r" * 32, "note", "abcd1234", "2026-03-03T12:00:00Z"))


def test_schema_is_current_and_an_empty_database_says_what_to_run(database, tmp_path):
    database.check_schema()
    empty = Database.from_url(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SchemaOutdatedError, match="rationale db upgrade"):
        empty.check_schema()
    empty.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET entry_type = 'x' WHERE idx = 0",
        "DELETE FROM ledger_entries WHERE idx = 0",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_nodes SET level = 9",
        "DELETE FROM ledger_checkpoints",
        "DELETE FROM signing_keys",
    ],
)
def test_ledger_tables_refuse_update_and_delete(database, statement):
    seed_ledger(database)
    with pytest.raises(LedgerAppendOnlyError), database.unit_of_work() as uow:
        uow.session.execute(text(statement))
    with database.unit_of_work(write=False) as uow:
        assert uow.ledger.size() == 4
        assert uow.ledger.read(0).type == "t"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE; see DELETE FROM
@pytest.mark.parametrize("table", ["ledger_entries", "ledger_nodes", "ledger_checkpoints", "signing_keys"])
def test_truncate_is_refused_on_postgresql(database, table):
    assert database.dialect == "postgresql"
    seed_ledger(database)
    with pytest.raises(LedgerAppendOnlyError), database.unit_of_work() as uow:
        uow.session.execute(text(f"TRUNCATE {table}"))
    with database.unit_of_work(write=False) as uow:
        assert uow.ledger.size() == 4


def test_concurrent_appends_are_gapless_and_ordered(database):
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                results.append(append(database, 5))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    indexes = sorted(i for batch in results for i in batch)
    assert indexes == list(range(500))
    for batch in results:
        assert batch == list(range(batch[0], batch[0] + 5))
    with database.unit_of_work(write=False) as uow:
        ledger = Ledger(clock=clock)
        from audit.merkle import root_from_leaves

        assert ledger.root(uow.ledger, 500) == root_from_leaves(uow.ledger.leaf_hashes(0, 500))


def _job(decision: str, method: str = "shap", model: int = 1) -> NewJob:
    return NewJob(
        id=uuid.uuid4().hex,
        decision_id=decision,
        model_version_id=model,
        method=method,
        params={},
        params_hash=f"h-{method}",
    )


def test_job_claims_lease_fence_and_reclaim(database):
    with database.unit_of_work() as uow:
        uow.jobs.add([_job("a"), _job("b"), _job("c", "lime"), _job("d", model=2)])
        again = uow.jobs.add([_job("a")])
        assert len(again) == 1 and again[0].state == "queued"
    with database.unit_of_work() as uow:
        batch = uow.jobs.claim(owner="w1", now=NOW, lease_seconds=60, limit=10)
    assert [j.decision_id for j in batch] == ["a", "b"]  # one model version and method per micro-batch
    assert all(j.state == "running" and j.attempts == 1 for j in batch)
    with database.unit_of_work() as uow:
        assert [j.decision_id for j in uow.jobs.claim(owner="w2", now=NOW, lease_seconds=60, limit=10)] == ["c"]
        assert [j.decision_id for j in uow.jobs.claim(owner="w2", now=NOW, lease_seconds=60, limit=10)] == ["d"]
        assert uow.jobs.claim(owner="w2", now=NOW, lease_seconds=60, limit=10) == []
    later = NOW + timedelta(seconds=61)
    with database.unit_of_work() as uow:  # w1 died: its lease lapses and w3 takes over
        taken = uow.jobs.claim(owner="w3", now=later, lease_seconds=60, limit=1)
        assert [j.decision_id for j in taken] == ["a"] and taken[0].attempts == 2
    with database.unit_of_work() as uow:
        assert uow.jobs.complete(job_id=batch[0].id, owner="w1", explanation_id="x", now=later) is False
        assert uow.jobs.complete(job_id=batch[0].id, owner="w3", explanation_id="x", now=later) is True
        assert uow.jobs.complete(job_id=batch[1].id, owner="w1", explanation_id="y", now=later) is True
        assert uow.jobs.depth() == 2
        assert uow.jobs.counts_by_state() == {"succeeded": 2, "running": 2}


def test_failed_jobs_retry_until_attempts_run_out(database):
    with database.unit_of_work() as uow:
        [job] = uow.jobs.add([_job("a")])
    for attempt in range(1, 4):
        with database.unit_of_work() as uow:
            [claimed] = uow.jobs.claim(owner="w", now=NOW, lease_seconds=5, limit=1)
            assert claimed.attempts == attempt
            assert uow.jobs.fail(job_id=job.id, owner="w", error="boom", now=NOW, retry=True)
    with database.unit_of_work(write=False) as uow:
        final = uow.jobs.get(job.id)
    assert final.state == "failed" and final.error == "boom"


def _decision(uow, i: int, *, subject: str, day: int) -> None:
    uow.decisions.add(
        decision_id=f"d{i}",
        model_version_id=1 + i % 2,
        model_ref="m@1",
        inputs={"x": i},
        output={"label": "a"},
        client_output=None,
        output_mismatch=False,
        subject_ref=subject,
        occurred_at=datetime(2026, 3, day, tzinfo=UTC),
        recorded_at=NOW,
        context={},
        body_sha256="s",
        ledger_index=i,
    )


def test_decision_search_and_keyset_cursor(database):
    with database.unit_of_work() as uow:
        for i in range(12):
            _decision(uow, i, subject=f"s{i % 3}", day=1 + i)
    with database.unit_of_work(write=False) as uow:
        page, cursor = uow.decisions.search(limit=5)
        assert [d.decision_id for d in page] == [f"d{i}" for i in range(5)]
        page2, _ = uow.decisions.search(limit=5, cursor=cursor)
        assert [d.decision_id for d in page2] == [f"d{i}" for i in range(5, 10)]
        by_model, _ = uow.decisions.search(model_version_ids=[2])
        assert [d.decision_id for d in by_model] == [f"d{i}" for i in range(1, 12, 2)]
        window, last = uow.decisions.search(
            since=datetime(2026, 3, 3, tzinfo=UTC), until=datetime(2026, 3, 6, tzinfo=UTC)
        )
        assert [d.decision_id for d in window] == ["d2", "d3", "d4"] and last is None
        assert uow.decisions.get("d3").occurred_at == datetime(2026, 3, 4, tzinfo=UTC)


def test_duplicate_decision_is_a_conflict_and_nothing_is_written(database):
    with database.unit_of_work() as uow:
        _decision(uow, 1, subject="s", day=1)
    with pytest.raises(ConflictError), database.unit_of_work() as uow:
        _decision(uow, 2, subject="s", day=1)
        _decision(uow, 1, subject="s", day=1)
    with database.unit_of_work(write=False) as uow:
        assert uow.decisions.count() == 1


def _decision_fields(i: int) -> dict:
    return {
        "decision_id": f"b{i}",
        "model_version_id": 1,
        "model_ref": "m@1",
        "inputs": {"x": i, "name": "Zoë", "nested": [1.5, None, {"k": True}]},
        "output": {"label": "a", "scores": {"a": 0.25, "b": 0.75}},
        "client_output": None,
        "output_mismatch": False,
        "subject_ref": None,
        "occurred_at": datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        "recorded_at": NOW,
        "context": {},
        "body_sha256": "s",
        "ledger_index": i,
    }


def test_bulk_inserted_rows_read_back_as_a_single_insert_stores_them(database):
    """add_many (COPY on PostgreSQL) stores exactly what the ORM's INSERT stores: JSON, JSON null, UTC."""
    with database.unit_of_work() as uow:
        uow.decisions.add(**_decision_fields(0))
        uow.decisions.add_many([_decision_fields(1), _decision_fields(2)])
    with database.unit_of_work(write=False) as uow:
        single, *bulk = (uow.decisions.get(f"b{i}") for i in range(3))
        nulls = uow.session.execute(text("SELECT count(*) FROM decisions WHERE client_output IS NULL")).scalar()
    for record in bulk:
        assert record.inputs["x"] == record.ledger_index
        assert replace(record, decision_id="b0", ledger_index=0, seq=single.seq, inputs=single.inputs) == single
    assert single.occurred_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert nulls in (0, 3)  # JSON null or SQL NULL, but the same for both ways of inserting


def test_a_duplicate_in_a_bulk_insert_is_a_conflict_and_nothing_is_written(database):
    with database.unit_of_work() as uow:
        uow.decisions.add_many([_decision_fields(1)])
    with pytest.raises(ConflictError), database.unit_of_work() as uow:
        uow.decisions.add_many([_decision_fields(2), _decision_fields(1)])
    with database.unit_of_work(write=False) as uow:
        assert uow.decisions.count() == 1


def test_unreachable_database_is_unavailable(tmp_path):
    db = Database.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(UnavailableError), db.unit_of_work(write=False) as uow:
        uow.ledger.size()
    db.dispose()


def test_blob_store_is_content_addressed_and_detects_corruption(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    address = blobs.put(b"model bytes")
    assert blobs.put(b"model bytes") == address
    assert blobs.get(address) == b"model bytes"
    blobs.path_for(address).write_bytes(b"evil bytes")
    with pytest.raises(BlobIntegrityError):
        blobs.get(address)
