"""`rationale replay`: recorded explanations re-run from the stored artifact and compared with the ledger."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from api.services.replaying import _largest_difference, replay_decision
from api.workers.local_pool import drain
from tests.api.helpers import applicant_rows, credit_manifest


def _cli(services: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": services.settings.effective_database_url,
        "RATIONALE_DATA_DIR": str(services.settings.data_dir),
    }
    command = [sys.executable, "-m", "api.cli", "replay", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.heavy
def test_explanations_replay_from_the_stored_artifact_and_a_changed_artifact_is_named(
    client, services, credit_artifact
):
    manifest = credit_manifest(
        explainers={"default_methods": ["shap", "lime", "anchors"], "params": {"lime": {"num_samples": 300}}}
    )
    resp = client.post(
        "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m.skops", credit_artifact)}
    )
    assert resp.status_code == 201, resp.text
    row = applicant_rows(1, seed=21)[0]
    assert (
        client.post("/v1/decisions", json={"decision_id": "r-1", "model": "credit@1", "inputs": row}).status_code == 201
    )
    assert drain(services) == 3

    report = replay_decision(services, "r-1")
    assert report.ok and report.artifact_intact
    assert sorted(o.method for o in report.outcomes) == ["anchors", "lime", "shap"]
    assert all(o.reproduced and o.detail == "identical" for o in report.outcomes), report.outcomes

    done = _cli(services, "r-1", "--method", "shap")
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout and "reproduced" in done.stdout and "lime" not in done.stdout

    missing = _cli(services, "no-such-decision")
    assert missing.returncode == 2 and "'no-such-decision' is not recorded" in missing.stderr

    blob = services.blobs.path_for(report.artifact_sha256)  # someone swaps the artifact file on disk
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes() + b"\n")
    changed = _cli(services, "r-1")
    assert changed.returncode == 1
    assert "CHANGED since the decision" in changed.stdout and changed.stdout.count("DIFFERS") == 3


def test_differences_are_located():
    recorded = {"values": {"income": 0.25, "age": -0.5}, "rule": "a AND b", "changes": [{"to": 3}]}
    assert _largest_difference(recorded, json.loads(json.dumps(recorded))) == (0.0, "result.values.income")
    moved = {"values": {"income": 0.25, "age": -0.45}, "rule": "a AND b", "changes": [{"to": 3}]}
    worst, where = _largest_difference(recorded, moved)
    assert where == "result.values.age" and math.isclose(worst, 0.05)
    assert _largest_difference(recorded, {**recorded, "rule": "a"}) == (math.inf, "result.rule")
    assert _largest_difference(recorded, {**recorded, "changes": []}) == (math.inf, "result.changes (length)")
