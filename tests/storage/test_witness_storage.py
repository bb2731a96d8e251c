"""Witness state on SQLite and PostgreSQL: compare-and-set, survives a reopen (a restart), history is
append-only; the log's cosignature table refuses UPDATE and DELETE like the ledger tables."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from audit.witness import WitnessedHead
from storage.cosignatures import CosignatureRepository, StoredCosignature
from storage.db import Database, LedgerAppendOnlyError
from storage.witness_store import SqlWitnessStore


def head(size: int, root: bytes = b"\x01" * 32) -> WitnessedHead:
    return WitnessedHead(origin="log.example/a", tree_size=size, root_hash=root, note=f"n{size}\n", cosigned_at=size)


def test_compare_and_set_and_restart(db_url: str):
    store = SqlWitnessStore.open(db_url)
    assert store.latest("log.example/a") is None
    assert store.advance(old_size=0, head=head(3)) is None
    assert store.advance(old_size=0, head=head(1)) == 3  # a stale request cannot roll it back
    assert store.advance(old_size=2, head=head(9)) == 3
    assert store.advance(old_size=3, head=head(7, b"\x02" * 32)) is None
    store.close()
    reopened = SqlWitnessStore.open(db_url)  # what a restart sees
    latest = reopened.latest("log.example/a")
    assert latest == head(7, b"\x02" * 32)
    assert reopened.advance(old_size=3, head=head(8)) == 7
    with reopened.engine.connect() as conn:
        sizes = [r[0] for r in conn.execute(text("SELECT tree_size FROM witness_history ORDER BY id"))]
    assert sizes == [3, 7]
    for statement in ("UPDATE witness_history SET tree_size = 1", "DELETE FROM witness_history"):
        with pytest.raises(Exception, match="append-only"), reopened.engine.begin() as conn:
            conn.execute(text(statement))
    reopened.close()


def test_cosignature_rows_are_append_only(database: Database):
    row = StoredCosignature(
        tree_size=5,
        witness_key="w+00000000+BA==",
        cosigned_at=1,
        line="\u2014 w x\n",
        received_at="2026-01-01T00:00:00Z",
    )
    with database.unit_of_work() as uow:
        repo = CosignatureRepository(uow.session)
        assert repo.add(row) is True
        assert repo.add(row) is False
    with database.unit_of_work(write=False) as uow:
        repo = CosignatureRepository(uow.session)
        assert repo.for_size(5) == [row]
        assert repo.last_sizes() == {"w+00000000+BA==": 5}
    for statement in ("UPDATE witness_cosignatures SET tree_size = 6", "DELETE FROM witness_cosignatures"):
        with pytest.raises(LedgerAppendOnlyError), database.unit_of_work() as uow:
            uow.session.execute(text(statement))
