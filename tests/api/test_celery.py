"""The distributed executor for real: Celery worker processes on the Redis broker running the same job
code, and a crash test — a worker SIGKILLed mid-batch and PostgreSQL restarted while decisions keep
arriving — after which every decision has exactly one explanation and the ledger verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import build_services
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest

BROKER = os.environ.get("RATIONALE_TEST_BROKER_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
def broker() -> str:
    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=3).flushdb()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {BROKER} is unreachable: {exc}")
        pytest.skip(f"Redis at {BROKER} is unreachable: {exc}")
    return BROKER


class Workers:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *, concurrency: int = 1) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "RATIONALE_EXECUTOR": "celery",
            "RATIONALE_BROKER_URL": self.settings.broker_url,
            "RATIONALE_DATABASE_URL": self.settings.effective_database_url,
            "RATIONALE_DATA_DIR": str(self.settings.data_dir),
            "RATIONALE_LEASE_SECONDS": str(self.settings.lease_seconds),
            "RATIONALE_BATCH_SIZE": str(self.settings.batch_size),
        }
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--threads", str(concurrency)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its prefork children, no goodbye
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def celery_env(db_url: str, tmp_path: Path, broker: str) -> Iterator[tuple[TestClient, Workers, object]]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=db_url,
        executor="celery",
        broker_url=broker,
        lease_seconds=6.0,
        batch_size=8,
        workers=0,
    )
    services = build_services(settings)
    workers = Workers(settings, tmp_path)
    app = create_app(services=services, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(services))
        yield client, workers, services
        workers.stop()
    services.close()


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def queue_empty(services) -> bool:
    try:
        with services.db.unit_of_work(write=False) as uow:
            return uow.jobs.depth() == 0
    except Exception:
        return False


def register(client: TestClient, artifact: bytes) -> None:
    import json

    resp = client.post(
        "/v1/models", data={"manifest": json.dumps(credit_manifest())}, files={"artifact": ("m.skops", artifact)}
    )
    assert resp.status_code == 201, resp.text


def explanation_counts(services, ids: list[str]) -> dict[str, int]:
    with services.db.unit_of_work(write=False) as uow:
        return {i: len(uow.explanations.for_decision(i)) for i in ids}


def test_a_burst_of_jobs_wakes_one_worker_per_micro_batch(broker, tmp_path):
    """A request that queues many jobs sends one wake-up per batch, so idle workers share its batches."""
    from api.workers.celery_app import MAX_WAKEUPS, CeleryDispatcher

    settings = Settings(  # one batch size for every method: the dispatcher wakes by the smallest one
        environment="test", data_dir=tmp_path, executor="celery", broker_url=broker, batch_size=8, method_batch_sizes={}
    )
    dispatcher = CeleryDispatcher(settings, services=None)
    queue = redis.Redis.from_url(broker)
    dispatcher.wake(20)
    assert queue.llen("celery") == 3
    dispatcher.wake(1)
    assert queue.llen("celery") == 4
    dispatcher.wake(10_000)
    assert queue.llen("celery") == 4 + MAX_WAKEUPS
    # with the default per-method sizes (anchors and counterfactuals in batches of 2), a burst wakes more workers
    small = CeleryDispatcher(settings.model_copy(update={"method_batch_sizes": {"anchors": 2}}), services=None)
    small.wake(20)
    assert queue.llen("celery") == 4 + MAX_WAKEUPS + 10


@pytest.mark.heavy
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_celery_workers_explain_every_decision_once(celery_env, credit_artifact):
    client, workers, services = celery_env
    register(client, credit_artifact)
    workers.start(concurrency=2)
    rows = applicant_rows(40)
    ids = [f"c-{i}" for i in range(40)]
    body = {"decisions": [{"decision_id": d, "model": "credit@1", "inputs": r} for d, r in zip(ids, rows, strict=True)]}
    assert client.post("/v1/decisions", json=body).status_code == 201
    wait_until(lambda: queue_empty(services), timeout=180, what="the Celery workers to drain the queue")
    assert set(explanation_counts(services, ids).values()) == {1}
    got = client.get("/v1/decisions/c-7").json()
    assert got["explanations"][0]["body"]["quality"]["additivity_error"] < 1e-6
    assert got["jobs"][0]["state"] == "succeeded"


def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120)


@pytest.mark.heavy
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_crash_of_a_worker_and_of_the_database_loses_and_duplicates_nothing(celery_env, credit_artifact):
    client, workers, services = celery_env
    register(client, credit_artifact)
    first = workers.start(concurrency=1)
    rows = applicant_rows(60, seed=5)
    ids = [f"x-{i}" for i in range(60)]

    def send(start: int, end: int) -> None:
        body = {
            "decisions": [
                {"decision_id": ids[i], "model": "credit@1", "inputs": rows[i], "explain": ["shap", "lime"]}
                for i in range(start, end)
            ]
        }
        for _ in range(100):  # a client retrying while the database is away
            resp = client.post("/v1/decisions", json=body)
            if resp.status_code in (200, 201):
                return
            assert resp.status_code == 503, resp.text
            time.sleep(0.2)
        pytest.fail("the API never came back")

    send(0, 20)

    def running() -> bool:
        with services.db.unit_of_work(write=False) as uow:
            return uow.jobs.counts_by_state().get("running", 0) > 0

    wait_until(running, timeout=120, what="a batch to be claimed")
    workers.kill(first)  # SIGKILL mid-batch
    send(20, 35)
    restart_postgres()  # the database goes away and comes back while decisions keep arriving
    send(35, 60)
    workers.start(concurrency=1)
    workers.start(concurrency=1)
    wait_until(lambda: queue_empty(services), timeout=300, what="the queue to drain after the crashes")

    with services.db.unit_of_work(write=False) as uow:
        for decision_id in ids:
            explanations = uow.explanations.for_decision(decision_id)
            assert sorted(e.method for e in explanations) == ["lime", "shap"], decision_id
            assert all(e.status == "succeeded" for e in explanations)
        assert uow.decisions.count() == 60
    assert verify_whole_ledger(services, quiet=True) == 0
