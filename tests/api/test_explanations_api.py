"""Every method through the API: which methods run, plain-language reasons, failures in the ledger."""

from __future__ import annotations

import base64
import json

import pytest

from api.workers.local_pool import drain
from tests.api.helpers import applicant_rows, credit_manifest


@pytest.mark.heavy
def test_all_methods_reasons_and_a_budget_failure_recorded_in_the_ledger(client, services, credit_artifact):
    manifest = credit_manifest(
        explainers={
            "default_methods": ["shap", "lime"],
            "params": {"lime": {"num_samples": 400}, "anchors": {"threshold": 0.9}},
            "budgets": {"counterfactuals": {"max_model_calls": 10}},
        },
        templates={"reason_first": "Mostly because of {feature} ({value})."},
    )
    resp = client.post(
        "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m.skops", credit_artifact)}
    )
    assert resp.status_code == 201, resp.text
    row = applicant_rows(1)[0]
    recorded = client.post("/v1/decisions", json={"decision_id": "e-1", "model": "credit@1", "inputs": row})
    assert [j["method"] for j in recorded.json()["decisions"][0]["jobs"]] == ["shap", "lime"]
    more = client.post("/v1/decisions/e-1/explanations", json={"methods": ["anchors", "counterfactuals"]})
    assert more.status_code == 202
    same = client.post("/v1/decisions/e-1/explanations", json={"methods": ["anchors"]})
    assert same.json()["jobs"][0]["job_id"] == more.json()["jobs"][0]["job_id"]
    assert drain(services) == 4

    got = client.get("/v1/decisions/e-1").json()
    by_method = {e["method"]: e for e in got["explanations"]}
    assert {m: e["status"] for m, e in by_method.items()} == {
        "shap": "succeeded",
        "lime": "succeeded",
        "anchors": "succeeded",
        "counterfactuals": "failed",
    }
    failure = by_method["counterfactuals"]
    assert "budget exceeded" in failure["body"]["error"]
    entry = client.get(f"/v1/ledger/entries/{failure['ledger']['index']}").json()
    assert entry["type"] == "explanation.failed"
    assert b"budget exceeded" in base64.b64decode(entry["canonical"])
    job = next(j for j in got["jobs"] if j["method"] == "counterfactuals")
    assert job["state"] == "failed" and "budget" in job["error"]

    anchor = by_method["anchors"]["body"]["result"]
    assert anchor["kind"] == "anchor" and anchor["rule"] and 0 < anchor["precision"] <= 1
    assert by_method["lime"]["body"]["seed"] is not None
    reasons = got["reasons"]
    assert reasons["sentences"][0].startswith("Mostly because of ")
    assert reasons["anchor_sentence"].startswith("The decision holds whenever")
    assert len(reasons["top_reasons"]) == 3


def test_unknown_methods_and_targets_are_refused(client, registered):
    client.post("/v1/decisions", json={"decision_id": "e-2", "model": "credit@1", "inputs": applicant_rows(1)[0]})
    assert client.post("/v1/decisions/e-2/explanations", json={"methods": ["tarot"]}).status_code == 422
    resp = client.post("/v1/decisions/e-2/explanations", json={"methods": ["shap"], "target": "maybe"})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["field"] == "target"
    assert client.post("/v1/decisions/none/explanations", json={"methods": ["shap"]}).status_code == 404
    ok = client.post("/v1/decisions/e-2/explanations", json={"methods": ["shap"], "target": "declined"})
    assert ok.status_code == 202
