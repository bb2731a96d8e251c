"""Trust anchors live outside the database: an insider who rewrites history and signs it with a key of their
own, put into the keys table, is caught by `rationale verify`, the reviewer page and the API helpers —
on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import text

from api.services.checkpoints import publish_now
from api.services.keys import rotate_signing_key
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from api.workers.local_pool import drain
from audit.bundle.reader import run as verify_bundle_file
from audit.entry import EntryDraft
from audit.errors import LogSplitError
from audit.note import key_id, verifier_key
from audit.trust import KeyRotation, VerifierKey, rotation_message
from tests.api.attacks import behind_the_back, rewrite_history
from tests.api.helpers import applicant_rows, sign_in_pages


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
    assert "FAILED (ledger_checkpoints at " in err and forged in err, err


def test_the_dossier_fails_the_rewrite_and_names_the_forged_key(ledger, client):
    stranger = Ed25519PrivateKey.generate()
    origin = ledger.settings.origin
    behind_the_back(
        ledger, lambda conn: rewrite_history(conn, index=1, edit=flip_label, origin=origin, signer=stranger)
    )
    sign_in_pages(client, ledger)
    page = client.get("/review/decisions/t-0")
    assert page.status_code == 200
    assert "status-failed" in page.text
    assert verifier_key(origin, stranger.public_key().public_bytes_raw()) in page.text


def _anchor(services) -> str:
    key = services.keyring.active()
    return verifier_key(key.name, key.public_key)


def test_rotation_is_a_ledger_entry_and_a_pinned_first_key_reaches_the_next(ledger, client, capsys):
    first = _anchor(ledger)
    result = rotate_signing_key(ledger)
    assert result.previous.text == first and result.next.text == _anchor(ledger) != first
    entry = client.get(f"/v1/ledger/entries/{result.ledger_index}").json()
    assert entry["type"] == "key.rotated"
    assert result.checkpoint is not None and result.checkpoint.tree_size == result.ledger_index + 1
    rows = applicant_rows(2, seed=5)
    decisions = [{"decision_id": f"after-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows)]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    drain(ledger)
    publish_now(ledger)  # signed by the new key
    capsys.readouterr()
    assert verify_whole_ledger(ledger, anchors=[VerifierKey.parse(first)]) == 0
    out = capsys.readouterr().out
    assert first in out and f"{result.next.text}  (introduced by a key rotation entry)" in out
    # pinning only a stranger's key: the first checkpoint is signed by a key that is not anchored
    stranger = VerifierKey(ledger.settings.origin, Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert verify_whole_ledger(ledger, quiet=True, anchors=[stranger]) == 1
    assert f"signed by {first}: not a trust anchor" in capsys.readouterr().err
    # the dossier follows the rotation too
    sign_in_pages(client, ledger)
    page = client.get("/review/decisions/after-0")
    assert page.status_code == 200 and "status-verified" in page.text and result.next.text in page.text


def test_a_rotation_entry_not_signed_by_the_outgoing_key_fails(ledger, client, capsys):
    keyring = ledger.keyring
    outgoing = VerifierKey.of(keyring.active())
    forger = Ed25519PrivateKey.generate()
    incoming = VerifierKey(outgoing.name, forger.public_key().public_bytes_raw())
    bogus = KeyRotation(outgoing, incoming, forger.sign(rotation_message(outgoing, incoming)))
    with ledger.db.unit_of_work() as uow:  # appended through the application, as an insider could
        [entry] = ledger.ledger.append(uow.ledger, [EntryDraft("key.rotated", bogus.to_payload())])
    publish_now(ledger)
    capsys.readouterr()
    assert verify_whole_ledger(ledger, quiet=True) == 1
    err = capsys.readouterr().err
    assert f"entry {entry.index} (key rotation)" in err and outgoing.text in err and "ledger_entries" in err


def test_a_key_inserted_into_the_keys_table_is_named(ledger, capsys):
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    origin = ledger.settings.origin

    def insert(conn):
        conn.execute(
            text("INSERT INTO signing_keys (key_id, name, public_key, created_at) VALUES (:k, :n, :p, :c)"),
            {"k": key_id(origin, stranger), "n": origin, "p": stranger, "c": "2026-03-03T12:00:00.000000Z"},
        )

    behind_the_back(ledger, insert)
    capsys.readouterr()
    assert verify_whole_ledger(ledger, quiet=True) == 1
    err = capsys.readouterr().err
    assert "signing_keys" in err and verifier_key(origin, stranger) in err and "neither a trust anchor" in err


def test_the_publisher_refuses_to_sign_over_a_rewritten_history(ledger, client):
    """With database access only, an insider cannot make the real key sign their rewrite."""
    stranger = Ed25519PrivateKey.generate()
    origin = ledger.settings.origin
    behind_the_back(
        ledger, lambda conn: rewrite_history(conn, index=1, edit=flip_label, origin=origin, signer=stranger)
    )
    rows = applicant_rows(1, seed=9)
    assert (
        client.post("/v1/decisions", json={"decision_id": "x", "model": "credit@1", "inputs": rows[0]}).status_code
        == 201
    )
    with pytest.raises(LogSplitError, match="does not verify"):
        publish_now(ledger)


def test_trusted_keys_setting_is_parsed_at_load(tmp_path):
    good = verifier_key("rationale.test/ledger", Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    other = verifier_key("other.example/log", Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    settings = Settings(data_dir=tmp_path, trusted_keys=f"{good}, {other}")
    assert [k.text for k in settings.trust_anchors] == [good, other]
    for bad in ("not-a-key", good[:-4] + "AAAA", good.replace("+", "+0", 1)):
        with pytest.raises(ValidationError, match=r"verifier key|key hash|Ed25519|base64"):
            Settings(data_dir=tmp_path, trusted_keys=bad)


def test_the_cli_refuses_a_bad_trusted_keys_variable_and_a_bad_key_flag(tmp_path):
    env = {**os.environ, "RATIONALE_DATA_DIR": str(tmp_path), "RATIONALE_TRUSTED_KEYS": "example+1234+abc"}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "RATIONALE_TRUSTED_KEYS" in result.stderr and "example+1234+abc" in result.stderr
    env.pop("RATIONALE_TRUSTED_KEYS")
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--key", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--key" in result.stderr and "nope" in result.stderr


def test_cli_rotate_then_verify_with_only_the_first_key(ledger):
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": ledger.settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(ledger.settings.data_dir),
        "RATIONALE_ORIGIN": ledger.settings.origin,
    }
    first = _anchor(ledger)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    rotated = cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert f"from {first}" in rotated.stdout
    listed = cli("keys", "list")
    second = _anchor(ledger)
    assert f"* {second}" in listed.stdout and f"  {first}" in listed.stdout
    result = cli("verify", "--key", first)
    assert result.returncode == 0, result.stderr
    assert second in result.stdout and "OK:" in result.stdout


def test_verify_bundle_with_key_requires_the_checkpoint_signed_by_it(ledger, client, tmp_path, capsys):
    export = client.post("/v1/exports", json={"model": "credit@1"})
    assert export.status_code == 201, export.text
    path = tmp_path / "bundle.zip"
    path.write_bytes(client.get(f"/v1/exports/{export.json()['export_id']}/bundle").content)
    own = VerifierKey.parse(_anchor(ledger))
    assert verify_bundle_file(path, quiet=True, keys=[own.text]) == 0
    stranger = VerifierKey(own.name, Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    capsys.readouterr()
    assert verify_bundle_file(path, quiet=False, keys=[stranger.text]) == 1
    assert stranger.text in capsys.readouterr().out


def test_a_bundle_exported_after_a_rotation_verifies_with_only_the_first_key(ledger, client, tmp_path, capsys):
    """The regulator's pinned key predates the rotation; the bundle carries the rotation entry and its proof."""
    first = _anchor(ledger)
    rotated = rotate_signing_key(ledger)
    export = client.post("/v1/exports", json={"model": "credit@1"})
    assert export.status_code == 201, export.text
    path = tmp_path / "bundle.zip"
    path.write_bytes(client.get(f"/v1/exports/{export.json()['export_id']}/bundle").content)
    capsys.readouterr()
    assert verify_bundle_file(path, quiet=False, keys=[first]) == 0
    out = capsys.readouterr().out
    assert f"Ed25519 by {rotated.next.text}, reached from the pinned key {first}" in out
    assert f"at entries {rotated.ledger_index}" in out
    assert verify_whole_ledger(ledger, quiet=True) == 0
