"""The embedded pool's child processes: same results as computing in the thread, errors carried over by
class and message, and a child killed mid-batch loses and doubles nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services.explaining import ComputeRequest, ComputeUnavailableError, JobRunner, compute, new_owner
from api.services.verification import verify_whole_ledger
from api.workers.compute_pool import ComputePool
from explain.base import Budget, Target
from explain.errors import BudgetExceededError
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest

pytestmark = pytest.mark.heavy


def _request(services: Any, method: str, params: dict[str, Any], n: int, budget: Budget | None = None) -> Any:
    with services.db.unit_of_work(write=False) as uow:
        record = uow.models.get("credit", "1")
    assert record is not None
    return ComputeRequest(
        model=record,
        method=method,
        params=params,
        inputs=applicant_rows(n, seed=5),
        seeds=list(range(1, n + 1)),
        targets=[Target(1)] * n,
        budget=budget or Budget(),
    )


def test_a_batch_computed_in_a_child_is_the_batch_computed_in_the_thread(services, registered):
    pool = ComputePool(processes=1, blob_dir=services.settings.blob_dir)
    pool.start()
    try:
        loaded = services.models.get(_request(services, "shap", {}, 1).model)
        for method, params in (
            ("shap", {}),  # TreeSHAP: the credit model is gradient-boosted
            ("shap", {"algorithm": "kernel", "nsamples": 300}),
            ("lime", {"num_samples": 300}),
        ):
            request = _request(services, method, params, 5)
            here = [e.result.to_dict() for e in compute(request, loaded)]
            there = [e.result.to_dict() for e in pool.explain(request)]
            for mine, theirs in zip(here, there, strict=True):  # timings differ; everything else is identical
                mine.pop("compute_ms"), theirs.pop("compute_ms")
                assert json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True), method

        tight = _request(services, "shap", {"algorithm": "kernel", "nsamples": 300}, 2, Budget(max_model_calls=10))
        with pytest.raises(BudgetExceededError) as raised:  # the class survives the trip, and the message
            pool.explain(tight)
        assert "budget exceeded" in str(raised.value)
    finally:
        pool.stop()


def test_a_child_killed_mid_batch_returns_the_jobs_and_each_is_explained_exactly_once(client, services, registered):
    slow = {"shap": {"algorithm": "kernel", "nsamples": 3000}}
    rows = applicant_rows(4)
    decisions = [{"decision_id": f"c-{i}", "model": "credit@1", "inputs": r, "explain": []} for i, r in enumerate(rows)]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    for i in range(4):
        resp = client.post(f"/v1/decisions/c-{i}/explanations", json={"methods": ["shap"], "params": slow})
        assert resp.status_code == 202

    pool = ComputePool(processes=1, blob_dir=services.settings.blob_dir)
    pool.start()
    runner = JobRunner(services, owner=new_owner("test"), compute=pool.explain)
    try:
        reports: list[Any] = []
        worker = threading.Thread(target=lambda: reports.append(runner.run_batch()))
        worker.start()
        deadline = time.monotonic() + 60
        while not runner.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.in_flight, "the runner never claimed the jobs"
        time.sleep(0.5)  # the child is now inside the batch (3000 samples x 4 rows take seconds)
        [child] = pool.child_pids()
        os.kill(child, signal.SIGKILL)
        worker.join(60)
        [report] = reports
        assert (report.claimed, report.succeeded, report.failed) == (4, 0, 0)
        with services.db.unit_of_work(write=False) as uow:
            jobs = [j for i in range(4) for j in uow.jobs.for_decision(f"c-{i}")]
        assert {(j.state, j.attempts) for j in jobs} == {("queued", 1)}  # back in the queue, attempt counted

        again = runner.run_batch()  # a new child takes over
        assert (again.claimed, again.succeeded) == (4, 4)
    finally:
        pool.stop()

    for i in range(4):
        body = client.get(f"/v1/decisions/c-{i}").json()
        [explanation] = body["explanations"]
        assert explanation["status"] == "succeeded"
        [job] = body["jobs"]
        assert job["state"] == "succeeded" and job["attempts"] == 2
    assert verify_whole_ledger(services, quiet=True) == 0


def test_the_embedded_pool_explains_through_its_child_process(services, credit_artifact):
    settings = services.settings.model_copy(update={"workers": 2, "explain_processes": 1, "batch_window_ms": 5})
    live = dataclasses.replace(services, settings=settings)
    app = create_app(services=live, start_workers=True, publish_checkpoints=False)
    with TestClient(app) as http:
        http.headers.update(auth_headers(live))
        resp = http.post(
            "/v1/models",
            data={"manifest": json.dumps(credit_manifest())},
            files={"artifact": ("m.skops", credit_artifact)},
        )
        assert resp.status_code == 201, resp.text
        rows = applicant_rows(40)
        decisions = [{"decision_id": f"p-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows)]
        assert http.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
        deadline = time.monotonic() + 120
        while http.get("/healthz").json()["queue_depth"] and time.monotonic() < deadline:
            time.sleep(0.05)
        pool = app.state.pool
        assert pool.compute is not None and len(pool.compute.child_pids()) == 1
        assert os.getpid() not in pool.compute.child_pids()
        for i in (0, 39):
            [explanation] = http.get(f"/v1/decisions/p-{i}").json()["explanations"]
            assert explanation["status"] == "succeeded"
    assert verify_whole_ledger(live, quiet=True) == 0


def test_stopping_does_not_wait_for_a_long_batch_past_its_grace_period(services, registered):
    pool = ComputePool(processes=1, blob_dir=services.settings.blob_dir)
    pool.start()
    slow = _request(services, "shap", {"algorithm": "kernel", "nsamples": 20000}, 8)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            pool.explain(slow)
        except BaseException as exc:  # the test inspects it
            raised.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    deadline = time.monotonic() + 30
    while not pool.child_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    [child] = pool.child_pids()
    time.sleep(0.5)
    started = time.monotonic()
    pool.stop(timeout=0.5)
    caller.join(30)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    [error] = raised
    assert isinstance(error, ComputeUnavailableError)
