"""Witness settings are checked at start; an insider's forged cosignature row is neither served nor counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from api.container import build_services
from api.services.checkpoints import publish_now
from api.services.witnessing import check_ledger_quorum, parse_witness_keys, parse_witnesses, verify_witness_quorum
from api.settings import Settings
from audit.cosignature import cosign, cosigner_key, split_note
from audit.entry import EntryDraft
from audit.note import verifier_key
from storage.cosignatures import CosignatureRepository, StoredCosignature

W1 = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
W2 = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
K1 = cosigner_key("w1.example/witness", W1.public_key().public_bytes_raw())
K2 = cosigner_key("w2.example/witness", W2.public_key().public_bytes_raw())


def test_witness_settings_parse_or_refuse_to_start():
    endpoints = parse_witnesses(f"{K1} http://127.0.0.1:1/w1,\n {K2} https://w2.example/ ")
    assert [(str(e.key), e.url) for e in endpoints] == [
        (str(K1), "http://127.0.0.1:1/w1"),
        (str(K2), "https://w2.example"),
    ]
    assert parse_witness_keys(f"{K1}, {K2} {K1}") == [K1, K2]
    for bad in (f"{K1}", f"{K1} ftp://x", "nonsense http://x", f"{K1} http://a,{K1} http://b"):
        with pytest.raises(ValidationError):
            Settings(witnesses=bad)
    log_key = verifier_key(K1.name, K1.public_key)  # a type-0x01 (log) key is not a witness key
    with pytest.raises(ValidationError):
        Settings(witness_keys=log_key)


def test_forged_cosignature_rows_are_not_served_and_fail_verify(tmp_path, db_url, capsys):
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "d",
        database_url=db_url,
        workers=0,
        origin="rationale.test/ledger",
        gc_freeze=False,
        witness_keys=f"{K1} {K2}",
    )
    services = build_services(settings)
    try:
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": i}) for i in range(3)])
        checkpoint = publish_now(services)
        assert checkpoint is not None
        body = split_note(checkpoint.note)[0]
        good = cosign(body, name=K1.name, private_key=W1, timestamp=1800000000)
        # the insider has database write access but not witness 2's key: a line with its name and key ID
        # and a signature by some other key
        forged = cosign(body, name=K2.name, private_key=Ed25519PrivateKey.generate(), timestamp=1800000000)
        forged = forged.split(" ")[0] + " " + forged.split(" ")[1] + " " + _with_key_id(forged, K2)
        now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
        with services.db.unit_of_work() as uow:
            repo = CosignatureRepository(uow.session)
            repo.add(StoredCosignature(checkpoint.tree_size, str(K1), 1800000000, good, now))
            repo.add(StoredCosignature(checkpoint.tree_size, str(K2), 1800000000, forged, now))
        # verify: the forged line is named; witness 1 alone holds a quorum of 1
        report = check_ledger_quorum(services, keys=[K1, K2], quorum=1)
        assert not report.ok and "invalid cosignature" in report.message
        assert verify_witness_quorum(services, keys=[str(K1)], quorum=1) == 0
        assert verify_witness_quorum(services, keys=[str(K1), str(K2)], quorum=2) == 1
        assert verify_witness_quorum(services, keys=["not-a-key"], quorum=1) == 2
        assert "FAILED" in capsys.readouterr().err
        # a newer checkpoint nobody cosigned yet: the latest fails the quorum, ?witnessed=1 serves the older one
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": 3})])
        newer = publish_now(services)
        assert newer is not None and newer.tree_size == 4
        assert verify_witness_quorum(services, keys=[str(K1)], quorum=1) == 1
        assert check_ledger_quorum(services, keys=[K1], quorum=1).latest_witnessed_size == 3
        app = create_app(services=services, start_workers=False, publish_checkpoints=False)
        with TestClient(app) as client:
            assert client.get("/v1/ledger/checkpoint").json()["cosignatures"] == []
            served = client.get("/v1/ledger/checkpoint?witnessed=1").json()
            assert client.get("/v1/ledger/checkpoint?witnessed=2").status_code == 404  # the forged row counts not
            text = client.get("/v1/ledger/checkpoint?witnessed=1", headers={"accept": "text/plain"}).text
        assert served["tree_size"] == 3 and text == served["note"]
        assert [c["witness"] for c in served["cosignatures"]] == [str(K1)]
        assert forged not in served["note"] and served["note"].endswith(good)
    finally:
        services.close()


def _with_key_id(line: str, key) -> str:  # type: ignore[no-untyped-def]
    import base64

    raw = base64.b64decode(line.split(" ")[2])
    return base64.b64encode(key.key_hash + raw[4:]).decode() + "\n"
