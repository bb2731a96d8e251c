"""Trust anchors live outside the database: an insider who rewrites history and signs it with a key of their
own, put into the keys table, is caught by `rationale verify`, the reviewer page and the API helpers —
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.services.checkpoints import publish_now
from api.services.verification import verify_whole_ledger
from api.workers.local_pool import drain
from audit.note import verifier_key
from tests.api.attacks import behind_the_back, rewrite_history
from tests.api.helpers import applicant_rows


@pytest.fixture
def ledger(client, services, registered):
    rows = applicant_rows(6)
    for first in (0, 3):
        part = enumerate(rows[first : first + 3], first)
        decisions = [{"decision_id": f"t-{i}", "model": "credit@1", "inputs": r} for i, r in part]
        assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
        drain(services)
        publish_now(services)
    assert verify_whole_ledger(services, quiet=True) == 0
    return services


def flip_label(payload: dict) -> None:
    payload["output"]["label"] = "approved" if payload["output"]["label"] != "approved" else "declined"


def test_a_consistent_rewrite_signed_with_a_fresh_key_fails_verification(ledger, capsys):
    stranger = Ed25519PrivateKey.generate()
    origin = ledger.settings.origin
    behind_the_back(
        ledger, lambda conn: rewrite_history(conn, index=1, edit=flip_label, origin=origin, signer=stranger)
    )
    capsys.readouterr()
    assert verify_whole_ledger(ledger, quiet=True) == 1
    err = capsys.readouterr().err
    forged = verifier_key(origin, stranger.public_key().public_bytes_raw())
    assert "FAILED" in err and forged in err, err
