"""Jobs left running by a killed worker process are finished after a restart, exactly once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from api.clock import utc_now
from api.workers.local_pool import drain
from audit.ledger import Ledger
from tests.api.helpers import applicant_rows


@pytest.mark.heavy
def test_jobs_of_a_killed_worker_are_rerun_after_restart(client, services, registered, tmp_path):
    rows = applicant_rows(4)
    slow = {"shap": {"algorithm": "kernel", "nsamples": 4000}}
    decisions = [{"decision_id": f"k-{i}", "model": "credit@1", "inputs": r, "explain": []} for i, r in enumerate(rows)]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    for i in range(4):
        resp = client.post(f"/v1/decisions/k-{i}/explanations", json={"methods": ["shap"], "params": slow})
        assert resp.status_code == 202

    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": services.settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(services.settings.data_dir),
        "RATIONALE_LEASE_SECONDS": "600",
        "RATIONALE_BATCH_SIZE": "4",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for the state change, not for time to pass
            with services.db.unit_of_work(write=False) as uow:
                states = {j.state for i in range(4) for j in uow.jobs.for_decision(f"k-{i}")}
            if states == {"running"}:
                break
            assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
            time.sleep(0.05)
        else:
            pytest.fail(f"worker never claimed the jobs: {states}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()

    # A fresh worker now: leases are still valid, so nothing is claimable yet ...
    assert drain(services) == 0
    # ... until they lapse (the clock is injected; nobody sleeps for the lease).
    later = lambda: utc_now() + timedelta(seconds=601)  # noqa: E731
    restarted = dataclasses.replace(services, clock=later, ledger=Ledger(clock=later))
    assert drain(restarted) == 4

    for i in range(4):
        body = client.get(f"/v1/decisions/k-{i}").json()
        [explanation] = body["explanations"]
        assert explanation["status"] == "succeeded"
        assert explanation["body"]["quality"]["additivity_error"] < 1e-3
        [job] = body["jobs"]
        assert job["state"] == "succeeded" and job["attempts"] == 2
