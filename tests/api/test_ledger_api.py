"""Ledger endpoints: checkpoint notes, entry bytes, RFC 9162 proofs that verify, and public keys."""

from __future__ import annotations

import base64
import hashlib

from api.services.checkpoints import publish_now
from api.settings import default_explain_processes
from audit.checkpoint import open_checkpoint
from audit.merkle import verify_consistency, verify_inclusion
from audit.port import StoredKey
from tests.api.helpers import applicant_rows


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def test_proofs_verify_against_the_signed_checkpoint(client, services, registered):
    assert client.get("/v1/ledger/checkpoint").status_code == 404
    rows = applicant_rows(5)
    client.post(
        "/v1/decisions",
        json={
            "decisions": [
                {"decision_id": f"l-{i}", "model": "credit@1", "inputs": r, "explain": []} for i, r in enumerate(rows)
            ]
        },
    )
    first = publish_now(services)
    client.post("/v1/decisions", json={"decision_id": "l-9", "model": "credit@1", "inputs": rows[0], "explain": []})
    second = publish_now(services)
    assert (first.tree_size, second.tree_size) == (6, 7)

    keys = client.get("/v1/ledger/keys").json()["keys"]
    assert len(keys) == 1 and keys[0]["verifier_key"].startswith("rationale.test/ledger+")
    stored_keys = [StoredKey(k["key_id"], k["name"], _b64(k["public_key"]), k["created_at"]) for k in keys]

    note = client.get("/v1/ledger/checkpoint", headers={"accept": "text/plain"}).text
    opened = open_checkpoint(note, keys=stored_keys, origin="rationale.test/ledger")
    assert opened.tree_size == 7
    as_json = client.get("/v1/ledger/checkpoint").json()
    assert as_json["note"] == note and _b64(as_json["root_hash"]) == opened.root_hash
    assert as_json["verifier_key"] == keys[0]["verifier_key"]  # the full key, not only its 4-byte id

    for index in range(7):
        entry = client.get(f"/v1/ledger/entries/{index}").json()
        leaf = hashlib.sha256(b"\x00" + _b64(entry["canonical"])).digest()
        assert leaf.hex() == entry["leaf_hash"]
        proof = client.get("/v1/ledger/proofs/inclusion", params={"index": index}).json()
        verify_inclusion(
            leaf=leaf, index=index, tree_size=7, proof=[_b64(p) for p in proof["proof"]], root=opened.root_hash
        )

    consistency = client.get("/v1/ledger/proofs/consistency", params={"first": 6, "second": 7}).json()
    verify_consistency(
        first=6,
        second=7,
        proof=[_b64(p) for p in consistency["proof"]],
        first_root=first.root_hash,
        second_root=opened.root_hash,
    )


def test_bad_proof_requests_are_4xx(client, registered):
    assert client.get("/v1/ledger/entries/99").status_code == 404
    assert client.get("/v1/ledger/entries/-1").status_code == 422
    bad = client.get("/v1/ledger/proofs/inclusion", params={"index": 0, "tree_size": 50})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "tree_size"
    assert client.get("/v1/ledger/proofs/inclusion", params={"index": 3, "tree_size": 1}).status_code == 422
    assert client.get("/v1/ledger/proofs/consistency", params={"first": 2, "second": 1}).status_code == 422
    assert client.get("/v1/ledger/proofs/consistency", params={"first": "x", "second": 1}).status_code == 422


def test_metrics_and_health(client, services, registered):
    text = client.get("/metrics").text
    assert "rationale_ledger_entries 1.0" in text
    assert "rationale_queue_depth" in text and "rationale_config_batch_size 512.0" in text
    processes = services.settings.explain_processes
    assert processes == default_explain_processes() >= 1  # one per core, the default
    assert "rationale_config_batch_window_seconds 0.1" in text
    assert f"rationale_config_explain_processes {float(processes)}" in text
    assert client.get("/healthz").json()["status"] == "ok"
