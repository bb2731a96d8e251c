"""Back-pressure never drops a decision; the backfill command explains what was recorded earlier."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.api.helpers import applicant_rows


def test_a_deep_queue_is_reported_but_decisions_are_still_recorded(client, services, registered):
    services.settings.max_queue_depth = 2
    rows = applicant_rows(5)
    resp = client.post(
        "/v1/decisions",
        json={"decisions": [{"decision_id": f"b-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(rows)]},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["backpressure"] is True and body["queue_depth"] == 5
    assert all(d["created"] for d in body["decisions"])
    assert client.get("/healthz").json()["queue_depth"] == 5


def test_backfill_command_explains_recorded_decisions(client, services, registered):
    rows = applicant_rows(6)
    client.post(
        "/v1/decisions",
        json={
            "decisions": [
                {
                    "decision_id": f"f-{i}",
                    "model": "credit@1",
                    "inputs": r,
                    "explain": [],
                    "occurred_at": f"2026-03-{10 + i:02d}T09:00:00Z",
                }
                for i, r in enumerate(rows)
            ]
        },
    )
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": services.settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(services.settings.data_dir),
        "RATIONALE_ORIGIN": services.settings.origin,
    }
    cmd = [
        sys.executable,
        "-m",
        "api.cli",
        "explain",
        "--model",
        "credit@1",
        "--since",
        "2026-03-12",
        "--methods",
        "shap",
        "--quiet",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "4 jobs for credit@1; 4 to run" in result.stdout
    for i in range(6):
        explanations = client.get(f"/v1/decisions/f-{i}").json()["explanations"]
        assert len(explanations) == (1 if i >= 2 else 0)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "4 jobs for credit@1; 0 to run" in again.stdout
