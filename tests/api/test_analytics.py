"""Drift, importance, performance and fairness over HTTP, on SQLite and PostgreSQL, checked against scipy,
scikit-learn and Fairlearn run on the same samples (read back decision by decision)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chi2_contingency, ks_2samp

import storage.analytics
from api.container import Services
from explain.samples import credit_spec
from tests.api.analytics_data import START, Scenario, build_scenario, decisions_of

pytestmark = pytest.mark.heavy
NUMERIC = [f.name for f in credit_spec().features if f.type in ("number", "integer")]
CATEGORIES = [f.name for f in credit_spec().features if f.type == "category"]


@pytest.fixture
def scenario(services: Services, credit_artifact: bytes, linear_artifact: bytes) -> Scenario:
    return build_scenario(services, credit_artifact, linear_artifact)


def _bins(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    p = np.histogram(reference, edges)[0] / len(reference)
    q = np.histogram(current, edges)[0] / len(current)
    return p, q


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum(rel_entr(q, p) + rel_entr(p, q)))  # symmetrised KL = sum (q - p) ln(q / p)


def test_drift_between_versions_matches_scipy(
    client: TestClient, services: Services, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = client.get("/v1/models/credit/drift", params={"reference_version": "1", "current_version": "2"})
    assert resp.status_code == 200, resp.text
    drift = resp.json()
    monkeypatch.setattr(storage.analytics, "CHUNK", 7)  # many chunks, the last one short: the same figures
    versions = {"reference_version": "1", "current_version": "2"}
    assert client.get("/v1/models/credit/drift", params=versions).json() == drift
    perf = client.get("/v1/models/credit/performance").json()
    monkeypatch.setattr(storage.analytics, "CHUNK", 20_000)
    assert client.get("/v1/models/credit/performance").json() == perf
    assert drift["reference"]["decisions"] == drift["current"]["decisions"] == scenario.per_version
    assert drift["reference"]["explained"] == scenario.per_version
    one, two = decisions_of(services, "1"), decisions_of(services, "2")
    by_feature = {d["feature"]: d for d in drift["inputs"]}
    for name in NUMERIC:
        r = np.array([rec.inputs[name] for rec, _ in one], dtype=float)
        c = np.array([rec.inputs[name] for rec, _ in two], dtype=float)
        ks = ks_2samp(r, c)
        p, q = _bins(r, c)
        got = by_feature[name]
        assert got["test"] == "ks"
        assert got["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
        assert got["p_value"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
        assert got["js_distance"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
        assert got["psi"] == pytest.approx(_psi(p, q), abs=1e-12)
    assert by_feature["income"]["p_value"] < 1e-3  # the drift put in by the scenario is found
    for name in CATEGORIES:
        r_counts = pd.Series([rec.inputs[name] for rec, _ in one]).value_counts()
        c_counts = pd.Series([rec.inputs[name] for rec, _ in two]).value_counts()
        cats = sorted(set(r_counts.index) | set(c_counts.index))
        table = np.array([[r_counts.get(k, 0) for k in cats], [c_counts.get(k, 0) for k in cats]], dtype=float)
        chi = chi2_contingency(table)
        got = by_feature[name]
        assert got["test"] == "chi2"
        assert got["statistic"] == pytest.approx(chi.statistic, abs=1e-9)
        assert got["p_value"] == pytest.approx(chi.pvalue, abs=1e-12)
        p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
        assert got["js_distance"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
        assert got["psi"] == pytest.approx(_psi(p, q), abs=1e-12)

    means = {}
    for label, rows in (("reference", one), ("current", two)):
        means[label] = {n: float(np.mean([abs(v[n]) for _, v in rows])) for n in NUMERIC + CATEGORIES}
    ranks = {label: {n: i + 1 for i, n in enumerate(sorted(m, key=lambda k: (-m[k], k)))} for label, m in means.items()}
    for got in drift["attributions"]:
        name = got["feature"]
        r = np.array([v[name] for _, v in one])
        c = np.array([v[name] for _, v in two])
        assert got["reference_mean_abs"] == pytest.approx(means["reference"][name], rel=1e-12)
        assert got["current_mean_abs"] == pytest.approx(means["current"][name], rel=1e-12)
        assert got["change"] == pytest.approx(means["current"][name] - means["reference"][name], abs=1e-12)
        assert got["reference_rank"] == ranks["reference"][name]
        assert got["current_rank"] == ranks["current"][name]
        assert got["ks_statistic"] == pytest.approx(ks_2samp(r, c).statistic, abs=1e-12)
        p, q = _bins(r, c)
        assert got["js_distance"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)

    # windows by time: the first and second week of version 1
    week = {"reference_since": START.isoformat(), "reference_until": "2026-02-09T00:00:00+00:00"}
    week |= {"current_since": "2026-02-09T00:00:00+00:00", "current_until": "2026-02-16T00:00:00+00:00"}
    by_time = client.get("/v1/models/credit/drift", params={**week, "current_version": "1"}).json()
    first = [rec for rec, _ in one if rec.occurred_at < START + pd.Timedelta(days=7)]
    assert by_time["reference"]["decisions"] == len(first)
    assert by_time["current"]["decisions"] == scenario.per_version - len(first)


def test_importance_and_performance(client: TestClient, services: Services, scenario: Scenario) -> None:
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    imp = client.get("/v1/models/credit/importance").json()
    assert [r["version"] for r in imp["rows"]] == ["1", "2"]
    for row in imp["rows"]:
        values = [v for _, v in decisions_of(services, row["version"])]
        assert row["explanations"] == len(values)
        for name, mean in row["mean_abs"].items():
            assert mean == pytest.approx(np.mean([abs(v[name]) for v in values]), rel=1e-9)
    daily = client.get("/v1/models/credit/importance", params={"bucket": "day", "version": "1"}).json()
    assert len(daily["rows"]) == 14 and {r["bucket"] for r in daily["rows"]} >= {"2026-02-02", "2026-02-15"}
    assert sum(r["explanations"] for r in daily["rows"]) == scenario.per_version
    weekly = client.get("/v1/models/credit/importance", params={"bucket": "week"}).json()
    assert [(r["version"], r["bucket"]) for r in weekly["rows"]] == [
        ("1", "2026-02-02"),
        ("1", "2026-02-09"),
        ("2", "2026-02-16"),
        ("2", "2026-02-23"),
    ]
    monthly = client.get("/v1/models/credit/importance", params={"bucket": "month"}).json()
    assert {r["bucket"] for r in monthly["rows"]} == {"2026-02-01", "2026-03-01"}

    perf = client.get("/v1/models/credit/performance", params={"bucket": "all"}).json()
    assert perf["positive_class"] == "approved"
    for row in perf["rows"]:
        rows = decisions_of(services, row["version"])
        known = [(rec, scenario.outcomes[rec.decision_id]) for rec, _ in rows if rec.decision_id in scenario.outcomes]
        assert row["decisions"] == len(rows) and row["with_outcome"] == len(known)
        assert row["missing_outcomes"] == len(rows) - len(known)
        y = np.array([label == "approved" for _, label in known])
        pred = np.array([rec.output["label"] == "approved" for rec, _ in known])
        score = np.array([rec.output["scores"]["approved"] for rec, _ in known])
        realised = row["realised"]
        assert realised["accuracy"] == pytest.approx(np.mean(y == pred))
        assert realised["precision"] == pytest.approx(precision_score(y, pred))
        assert realised["recall"] == pytest.approx(recall_score(y, pred))
        assert realised["roc_auc"] == pytest.approx(roc_auc_score(y, score))
        assert realised["brier"] == pytest.approx(np.mean((score - y) ** 2))
        assert sum(b["decisions"] for b in realised["calibration"]) == len(known)
        all_scores = np.array([rec.output["scores"]["approved"] for rec, _ in rows])
        all_pred = np.array([rec.output["label"] == "approved" for rec, _ in rows])
        confidence = np.where(all_pred, all_scores, 1 - all_scores)
        estimated = row["estimated"]
        assert estimated["accuracy"] == pytest.approx(np.mean(confidence))
        assert estimated["precision"] == pytest.approx(all_scores[all_pred].sum() / all_pred.sum())
        assert estimated["recall"] == pytest.approx(all_scores[all_pred].sum() / all_scores.sum())
        assert 0.5 < estimated["roc_auc"] <= 1.0
    weekly_perf = client.get("/v1/models/credit/performance", params={"bucket": "week", "version": "1"}).json()
    last_week = weekly_perf["rows"][-1]
    assert last_week["missing_outcomes"] == 30 and last_week["estimated"]["accuracy"] is not None


def test_fairness_matches_fairlearn_on_the_decisions(
    client: TestClient, services: Services, scenario: Scenario
) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        selection_rate,
    )

    rows = decisions_of(services, "1") + decisions_of(services, "2")
    for group, key in (("housing", lambda r: r.inputs["housing"]), ("region", lambda r: r.context["region"])):
        resp = client.get("/v1/models/credit/fairness", params={"group": group})
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["source"] == ("input" if group == "housing" else "context")
        sensitive = np.array([key(rec) for rec, _ in rows])
        y_pred = np.array([rec.output["label"] == "approved" for rec, _ in rows], dtype=int)
        frame = MetricFrame(metrics=selection_rate, y_true=y_pred, y_pred=y_pred, sensitive_features=sensitive)
        for figures in got["groups"]:
            assert figures["selection_rate"] == pytest.approx(frame.by_group[figures["group"]])
            assert figures["decisions"] == int((sensitive == figures["group"]).sum())
        assert got["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(y_pred, y_pred, sensitive_features=sensitive)
        )
        assert got["demographic_parity_ratio"] == pytest.approx(
            demographic_parity_ratio(y_pred, y_pred, sensitive_features=sensitive)
        )
        known = np.array([rec.decision_id in scenario.outcomes for rec, _ in rows])
        y_true = np.array([scenario.outcomes.get(rec.decision_id) == "approved" for rec, _ in rows], dtype=int)
        assert got["with_outcome"] == known.sum()
        assert got["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y_true[known], y_pred[known], sensitive_features=sensitive[known])
        )
    refused: list[tuple[dict[str, Any], str]] = [
        ({"group": "income"}, "group"),
        ({"group": "housing", "version": "7"}, "version"),
        ({"group": "housing", "positive": "maybe"}, "positive"),
        ({"group": "housing", "since": "2026-02-01T00:00:00"}, "since"),
    ]
    for params, field in refused:
        resp = client.get("/v1/models/credit/fairness", params=params)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["details"]["field"] == field
    assert client.get("/v1/models/nope/drift").status_code == 404
    assert client.get("/v1/models/credit/fairness").status_code == 422


def test_regression_performance_and_refusals(client: TestClient, services: Services) -> None:
    import json

    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import mean_absolute_error, mean_squared_error
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from explain.artifacts import dump_skops
    from explain.samples import make_credit_frame
    from tests.api.helpers import credit_manifest

    frame, _ = make_credit_frame(400, seed=4)
    features = [f for f in credit_manifest()["features"] if f["name"] != "loan_amount"]
    names = [f["name"] for f in features]
    categorical = [f["name"] for f in features if f["type"] == "category"]
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough")
    model = Pipeline([("prep", prep), ("gbm", GradientBoostingRegressor(n_estimators=20, random_state=0))])
    model.fit(frame[names], frame["loan_amount"])
    background = frame[names].head(40).to_dict(orient="records")
    manifest = {"name": "amount", "version": "1", "task": "regression", "features": features, "background": background}
    resp = client.post(
        "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m.skops", dump_skops(model))}
    )
    assert resp.status_code == 201, resp.text
    rows = frame[names].head(40).to_dict(orient="records")
    decisions = [
        {"decision_id": f"amt-{i}", "model": "amount@1", "inputs": r, "occurred_at": START.isoformat(), "explain": []}
        for i, r in enumerate(rows)
    ]
    recorded = client.post("/v1/decisions", json={"decisions": decisions}).json()["decisions"]
    truth = frame["loan_amount"].head(30).tolist()
    for i, value in enumerate(truth):
        assert client.post(f"/v1/decisions/amt-{i}/outcome", json={"value": value}).status_code == 201
    perf = client.get("/v1/models/amount/performance", params={"bucket": "all"}).json()
    [row] = perf["rows"]
    predicted = [d["output"]["value"] for d in recorded[:30]]
    assert row["missing_outcomes"] == 10 and row["with_outcome"] == 30 and row["estimated"] is None
    assert row["realised"]["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert row["realised"]["rmse"] == pytest.approx(mean_squared_error(truth, predicted) ** 0.5)
    refused = client.get("/v1/models/amount/fairness", params={"group": "housing"})
    assert refused.status_code == 422 and refused.json()["error"]["details"]["field"] == "name"
    drift = client.get("/v1/models/amount/drift").json()  # one window against itself: no drift, no SHAP yet
    assert all(i["statistic"] in (0.0, None) for i in drift["inputs"]) and drift["reference"]["explained"] == 0
