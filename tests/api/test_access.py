"""Access control through the API (issue #14 items 1, 3, 4, 7): keys, roles, purposes, recorded reads, export
audiences, the access log, the CLI and the secure defaults. Real services on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.cli import main as cli_main
from api.container import Services, build_services
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from audit.access_payload import AccessKeyEvent, AccessRead
from storage.access_store import ApiKeyRow
from storage.tables import LedgerEntryRow
from tests.api.helpers import applicant_rows, issue_key


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def svc(settings: Settings, clock: MovableClock) -> Iterator[Services]:
    services = build_services(settings, clock=clock)
    yield services
    services.close()


@pytest.fixture
def http(svc: Services) -> Iterator[TestClient]:
    """A client without credentials: each test says which key it uses."""
    app = create_app(services=svc, start_workers=False, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def bearer(key: str, purpose: str | None = "testing access control") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if purpose is not None:
        headers["X-Rationale-Purpose"] = purpose
    return headers


def access_entries(services: Services) -> list[tuple[int, str, dict[str, Any]]]:
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        return [(e.index, e.type, e.payload) for e in uow.ledger.iter_range(0, size) if e.type.startswith("access.")]


@pytest.fixture
def recorded(http: TestClient, svc: Services, credit_artifact: bytes) -> dict[str, str]:
    """A registered model and three decisions of two subjects; returns keys by role."""
    import json

    from tests.api.helpers import credit_manifest

    keys = {role: issue_key(svc, role, owner=f"{role} person") for role in ("ingest", "data_scientist", "compliance")}
    keys["admin"] = issue_key(svc, "admin", owner="the admin")
    keys["regulator"] = issue_key(svc, "regulator", owner="regulator A")
    keys["regulator_b"] = issue_key(svc, "regulator", owner="regulator B")
    resp = http.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("m.skops", credit_artifact)},
        headers=bearer(keys["data_scientist"]),
    )
    assert resp.status_code == 201, resp.text
    rows = applicant_rows(3)
    batch = [
        {"decision_id": f"a-{i}", "model": "credit@1", "inputs": r, "subject_ref": "alice" if i < 2 else "bob"}
        for i, r in enumerate(rows)
    ]
    for item in batch:
        item["explain"] = []
    resp = http.post("/v1/decisions", json={"decisions": batch}, headers=bearer(keys["ingest"]))
    assert resp.status_code == 201, resp.text
    return keys


def key_id(key: str) -> str:
    return key.split("_")[1]


# 1. identities


def test_keys_are_shown_once_and_stored_only_as_a_hash(http: TestClient, svc: Services) -> None:
    admin = issue_key(svc, "admin")
    created = http.post("/v1/access/keys", json={"owner": "Dana", "role": "compliance"}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["key"]
    assert secret.startswith(f"rk_{body['key_id']}_") and len(secret) == 3 + 16 + 1 + 43
    listed = http.get("/v1/access/keys", headers=bearer(admin)).json()["items"]
    assert {"key_id": body["key_id"], "owner": "Dana", "role": "compliance"}.items() <= listed[-1].items()
    assert all("key" not in item and "key_hash" not in item for item in listed)
    with svc.db.unit_of_work(write=False) as uow:
        row = uow.session.get(ApiKeyRow, body["key_id"])
        assert row is not None and bytes(row.key_hash) == hashlib.sha256(secret.encode()).digest()
        stored = b"".join(bytes(c) for c in uow.session.execute(select(LedgerEntryRow.canonical)).scalars())
    assert secret.encode() not in stored and secret.split("_", 2)[2].encode() not in stored  # the secret may hold "_"
    [event] = [p for _, t, p in access_entries(svc) if t == AccessKeyEvent.TYPE]
    assert AccessKeyEvent.from_dict(event) == AccessKeyEvent(
        "created", body["key_id"], "Dana", "compliance", key_id(admin)
    )
    assert http.get("/v1/decisions", headers=bearer(secret)).status_code == 200


def test_revoked_expired_unknown_and_malformed_keys_are_401(
    http: TestClient, svc: Services, clock: MovableClock
) -> None:
    admin = issue_key(svc, "admin")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    short = http.post(
        "/v1/access/keys", json={"owner": "temp", "role": "data_scientist", "expires_at": later}, headers=bearer(admin)
    ).json()["key"]
    doomed = http.post(
        "/v1/access/keys", json={"owner": "leaver", "role": "data_scientist"}, headers=bearer(admin)
    ).json()
    assert http.get("/v1/models", headers=bearer(short)).status_code == 200
    assert http.get("/v1/models", headers=bearer(doomed["key"])).status_code == 200

    revoked = http.delete(f"/v1/access/keys/{doomed['key_id']}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    clock.offset = timedelta(hours=2)
    forged = doomed["key"][:-4] + ("AAAA" if not doomed["key"].endswith("AAAA") else "BBBB")
    for key in (short, doomed["key"], forged, "rk_0123456789abcdef_" + "x" * 43, "not-a-key", ""):
        resp = http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 401, key
        assert resp.json()["error"] == {
            "code": "unauthenticated",
            "message": "a valid API key is required: Authorization: Bearer rk_...",
            "details": {},
        }
    assert http.get("/v1/models").status_code == 401
    assert http.get("/v1/models", headers=bearer(admin)).status_code == 200
    events = [AccessKeyEvent.from_dict(p).event for _, t, p in access_entries(svc) if t == AccessKeyEvent.TYPE]
    assert events == ["created", "created", "revoked"]


@pytest.mark.parametrize("window", [0.0, 0.6])
def test_a_key_revoked_by_another_process_is_refused_within_the_cache_window(
    settings: Settings, credit_artifact: bytes, window: float
) -> None:
    """The attacker's case: a leaked key revoked with `rationale access revoke` (another process, another
    cache) while the server still answers it. It is refused within ``key_cache_seconds``, and at once when 0."""
    import time

    from api.services.access import local_principal, revoke_key

    server = build_services(settings.model_copy(update={"key_cache_seconds": window}))
    other = build_services(settings)  # the CLI's process: its own services, its own cache
    try:
        leaked = issue_key(server, "data_scientist")
        app = create_app(services=server, start_workers=False, publish_checkpoints=False)
        with TestClient(app, raise_server_exceptions=False) as http:
            assert http.get("/v1/models", headers=bearer(leaked)).status_code == 200  # read, and remembered
            revoke_key(other, key_id=key_id(leaked), by=local_principal())
            revoked_at = time.monotonic()
            while True:  # a request sent after the window must be refused, however slow the machine
                sent = time.monotonic()
                status = http.get("/v1/models", headers=bearer(leaked)).status_code
                if status != 200:
                    break
                assert sent - revoked_at < window, "a revoked key outlived the cache window"
                time.sleep(0.02)
            assert status == 401
            for _ in range(3):  # and stays refused: a refusal is never remembered as a pass
                assert http.get("/v1/models", headers=bearer(leaked)).status_code == 401
    finally:
        other.close()
        server.close()


def test_a_key_revoked_through_the_api_is_refused_at_once_even_when_remembered(http: TestClient, svc: Services) -> None:
    admin = issue_key(svc, "admin")
    doomed = issue_key(svc, "data_scientist")
    assert svc.settings.key_cache_seconds > 0
    for _ in range(3):
        assert http.get("/v1/models", headers=bearer(doomed)).status_code == 200
    assert http.delete(f"/v1/access/keys/{key_id(doomed)}", headers=bearer(admin)).status_code == 200
    assert http.get("/v1/models", headers=bearer(doomed)).status_code == 401


def test_bad_key_requests_are_422_and_only_admin_manages_keys(http: TestClient, svc: Services) -> None:
    admin, compliance = issue_key(svc, "admin"), issue_key(svc, "compliance")
    bad = http.post("/v1/access/keys", json={"owner": "x", "role": "superuser"}, headers=bearer(admin))
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "role"
    past = http.post(
        "/v1/access/keys",
        json={"owner": "x", "role": "ingest", "expires_at": "2020-01-01T00:00:00Z"},
        headers=bearer(admin),
    )
    assert past.status_code == 422 and past.json()["error"]["details"]["field"] == "expires_at"
    denied = http.post("/v1/access/keys", json={"owner": "x", "role": "admin"}, headers=bearer(compliance))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert http.get("/v1/access/keys", headers=bearer(compliance)).status_code == 403


# 3. every read on the record


def test_every_read_appends_an_access_entry_that_verifies(
    http: TestClient, svc: Services, recorded: dict[str, str]
) -> None:
    compliance = recorded["compliance"]
    before = len(access_entries(svc))
    assert http.get("/v1/decisions/a-0", headers=bearer(compliance, "complaint 42")).status_code == 200
    page = http.get("/v1/decisions", params={"subject_ref": "alice"}, headers=bearer(compliance, "complaint 42"))
    assert [d["decision_id"] for d in page.json()["items"]] == ["a-0", "a-1"]
    decision_index = http.get("/v1/decisions/a-2", headers=bearer(recorded["data_scientist"], None)).json()["ledger"][
        "index"
    ]
    assert (
        http.get(f"/v1/ledger/entries/{decision_index}", headers=bearer(compliance, "checking bytes")).status_code
        == 200
    )
    reads = [(i, AccessRead.from_dict(p)) for i, t, p in access_entries(svc)[before:]]
    assert [r.action for _, r in reads] == ["decision.read", "search.api", "decision.read", "ledger.entry"]
    first = reads[0][1]
    assert (first.key_id, first.role, first.owner, first.purpose) == (
        key_id(compliance),
        "compliance",
        "compliance person",
        "complaint 42",
    )
    assert first.decision_ids == ("a-0",) and first.subject_refs == ("alice",)
    assert reads[1][1].decision_ids == ("a-0", "a-1") and reads[1][1].target["query"]["subject_ref"] == "alice"
    assert reads[2][1].purpose is None and reads[2][1].role == "data_scientist"
    assert reads[3][1].target == {"index": decision_index, "type": "decision.recorded"} and reads[3][
        1
    ].subject_refs == ("bob",)
    assert verify_whole_ledger(svc, quiet=True) == 0


def test_compliance_and_regulator_reads_need_a_purpose_and_record_nothing_without(
    http: TestClient, svc: Services, recorded: dict[str, str]
) -> None:
    before = len(access_entries(svc))
    for path in ("/v1/decisions/a-0", "/v1/decisions?subject_ref=alice"):
        resp = http.get(path, headers=bearer(recorded["compliance"], None))
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["code"] == "purpose_required" and error["details"]["field"] == "X-Rationale-Purpose"
        assert "X-Rationale-Purpose" in error["message"]
    blank = http.get("/v1/decisions/a-0", headers=bearer(recorded["compliance"], "   "))
    assert blank.status_code == 400
    resp = http.get("/v1/exports/0123abcd", headers=bearer(recorded["regulator"], None))
    assert resp.status_code == 400
    assert len(access_entries(svc)) == before


def test_a_read_is_answered_only_after_its_entry_is_committed_and_concurrent_reads_share_commits(
    http: TestClient, svc: Services, recorded: dict[str, str]
) -> None:
    from api.services.access_recorder import recorder

    headers = bearer(recorded["compliance"], "load")
    before = len(access_entries(svc))
    commits_before = recorder(svc).commits
    errors: list[str] = []
    indexes: list[int] = []

    def reader() -> None:
        for _ in range(15):
            resp = http.get("/v1/decisions/a-1", headers=headers)
            if resp.status_code != 200:
                errors.append(resp.text)
                continue
            with svc.db.unit_of_work(write=False) as uow:  # the entry is there the moment the answer is
                size = uow.ledger.size()
            indexes.append(size)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reads = access_entries(svc)[before:]
    assert len(reads) == 120 and all(t == AccessRead.TYPE for _, t, _ in reads)
    assert recorder(svc).commits - commits_before <= 120
    assert verify_whole_ledger(svc, quiet=True) == 0


def test_reads_queued_together_share_one_commit_and_none_is_answered_before_it(svc: Services) -> None:
    """Group commit, deterministically: a recorder that has not started yet collects 40 concurrent reads (none
    of them answered), then commits them all in ONE transaction and answers each with its own entry."""
    from api.services.access import Principal, Role
    from api.services.access_reads import record_read
    from api.services.access_recorder import AccessRecorder

    rec = AccessRecorder(svc, start=False)
    svc.access_recorder = rec
    who = Principal("0123456789abcdef", "tester", Role.COMPLIANCE, "batching")
    results: list[int] = []

    def read(i: int) -> None:
        results.append(record_read(svc, who, "decision.read", target={"n": i}, decisions=[(f"d-{i}", "s")]))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while rec._queue.qsize() < 40 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.01)
    assert rec._queue.qsize() == 40 and results == []
    with svc.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
    rec.start()
    for t in threads:
        t.join()
    assert (rec.commits, rec.recorded) == (1, 40)
    assert sorted(results) == list(range(size, size + 40))
    assert verify_whole_ledger(svc, quiet=True) == 0


# 4. exports: owner and audience


def test_a_regulator_sees_only_the_exports_shared_with_it(
    http: TestClient, svc: Services, recorded: dict[str, str]
) -> None:
    compliance, reg_a, reg_b = recorded["compliance"], recorded["regulator"], recorded["regulator_b"]
    bad = http.post(
        "/v1/exports", json={"subject_refs": ["alice"], "audience": [key_id(compliance)]}, headers=bearer(compliance)
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "audience[0]"
    shared = http.post(
        "/v1/exports", json={"subject_refs": ["alice"], "audience": [key_id(reg_a)]}, headers=bearer(compliance)
    )
    assert shared.status_code == 201, shared.text
    export = shared.json()
    assert export["owner"] == {"key_id": key_id(compliance), "name": "compliance person"}
    assert export["audience"] == [key_id(reg_a)]
    private = http.post("/v1/exports", json={"subject_refs": ["bob"]}, headers=bearer(compliance)).json()

    assert [e["export_id"] for e in http.get("/v1/exports", headers=bearer(reg_a)).json()["items"]] == [
        export["export_id"]
    ]
    assert http.get("/v1/exports", headers=bearer(reg_b)).json()["items"] == []
    listed = http.get("/v1/exports", headers=bearer(compliance)).json()["items"]
    assert {e["export_id"] for e in listed} == {export["export_id"], private["export_id"]}

    download = http.get(f"/v1/exports/{export['export_id']}/bundle", headers=bearer(reg_a, "supervisory review"))
    assert download.status_code == 200 and download.content[:2] == b"PK"
    for key, export_id in ((reg_b, export["export_id"]), (reg_a, private["export_id"])):
        for suffix in ("", "/bundle"):
            resp = http.get(f"/v1/exports/{export_id}{suffix}", headers=bearer(key))
            assert resp.status_code == 404, (key, export_id, suffix)
    assert http.post("/v1/exports", json={"subject_refs": ["alice"]}, headers=bearer(reg_a)).status_code == 403
    assert http.get("/v1/decisions/a-0", headers=bearer(reg_a)).status_code == 403
    downloads = [AccessRead.from_dict(p) for _, t, p in access_entries(svc) if p.get("action") == "export.download"]
    assert [(r.key_id, r.purpose, r.subject_refs) for r in downloads] == [
        (key_id(reg_a), "supervisory review", ("alice",))
    ]


# the access log


def test_the_access_log_says_who_read_a_persons_records_when_and_why(
    http: TestClient, svc: Services, recorded: dict[str, str], clock: MovableClock
) -> None:
    http.get("/v1/decisions/a-0", headers=bearer(recorded["compliance"], "complaint 42"))
    clock.offset = timedelta(minutes=5)
    http.get("/v1/decisions?subject_ref=alice", headers=bearer(recorded["data_scientist"], "model debugging"))
    http.get("/v1/decisions/a-2", headers=bearer(recorded["compliance"], "about bob"))
    assert http.get("/v1/access?subject_ref=alice", headers=bearer(recorded["compliance"])).status_code == 403
    log = http.get("/v1/access", params={"subject_ref": "alice"}, headers=bearer(recorded["admin"]))
    assert log.status_code == 200, log.text
    items = log.json()["items"]
    assert [(i["owner"], i["role"], i["action"], i["purpose"]) for i in items] == [
        ("data_scientist person", "data_scientist", "search.api", "model debugging"),
        ("compliance person", "compliance", "decision.read", "complaint 42"),
    ]
    assert items[0]["recorded_at"] > items[1]["recorded_at"]
    with svc.db.unit_of_work(write=False) as uow:
        for item in items:
            assert uow.ledger.read(item["ledger_index"]).type == AccessRead.TYPE
    by_decision = http.get("/v1/access", params={"decision_id": "a-2"}, headers=bearer(recorded["admin"])).json()
    assert [i["purpose"] for i in by_decision["items"]] == ["about bob"]
    assert http.get("/v1/access", headers=bearer(recorded["admin"])).status_code == 422


# 7. secure defaults and the CLI


def test_auth_off_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="local development only"):
        Settings(environment="production", auth="off")


def test_serve_refuses_a_non_loopback_bind_with_access_control_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATIONALE_AUTH", "off")
    monkeypatch.setenv("RATIONALE_DATA_DIR", str(tmp_path / "data"))
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        assert cli_main(["serve", "--host", host, "--port", "1"]) == 2
        assert "refusing to serve" in capsys.readouterr().err


def test_access_cli_creates_lists_and_revokes(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATIONALE_DATABASE_URL", db_url)
    monkeypatch.setenv("RATIONALE_DATA_DIR", str(tmp_path / "data"))
    assert cli_main(["access", "create", "--owner", "Ops team", "--role", "admin", "--days", "30"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("rk_") and "created admin key" in out and "expires" in out
    assert cli_main(["access", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id(secret) in listing and "Ops team" in listing and secret not in listing
    assert cli_main(["access", "revoke", key_id(secret)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli_main(["access", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["access", "create", "--owner", "x", "--role", "wizard"])
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data")
    services = build_services(settings)
    try:
        app = create_app(services=services, start_workers=False, publish_checkpoints=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/v1/models", headers=bearer(secret)).status_code == 401
    finally:
        services.close()
