"""Single-decision intake (group commit, api/services/intake.py) on SQLite and PostgreSQL.

Coalesced requests keep their own validation errors and idempotency; many concurrent clients are recorded in
fewer transactions than requests; a `rationale serve` process killed mid-load loses no acknowledged decision.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.container import Services
from api.services.intake import Intake
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest, register_credit


def _decision(decision_id: str, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"decision_id": decision_id, "model": "credit@1", "inputs": row, "explain": [], **extra}


def _ledger_size(services: Services) -> int:
    with services.db.unit_of_work(write=False) as uow:
        return uow.ledger.size()


async def _as_one_group(services: Services, bodies: list[dict[str, Any]]) -> tuple[list[httpx.Response], Intake]:
    """POST every body concurrently through the ASGI app and hold the writer until all of them are queued,
    so they are recorded as ONE group (deterministic, no timing)."""
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    async with app.router.lifespan_context(app):
        app.state.intake.stop()
        held = app.state.intake = Intake(services)  # not started: requests queue up behind it
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://intake.test", headers=auth_headers(services)
        ) as client:
            tasks = []
            for body in bodies:  # queued in this order (authentication runs in the thread pool, so wait)
                tasks.append(asyncio.ensure_future(client.post("/v1/decisions", json=body)))
                while held.pending() < len(tasks):
                    done = [t for t in tasks if t.done()]
                    assert not done, [t.result().text for t in done]  # each request reaches the queue
                    await asyncio.sleep(0.001)
            held.start()
            responses = await asyncio.gather(*tasks)
        held.stop()
    return list(responses), held


def _register(services: Services, credit_artifact: bytes) -> None:
    from fastapi.testclient import TestClient

    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app) as client:
        client.headers.update(auth_headers(services))
        register_credit(client, credit_artifact)


def test_one_bad_decision_in_a_group_fails_alone(services, credit_artifact):
    _register(services, credit_artifact)
    rows = applicant_rows(6)
    size = _ledger_size(services)
    bodies = [
        _decision("good-0", rows[0]),
        _decision("bad-range", dict(rows[1], age=7)),
        _decision("good-1", rows[2]),
        _decision("bad-model", rows[3], model="credit@9"),
        _decision("bad-category", dict(rows[4], purpose="moon-landing")),
        _decision("good-2", rows[5]),
    ]
    responses, intake = asyncio.run(_as_one_group(services, bodies))
    assert intake.groups == 1 and intake.requests == len(bodies)
    status = {b["decision_id"]: r.status_code for b, r in zip(bodies, responses, strict=True)}
    assert status == {
        "good-0": 201,
        "bad-range": 422,
        "good-1": 201,
        "bad-model": 422,
        "bad-category": 422,
        "good-2": 201,
    }
    errors = {
        b["decision_id"]: r.json()["error"] for b, r in zip(bodies, responses, strict=True) if r.status_code >= 400
    }
    assert "inputs.age" in json.dumps(errors["bad-range"])
    assert "model" in json.dumps(errors["bad-model"])
    assert "inputs.purpose" in json.dumps(errors["bad-category"])
    good = [r.json()["decisions"][0] for r in responses if r.status_code == 201]
    indexes = sorted(d["ledger"]["index"] for d in good)
    assert indexes == list(range(size, size + 3))  # one append, contiguous; nothing of the bad ones
    assert _ledger_size(services) == size + 3
    with services.db.unit_of_work(write=False) as uow:
        recorded = {r.decision_id for r in uow.decisions.get_many([b["decision_id"] for b in bodies])}
    assert recorded == {"good-0", "good-1", "good-2"}
    assert verify_whole_ledger(services, quiet=True) == 0


def test_idempotency_holds_within_a_group(services, credit_artifact):
    _register(services, credit_artifact)
    rows = applicant_rows(4)
    before = asyncio.run(_as_one_group(services, [_decision("old", rows[0])]))[0][0]
    assert before.status_code == 201
    size = _ledger_size(services)
    bodies = [
        _decision("twice", rows[1]),
        _decision("twice", rows[1]),  # the same body again: one record
        _decision("clash", rows[2]),
        _decision("clash", dict(rows[2], income=rows[2]["income"] + 1)),  # another body: 409
        _decision("old", rows[0]),  # already recorded, same body: 200
        _decision("old", rows[3]),  # already recorded, another body: 409
    ]
    responses, intake = asyncio.run(_as_one_group(services, bodies))
    assert intake.groups == 1
    assert [r.status_code for r in responses] == [201, 200, 201, 409, 200, 409]
    first, second = (r.json()["decisions"][0] for r in responses[:2])
    assert (first["created"], second["created"]) == (True, False)
    assert first["ledger"] == second["ledger"]
    assert responses[4].json()["decisions"][0]["ledger"] == before.json()["decisions"][0]["ledger"]
    assert responses[3].json()["error"]["code"] == "conflict"
    assert _ledger_size(services) == size + 2  # "twice" and "clash", once each
    assert verify_whole_ledger(services, quiet=True) == 0


def test_many_concurrent_clients_are_recorded_in_fewer_transactions(services, credit_artifact):
    _register(services, credit_artifact)
    clients, each = 16, 15
    rows = applicant_rows(clients * each)
    size = _ledger_size(services)

    async def scenario() -> tuple[list[int], Intake]:
        app = create_app(services=services, start_workers=False, publish_checkpoints=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://intake.test", headers=auth_headers(services)
            ) as client:

                async def one_client(c: int) -> list[int]:
                    indexes = []
                    for k in range(each):
                        i = c * each + k
                        resp = await client.post("/v1/decisions", json=_decision(f"c{c}-{k}", rows[i]))
                        assert resp.status_code == 201, resp.text
                        indexes.append(resp.json()["decisions"][0]["ledger"]["index"])
                    return indexes

                per_client = await asyncio.gather(*(one_client(c) for c in range(clients)))
            intake: Intake = app.state.intake
        return [i for part in per_client for i in part], intake

    indexes, intake = asyncio.run(scenario())
    assert sorted(indexes) == list(range(size, size + clients * each))
    assert intake.requests == clients * each
    assert intake.groups < intake.requests  # concurrent requests shared transactions
    assert verify_whole_ledger(services, quiet=True) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_killed_server_loses_no_acknowledged_decision(services, settings: Settings, credit_artifact, tmp_path: Path):
    port = _free_port()
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(settings.data_dir),
        "RATIONALE_ORIGIN": settings.origin,
        "RATIONALE_WORKERS": "0",
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = auth_headers(services)  # a key in the database the served process reads
    acknowledged: list[str] = []
    lock = threading.Lock()
    rows = applicant_rows(50)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise AssertionError("`rationale serve` did not start: " + (tmp_path / "serve.log").read_text())
            resp = client.post(
                "/v1/models",
                data={"manifest": json.dumps(credit_manifest())},
                files={"artifact": ("model.skops", credit_artifact)},
            )
            assert resp.status_code == 201, resp.text

        def load(c: int) -> None:
            with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
                for k in range(100_000):
                    decision_id = f"k{c}-{k}"
                    try:
                        resp = client.post("/v1/decisions", json=_decision(decision_id, rows[k % len(rows)]))
                    except httpx.TransportError:
                        return  # the server is gone; this request was never acknowledged
                    assert resp.status_code == 201, resp.text
                    with lock:
                        acknowledged.append(decision_id)

        threads = [threading.Thread(target=load, args=(c,)) for c in range(8)]
        for thread in threads:
            thread.start()
        while True:
            with lock:
                if len(acknowledged) >= 200:
                    break
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # mid-load: groups are being validated, predicted and committed
        for thread in threads:
            thread.join(60)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
        server.wait(30)
        log.close()
    assert server.returncode == -signal.SIGKILL
    with services.db.unit_of_work(write=False) as uow:
        stored = {r.decision_id for r in uow.decisions.get_many(acknowledged)}
        ledger_size = uow.ledger.size()
    assert len(acknowledged) >= 200
    assert set(acknowledged) <= stored, f"lost acknowledged decisions: {sorted(set(acknowledged) - stored)[:5]}"
    assert ledger_size >= len(acknowledged)
    assert verify_whole_ledger(services, quiet=True) == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite's one writer leaves no such race
def test_a_race_with_another_process_fails_only_the_request_it_concerns(services, credit_artifact):
    """Another API process records the same decision_id between this group's look-up and its insert: the
    group is retried one by one, so the racing request gets that record (200) and the others are recorded."""
    from sqlalchemy import text

    from api.schemas import DecisionCreate
    from api.services.decisions import record_batch
    from storage.ledger_store import APPEND_LOCK_KEY

    _register(services, credit_artifact)
    rows = applicant_rows(2)
    race, innocent = _decision("race", rows[0]), _decision("innocent", rows[1])

    def append_waiters() -> int:
        with services.db.engine.connect() as conn:
            query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            return int(conn.execute(text(query)).scalar_one())

    def wait_for_waiters(n: int) -> None:
        for _ in range(3000):
            if append_waiters() >= n:
                return
            time.sleep(0.01)
        raise AssertionError("the writers never queued on the append lock")

    answers: list[Any] = []
    with services.db.engine.connect() as holder:  # holds the ledger's append lock: both writers queue on it
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": APPEND_LOCK_KEY})
        other = threading.Thread(  # the other process: looks "race" up (absent), then waits for the lock
            target=lambda: record_batch(services, [DecisionCreate.model_validate(race)], path="")
        )
        other.start()
        wait_for_waiters(1)

        async def group() -> list[Any]:
            intake = Intake(services)
            tasks = [asyncio.ensure_future(intake.submit(DecisionCreate.model_validate(b))) for b in (race, innocent)]
            while intake.pending() < 2:
                await asyncio.sleep(0.001)
            intake.start()  # one group: looks both up (absent), then waits for the lock behind the other
            try:
                return list(await asyncio.gather(*tasks, return_exceptions=True))
            finally:
                intake.stop()

        runner = threading.Thread(target=lambda: answers.extend(asyncio.run(group())))
        runner.start()
        wait_for_waiters(2)
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": APPEND_LOCK_KEY})
        holder.commit()
        other.join(60)
        runner.join(60)
    raced, recorded = answers
    assert not isinstance(raced, Exception), raced
    assert raced.decision.created is False  # the other process's record, same body: idempotent
    assert not isinstance(recorded, Exception), recorded
    assert recorded.decision.created is True
    assert verify_whole_ledger(services, quiet=True) == 0
