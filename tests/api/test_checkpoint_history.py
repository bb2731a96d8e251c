"""Checkpoint history: every published checkpoint is kept and chained; a client that holds an old checkpoint
asks the server for a consistency proof (GET /v1/ledger/proofs/consistency) and detects a log that was rolled
back or rewritten — even by an insider holding the signing key — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text

from api.services.checkpoints import publish_now
from api.services.verification import verify_whole_ledger
from api.workers.local_pool import drain
from audit.checkpoint import OpenedCheckpoint, check_extension, open_checkpoint
from audit.errors import LogSplitError
from audit.memory_store import MemoryLedgerStore
from audit.tree import nodes_completed
from tests.api.attacks import behind_the_back, rewrite_history
from tests.api.helpers import applicant_rows


def log(client, services, first: int, n: int) -> None:
    rows = applicant_rows(n, seed=first)
    decisions = [{"decision_id": f"h-{first + i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows)]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    drain(services)
    publish_now(services)


class Client:
    """An auditor who pinned the deployment's key and keeps the last checkpoint they saw."""

    def __init__(self, http, services) -> None:
        self.http = http
        self.keys = services.keyring.all_public()  # pinned out of band
        self.origin = services.settings.origin

    def fetch(self) -> OpenedCheckpoint:
        note = self.http.get("/v1/ledger/checkpoint", headers={"accept": "text/plain"}).text
        return open_checkpoint(note, keys=self.keys, origin=self.origin)

    def check(self, held: OpenedCheckpoint) -> OpenedCheckpoint:
        latest = self.fetch()
        proof: list[bytes] = []
        if latest.tree_size > held.tree_size:
            served = self.http.get(
                "/v1/ledger/proofs/consistency", params={"first": held.tree_size, "second": latest.tree_size}
            ).json()
            proof = [base64.b64decode(p) for p in served["proof"]]
        check_extension(held, latest, proof)
        return latest


@pytest.fixture
def history(client, services, registered):
    log(client, services, 0, 3)
    log(client, services, 3, 3)
    return services


def test_every_checkpoint_is_kept_and_an_honest_log_extends_the_held_one(history, client):
    auditor = Client(client, history)
    held = auditor.fetch()
    log(client, history, 6, 2)
    log(client, history, 8, 2)
    latest = auditor.check(held)
    assert latest.tree_size > held.tree_size
    with history.db.unit_of_work(write=False) as uow:
        sizes = [c.tree_size for c in uow.ledger.iter_checkpoints()]
    assert sizes == sorted(sizes) and len(sizes) == 4 and sizes[-1] == latest.tree_size
    assert verify_whole_ledger(history, quiet=True) == 0


def test_a_rewrite_signed_with_the_real_key_is_detected_by_a_client_holding_an_old_checkpoint(history, client):
    auditor = Client(client, history)
    held = auditor.fetch()
    log(client, history, 6, 2)
    signer = history.keyring.private()  # the insider has the signing key too

    def flip(payload: dict) -> None:
        payload["output"]["label"] = "forged"

    behind_the_back(
        history,
        lambda conn: rewrite_history(
            conn, index=1, edit=flip, origin=history.settings.origin, signer=signer, insert_key=False
        ),
    )
    assert auditor.fetch().tree_size > held.tree_size  # a validly signed, larger checkpoint...
    with pytest.raises(LogSplitError, match="does not extend the held checkpoint"):
        auditor.check(held)  # ...that does not extend what the auditor saw


def test_a_rollback_is_detected_by_a_client_holding_a_later_checkpoint(history, client):
    auditor = Client(client, history)
    log(client, history, 6, 2)
    held = auditor.fetch()
    with history.db.unit_of_work(write=False) as uow:
        sizes = [c.tree_size for c in uow.ledger.iter_checkpoints()]
    keep = sizes[1]

    def roll_back(conn) -> None:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx >= :n"), {"n": keep})
        conn.execute(text("DELETE FROM ledger_checkpoints WHERE tree_size > :n"), {"n": keep})
        conn.execute(text("DELETE FROM ledger_nodes"))  # the tree of the kept prefix is rebuilt below

    behind_the_back(history, roll_back)
    with history.db.engine.begin() as conn:
        leaves = [bytes(h) for h in conn.execute(text("SELECT leaf_hash FROM ledger_entries ORDER BY idx")).scalars()]
        nodes = nodes_completed(0, leaves, MemoryLedgerStore())
        conn.execute(
            text("INSERT INTO ledger_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
            [{"l": lvl, "i": i, "h": h} for lvl, i, h in nodes],
        )
    assert auditor.fetch().tree_size == keep
    with pytest.raises(LogSplitError, match="rolled back"):
        auditor.check(held)
    # the rolled-back log grows again past the held size, signed by the real key: still not an extension
    log(client, history, 20, 4)
    assert auditor.fetch().tree_size > held.tree_size
    with pytest.raises(LogSplitError, match="does not extend the held checkpoint"):
        auditor.check(held)
