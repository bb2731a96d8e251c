"""Decisions over HTTP: recording, validation, idempotency, explanations, search — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math

import pytest

from api.workers.local_pool import drain
from tests.api.helpers import applicant_rows, ledger_size


def _decision(i: int, row: dict, **extra) -> dict:
    return {"decision_id": f"d-{i}", "model": "credit@1", "inputs": row, **extra}


def _count(client) -> int:
    return len(client.get("/v1/decisions", params={"limit": 1000}).json()["items"])


def test_one_decision_gets_output_ledger_entry_and_a_shap_explanation(client, services, registered):
    row = applicant_rows(1)[0]
    resp = client.post("/v1/decisions", json=_decision(1, row, subject_ref="s-1"))
    assert resp.status_code == 201, resp.text
    [rec] = resp.json()["decisions"]
    assert rec["created"] is True
    assert rec["output"]["label"] in ("approved", "declined")
    assert set(rec["output"]["scores"]) == {"approved", "declined"}
    assert [j["method"] for j in rec["jobs"]] == ["shap"]
    assert drain(services) == 1

    got = client.get("/v1/decisions/d-1").json()
    assert got["ledger"]["index"] == rec["ledger"]["index"]
    [explanation] = got["explanations"]
    assert explanation["status"] == "succeeded"
    body = explanation["body"]
    assert body["backend"] == "rationale.GroupTreeSHAP"  # exact, through the one-hot pipeline
    assert body["result"]["exact"] is True and body["result"]["output_space"] == "log_odds"
    assert set(body["result"]["values"]) == set(row)  # raw features, not one-hot columns
    assert body["quality"]["additivity_error"] < 1e-6
    assert body["background_sha256"] == registered["background_sha256"]
    assert "shap" in body["library_versions"]
    assert got["jobs"][0]["state"] == "succeeded"
    job = client.get(f"/v1/jobs/{rec['jobs'][0]['job_id']}").json()
    assert job["state"] == "succeeded" and job["explanation_id"] == explanation["explanation_id"]


def test_batch_is_recorded_and_explained_in_one_go(client, services, registered):
    rows = applicant_rows(40)
    resp = client.post("/v1/decisions", json={"decisions": [_decision(i, r) for i, r in enumerate(rows)]})
    assert resp.status_code == 201
    indexes = [d["ledger"]["index"] for d in resp.json()["decisions"]]
    assert indexes == list(range(indexes[0], indexes[0] + 40))
    assert drain(services) == 40
    for i in (0, 17, 39):
        exp = client.get(f"/v1/decisions/d-{i}").json()["explanations"][0]["body"]
        assert exp["quality"]["additivity_error"] < 1e-6


def test_idempotent_on_decision_id(client, registered):
    row = applicant_rows(1)[0]
    first = client.post("/v1/decisions", json=_decision(7, row))
    size = ledger_size(client)
    again = client.post("/v1/decisions", json=_decision(7, row))
    assert again.status_code == 200
    assert again.json()["decisions"][0]["created"] is False
    assert again.json()["decisions"][0]["ledger"] == first.json()["decisions"][0]["ledger"]
    assert ledger_size(client) == size
    changed = dict(row, income=row["income"] + 1)
    conflict = client.post("/v1/decisions", json=_decision(7, changed))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"
    assert ledger_size(client) == size


def test_a_batch_with_one_conflict_writes_nothing(client, registered):
    rows = applicant_rows(3)
    client.post("/v1/decisions", json=_decision(0, rows[0]))
    size, count = ledger_size(client), _count(client)
    batch = [_decision(1, rows[1]), _decision(0, rows[2])]
    assert client.post("/v1/decisions", json={"decisions": batch}).status_code == 409
    assert (ledger_size(client), _count(client)) == (size, count)


BAD_INPUTS = [
    (lambda r: {**r, "shoe_size": 42}, "inputs.shoe_size"),
    (lambda r: {k: v for k, v in r.items() if k != "income"}, "inputs.income"),
    (lambda r: {**r, "income": "lots"}, "inputs.income"),
    (lambda r: {**r, "purpose": "yacht"}, "inputs.purpose"),
    (lambda r: {**r, "income": None}, "inputs.income"),
    (lambda r: {**r, "open_accounts": 2.5}, "inputs.open_accounts"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_INPUTS)
def test_bad_inputs_are_refused_naming_the_field(client, registered, mutate, field):
    row = mutate(applicant_rows(1)[0])
    size = ledger_size(client)
    resp = client.post(
        "/v1/decisions", json={"decisions": [_decision(1, applicant_rows(1, seed=3)[0]), _decision(2, row)]}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == f"decisions[1].{field}"
    assert "Traceback" not in resp.text
    assert ledger_size(client) == size and _count(client) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_never_coerced(client, registered, literal):
    row = applicant_rows(1)[0]
    text = json.dumps(_decision(1, {**row, "income": 1.0})).replace('"income": 1.0', f'"income": {literal}')
    resp = client.post("/v1/decisions", content=text, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["field"] == "inputs.income"
    ctx = json.dumps(_decision(2, row, context={"score": 424242.25})).replace("424242.25", literal)
    resp = client.post("/v1/decisions", content=ctx, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["field"] == "context.score"
    assert ledger_size(client) == 1  # only the model registration


def test_unknown_model_and_malformed_bodies(client, registered):
    row = applicant_rows(1)[0]
    resp = client.post("/v1/decisions", json={"decision_id": "x", "model": "nope@9", "inputs": row})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["field"] == "model"
    resp = client.post("/v1/decisions", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["field"] == "body"
    resp = client.post("/v1/decisions", json={"decision_id": "x", "model": "credit@1", "inputs": row, "extra": 1})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["field"] == "extra"
    resp = client.post("/v1/decisions", json={**_decision(1, row), "explain": ["astrology"]})
    assert resp.status_code == 422
    assert ledger_size(client) == 1


def test_client_output_is_recomputed_and_skew_recorded(client, registered):
    row = applicant_rows(1)[0]
    honest = client.post("/v1/decisions", json=_decision(1, row)).json()["decisions"][0]["output"]
    wrong_label = "declined" if honest["label"] == "approved" else "approved"
    resp = client.post("/v1/decisions", json=_decision(2, row, output={"label": wrong_label}))
    assert resp.status_code == 201
    assert resp.json()["decisions"][0]["output_mismatch"] is True
    same = client.post("/v1/decisions", json=_decision(3, row, output=honest))
    assert same.json()["decisions"][0]["output_mismatch"] is False
    got = client.get("/v1/decisions/d-2").json()
    assert got["client_output"] == {"label": wrong_label} and got["output"]["label"] == honest["label"]


def test_search_filters_and_cursor(client, registered):
    rows = applicant_rows(25)
    batch = [
        _decision(i, r, subject_ref=f"s-{i % 3}", occurred_at=f"2026-03-{1 + i:02d}T12:00:00Z")
        for i, r in enumerate(rows)
    ]
    assert client.post("/v1/decisions", json={"decisions": batch}).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"model": "credit@1", "limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/decisions", params=params).json()
        seen += [d["decision_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"d-{i}" for i in range(25)]
    subject = client.get("/v1/decisions", params={"subject_ref": "s-1"}).json()["items"]
    assert [d["decision_id"] for d in subject] == [f"d-{i}" for i in range(25) if i % 3 == 1]
    window = client.get(
        "/v1/decisions", params={"since": "2026-03-05T00:00:00Z", "until": "2026-03-10T00:00:00Z"}
    ).json()["items"]
    assert [d["decision_id"] for d in window] == [f"d-{i}" for i in range(4, 9)]
    assert client.get("/v1/decisions", params={"model": "credit"}).json()["items"]
    assert client.get("/v1/decisions", params={"cursor": "abc"}).status_code == 422
    assert client.get("/v1/decisions", params={"since": "2026-03-05T00:00:00"}).status_code == 422


def test_outcomes_are_appended_once(client, registered):
    row = applicant_rows(1)[0]
    client.post("/v1/decisions", json=_decision(1, row))
    first = client.post("/v1/decisions/d-1/outcome", json={"label": "declined"})
    assert first.status_code == 201
    assert client.post("/v1/decisions/d-1/outcome", json={"label": "declined"}).status_code == 200
    assert client.post("/v1/decisions/d-1/outcome", json={"label": "approved"}).status_code == 409
    assert client.post("/v1/decisions/d-1/outcome", json={"label": "maybe"}).status_code == 422
    assert client.post("/v1/decisions/nope/outcome", json={"label": "declined"}).status_code == 404
    assert client.get("/v1/decisions/d-1").json()["outcome"]["label"] == "declined"
    items = client.get("/v1/decisions", params={"outcome": "declined"}).json()["items"]
    assert [d["decision_id"] for d in items] == ["d-1"]


def test_kernel_and_permutation_additivity_on_the_demo_pipeline(client, services, registered):
    rows = applicant_rows(3)
    client.post("/v1/decisions", json={"decisions": [_decision(i, r) for i, r in enumerate(rows)]})
    for algorithm in ("kernel", "permutation"):
        resp = client.post(
            "/v1/decisions/d-0/explanations",
            json={"methods": ["shap"], "params": {"shap": {"algorithm": algorithm}}},
        )
        assert resp.status_code == 202, resp.text
    drain(services)
    bodies = [e["body"] for e in client.get("/v1/decisions/d-0").json()["explanations"]]
    by_backend = {b["backend"]: b for b in bodies}
    assert {"rationale.GroupTreeSHAP", "shap.KernelExplainer", "shap.PermutationExplainer"} <= set(by_backend)
    for body in by_backend.values():
        assert body["quality"]["additivity_error"] < 1e-3
        assert not math.isnan(body["result"]["base_value"])


def test_unknown_routes_and_decisions_are_json_404s(client, registered):
    resp = client.get("/v1/decisions/nope")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/v1/jobs/nope").status_code == 404


def test_an_explicit_algorithm_that_cannot_apply_is_a_422_saying_why(client, services, registered):
    client.post("/v1/decisions", json={"decisions": [_decision(0, applicant_rows(1)[0])]})
    resp = client.post(
        "/v1/decisions/d-0/explanations", json={"methods": ["shap"], "params": {"shap": {"algorithm": "linear"}}}
    )
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "unsupported_model"
    assert (
        "linear explainer needs a linear model; the final estimator is GradientBoostingClassifier" in error["message"]
    )
    jobs = client.get("/v1/decisions/d-0").json()["jobs"]
    assert not [j for j in jobs if (j.get("params") or {}).get("algorithm") == "linear"]  # nothing queued


def test_agreement_is_stored_with_the_newest_explanation_and_search_filters_on_it(client, services, registered):
    from explain.agreement import agreement
    from explain.results import ExplanationResult

    rows = applicant_rows(6)
    client.post("/v1/decisions", json={"decisions": [_decision(i, r, explain=[]) for i, r in enumerate(rows)]})
    for i in range(4):  # d-4 and d-5 keep a single method: nothing to compare
        methods = ["shap", "lime"] if i < 4 else ["shap"]
        resp = client.post(
            f"/v1/decisions/d-{i}/explanations",
            json={"methods": methods, "params": {"lime": {"num_samples": 20 + 40 * i}}},
        )
        assert resp.status_code == 202, resp.text
    client.post("/v1/decisions/d-4/explanations", json={"methods": ["shap"]})
    drain(services)
    expected: dict[str, bool] = {}
    for i in range(6):
        explanations = sorted(
            client.get(f"/v1/decisions/d-{i}").json()["explanations"], key=lambda e: e["ledger"]["index"]
        )
        latest = {e["method"]: ExplanationResult.from_dict(e["body"]) for e in explanations}
        newest = explanations[-1]["body"] if explanations else {}
        if len(latest) < 2:
            assert "agreement" not in newest
            continue
        verdict = agreement(latest)
        assert newest["agreement"] == json.loads(json.dumps(verdict.to_dict()))
        expected[f"d-{i}"] = bool(verdict.agrees)
    assert len(expected) == 4

    def found(value: str) -> set[str]:
        resp = client.get("/v1/decisions", params={"agreement": value, "limit": 100})
        assert resp.status_code == 200, resp.text
        return {d["decision_id"] for d in resp.json()["items"]}

    assert found("agree") == {d for d, agrees in expected.items() if agrees}
    assert found("disagree") == {d for d, agrees in expected.items() if not agrees}
    assert client.get("/v1/decisions", params={"agreement": "maybe"}).status_code == 422
