"""`verify` on a large ledger runs the row check in a second process: it must find exactly what the
sequential check finds, on SQLite and PostgreSQL, and must never fork where the child could not see what
the parent sees (an in-memory database, or sessions bound to one uncommitted transaction)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from api.services.verification import check_everything
from storage.db import Database
from storage.tables import DecisionRow, OutcomeRow
from tests.api.test_rows_bound import recorded  # noqa: F401  (fixture)

EVERY_SIZE = 0  # parallel_from: fork whatever the ledger's size
NEVER = 10**12


def _edit(services: Any, row_class: Any, where: Any, **values: Any) -> None:
    table = row_class.__table__
    with services.db.engine.begin() as conn:
        conn.execute(update(table).where(where(table)).values(**values))


@pytest.mark.parametrize("edit", ["none", "subject_ref", "outcome label"])
def test_parallel_and_sequential_checks_agree(services, recorded, edit) -> None:  # noqa: F811
    if edit == "subject_ref":
        _edit(services, DecisionRow, lambda t: t.c.decision_id == "r-1", subject_ref="someone-else")
    elif edit == "outcome label":
        _edit(services, OutcomeRow, lambda t: t.c.decision_id == "r-0", label="declined")
    assert services.db.shared_with_other_processes
    sequential = check_everything(services.db, anchors=[], parallel_from=NEVER)
    parallel = check_everything(services.db, anchors=[], parallel_from=EVERY_SIZE)
    assert parallel.report == sequential.report
    assert (parallel.row_count, parallel.row_failures) == (sequential.row_count, sequential.row_failures)
    assert parallel.row_count == (0 if edit == "none" else 1)
    if edit != "none":
        [failure] = parallel.row_failures
        assert ("decisions" if edit == "subject_ref" else "outcomes") in failure.message


def test_the_verifying_process_takes_pieces_of_the_decision_prefilter(services, recorded, monkeypatch) -> None:  # noqa: F811
    """Once its walk is done, the verifying process shares the row check's decision prefilter; what its pieces
    find must reach the report. The row check process is slowed so the verifying process takes most pieces."""
    import time

    from api.services import verification
    from storage.rowscan import decision_candidates

    parent, taken = os.getpid(), []

    def candidates(session, refs, **kwargs):
        if os.getpid() != parent:
            time.sleep(0.5)
        else:
            taken.append(kwargs["seq_range"])
        return decision_candidates(session, refs, **kwargs)

    monkeypatch.setattr(verification, "decision_candidates", candidates)
    _edit(services, DecisionRow, lambda t: t.c.decision_id == "r-1", subject_ref="someone-else")
    sequential = check_everything(services.db, anchors=[], parallel_from=NEVER)
    parallel = check_everything(services.db, anchors=[], parallel_from=EVERY_SIZE, share_piece=1)
    assert taken, "the verifying process took no piece"
    assert (parallel.row_count, parallel.row_failures) == (sequential.row_count, sequential.row_failures)
    assert parallel.row_count == 1 and "decision_id='r-1'" in parallel.row_failures[0].message


def test_never_forks_where_the_child_would_read_other_data(database: Database, tmp_path) -> None:
    assert database.shared_with_other_processes
    assert not Database.from_url("sqlite://").shared_with_other_processes
    with database.engine.connect() as conn:
        joined = Database(database.engine)
        joined._sessions = sessionmaker(bind=conn, join_transaction_mode="create_savepoint")
        assert not joined.shared_with_other_processes  # sessions on one open transaction: the adversary harness


def test_a_row_check_process_that_dies_leaves_the_check_to_the_parent(services, recorded, monkeypatch) -> None:  # noqa: F811
    from api.services import verification

    _edit(services, DecisionRow, lambda t: t.c.decision_id == "r-1", subject_ref="someone-else")
    monkeypatch.setattr(verification, "_row_check_child", lambda *args: os._exit(9))  # killed before answering
    whole = check_everything(services.db, anchors=[], parallel_from=EVERY_SIZE)
    assert whole.report.ok and whole.row_count == 1 and "decisions" in whole.row_failures[0].message
