"""The reviewer dossier shows a failed integrity check — never an error page — whatever an attacker wrote
into the ledger tables, and names the full verifier key it checked with (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.services.checkpoints import publish_now
from api.services.verification import verify_whole_ledger
from api.workers.local_pool import drain
from audit.note import verifier_key
from tests.api.attacks import behind_the_back
from tests.api.helpers import applicant_rows, sign_in_pages


@pytest.fixture
def recorded(client, services, registered):
    rows = applicant_rows(2)
    decisions = [{"decision_id": f"d-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows)]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    drain(services)
    publish_now(services)
    sign_in_pages(client, services)
    page = client.get("/review/decisions/d-0")
    assert page.status_code == 200 and "status-verified" in page.text
    key = services.keyring.active()
    assert verifier_key(key.name, key.public_key) in page.text  # the full key, not a 4-byte id
    return services


def _index(services, decision_id: str) -> int:
    with services.db.unit_of_work(write=False) as uow:
        return uow.decisions.get(decision_id).ledger_index


def as_text(services, index: int):
    def run(conn) -> None:
        if services.db.dialect == "postgresql":  # bytea keeps bytes: the owner changes the column's type
            conn.execute(
                text("ALTER TABLE ledger_entries ALTER COLUMN canonical TYPE text USING encode(canonical, 'escape')")
            )
        else:
            conn.execute(
                text("UPDATE ledger_entries SET canonical = CAST(canonical AS TEXT) WHERE idx = :i"), {"i": index}
            )

    return run


TAMPERS = {
    "canonical bytes stored as text": lambda s, i: as_text(s, i),
    "leaf hash NULL-length": lambda s, i: (
        lambda c: c.execute(text("UPDATE ledger_entries SET leaf_hash = :h WHERE idx = :i"), {"h": b"", "i": i})
    ),
    "entry bytes not JSON": lambda s, i: (
        lambda c: c.execute(
            text("UPDATE ledger_entries SET canonical = :b WHERE idx = :i"), {"b": b"\xff\xfe{", "i": i}
        )
    ),
    "checkpoint note garbage": lambda s, i: lambda c: c.execute(text("UPDATE ledger_checkpoints SET note = 'x'")),
    "checkpoint root wrong size": lambda s, i: (
        lambda c: c.execute(text("UPDATE ledger_checkpoints SET root_hash = :r"), {"r": b"\x01" * 7})
    ),
    "entry deleted": lambda s, i: lambda c: c.execute(text("DELETE FROM ledger_entries WHERE idx = :i"), {"i": i}),
}


@pytest.mark.parametrize("how", list(TAMPERS))
def test_the_dossier_shows_a_failed_check_not_an_error(recorded, client, how, capsys):
    index = _index(recorded, "d-0")
    behind_the_back(recorded, TAMPERS[how](recorded, index))
    page = client.get("/review/decisions/d-0")
    assert page.status_code == 200, page.text[:500]
    assert "status-failed" in page.text
    api = client.get("/v1/decisions/d-0")
    assert api.status_code < 500 or api.json()["error"]["code"] != "internal", api.text
    assert verify_whole_ledger(recorded, quiet=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED (ledger_") and "Traceback" not in err, err
