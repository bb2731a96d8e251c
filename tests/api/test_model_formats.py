"""Every model format end to end over HTTP: register a native XGBoost (JSON, UBJ) or LightGBM (text) artifact
with a CSV background, log decisions, explain them, and check TreeSHAP against an exact enumeration of
coalitions on the booster's own margin (boosters predict in float32: 1e-5), and for LightGBM against shap's
own TreeExplainer too (shap 0.49 cannot read XGBoost 3 model files, so there it has nothing to say)."""

from __future__ import annotations

import io
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from api.workers.local_pool import drain

FEATURES = ["a", "b", "c", "d"]


def data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: np.round(rng.normal(size=n), 4) for f in FEATURES})


def manifest(name: str, task: str, labels: list[str]) -> dict:
    return {
        "name": name,
        "version": "1",
        "task": task,
        "class_labels": labels,
        "features": [{"name": f, "type": "number"} for f in FEATURES],
        "explainers": {"default_methods": ["shap"], "params": {"shap": {"background_size": 40}}},
    }


def xgboost_artifact(kind: str) -> tuple[bytes, object]:
    import xgboost

    train = data(400, 1)
    y = (train["a"] + train["b"] * train["c"] > 0).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3},
        xgboost.DMatrix(train.to_numpy(), label=y, feature_names=FEATURES),
        num_boost_round=15,
    )
    return bytes(booster.save_raw(raw_format=kind)), booster


def lightgbm_artifact(binary: bool = False) -> tuple[bytes, object]:
    import lightgbm

    train = data(600, 2)
    y = np.select([train["a"] < -0.5, train["b"] > 0.3], [0, 1], 2)
    objective = {"objective": "multiclass", "num_class": 3}
    if binary:
        y, objective = (y == 1).astype(int), {"objective": "binary"}
    booster = lightgbm.train(
        {**objective, "num_leaves": 7, "verbose": -1, "seed": 0},
        lightgbm.Dataset(train.to_numpy(), label=y, feature_name=FEATURES),
        num_boost_round=10,
    )
    return booster.model_to_string().encode(), booster


CASES = {
    "xgboost-json": (lambda: xgboost_artifact("json"), "binary", ["no", "yes"], "log_odds"),
    "xgboost-ubj": (lambda: xgboost_artifact("ubj"), "binary", ["no", "yes"], "log_odds"),
    "lightgbm-text": (lightgbm_artifact, "multiclass", ["x", "y", "z"], "softmax_logit"),
    "lightgbm-binary": (lambda: lightgbm_artifact(binary=True), "binary", ["no", "yes"], "log_odds"),
}


@pytest.mark.parametrize("fmt", list(CASES))
def test_native_boosters_with_a_csv_background_are_explained_exactly(client, services, fmt):
    import shap

    build, task, labels, space = CASES[fmt]
    artifact, booster = build()
    background = data(40, 3)
    csv = io.BytesIO()
    background.to_csv(csv, index=False)
    body = {**manifest(fmt.replace("-", "_"), task, labels), "format": fmt.replace("-binary", "-text")}
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(body)},
        files={"artifact": ("model.bin", artifact), "background": ("background.csv", csv.getvalue())},
    )
    assert resp.status_code == 201, resp.text
    rows = data(3, 4)
    decisions = [
        {"decision_id": f"{fmt}-{i}", "model": f"{body['name']}@1", "inputs": row}
        for i, row in enumerate(rows.to_dict(orient="records"))
    ]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    drain(services)
    margin = margin_function(fmt, booster)
    shap_reference = None
    if fmt == "lightgbm-binary":  # shap folds a multiclass Booster's classes into one output: binary only
        explainer = shap.TreeExplainer(booster, data=background.to_numpy(), feature_perturbation="interventional")
        shap_reference = np.asarray(explainer.shap_values(rows.to_numpy()))
    for i, decision in enumerate(decisions):
        got = client.get(f"/v1/decisions/{decision['decision_id']}").json()
        [explanation] = got["explanations"]
        result = explanation["body"]
        assert explanation["status"] == "succeeded", result
        assert result["backend"] == "rationale.GroupTreeSHAP"
        assert result["result"]["exact"] is True and result["result"]["output_space"] == space
        assert result["quality"]["additivity_error"] < 1e-5
        ours = np.array([result["result"]["values"][f] for f in FEATURES])
        k = labels.index(result["target"])
        phi = exact_shapley(lambda z, k=k: margin(z, k), rows.to_numpy()[i], background.to_numpy())
        np.testing.assert_allclose(ours, phi, atol=1e-5)
        if shap_reference is not None:
            np.testing.assert_allclose(ours, shap_reference[i] if k == 1 else -shap_reference[i], atol=1e-5)


def margin_function(fmt, booster):
    def margin(z: np.ndarray, k: int) -> np.ndarray:
        if fmt.startswith("xgboost"):
            import xgboost

            out = booster.predict(xgboost.DMatrix(z, feature_names=FEATURES), output_margin=True)
        else:
            out = booster.predict(z, raw_score=True)
        out = np.asarray(out, dtype=float)
        if out.ndim == 1:  # binary: the margin of the second class
            return out if k == 1 else -out
        return out[:, k]

    return margin


def exact_shapley(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    n = len(x)
    masks = np.array(list(itertools.product([False, True], repeat=n)))
    hybrids = np.where(masks[:, None, :], x[None, None, :], background[None, :, :]).reshape(-1, n)
    v = f(hybrids).reshape(len(masks), -1).mean(axis=1)
    index = {tuple(m): j for j, m in enumerate(masks)}
    phi = np.zeros(n)
    for m, value in zip(masks, v, strict=True):
        size = int(m.sum())
        for j in np.flatnonzero(~m):
            with_j = m.copy()
            with_j[j] = True
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            phi[j] += weight * (v[index[tuple(with_j)]] - value)
    return phi


@pytest.mark.parametrize("kind", ["forest", "logistic"])
def test_onnx_models_record_the_models_own_scores_and_are_explained_as_an_approximation(client, services, kind):
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    train = data(300, 5)
    y = np.where(train["a"] + train["b"] > 0, "yes", "no")
    model = (
        RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
        if kind == "forest"
        else LogisticRegression()
    ).fit(train.to_numpy(dtype=np.float32), y)
    onnx = to_onnx(model, train.to_numpy(dtype=np.float32)[:1], options={id(model): {"zipmap": kind == "forest"}})
    background = data(30, 6)
    csv = io.BytesIO()
    background.to_csv(csv, index=False)
    body = {**manifest(f"onnx_{kind}", "binary", ["no", "yes"]), "format": "onnx"}
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(body)},
        files={"artifact": ("model.onnx", onnx.SerializeToString()), "background": ("bg.csv", csv.getvalue())},
    )
    assert resp.status_code == 201, resp.text
    rows = data(2, 7)
    decisions = [
        {"decision_id": f"onnx-{kind}-{i}", "model": f"onnx_{kind}@1", "inputs": row}
        for i, row in enumerate(rows.to_dict(orient="records"))
    ]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    drain(services)
    expected = model.predict_proba(rows.to_numpy(dtype=np.float32))
    for i, decision in enumerate(decisions):
        got = client.get(f"/v1/decisions/{decision['decision_id']}").json()
        scores = got["output"]["scores"]
        np.testing.assert_allclose([scores["no"], scores["yes"]], expected[i], atol=1e-5)
        [explanation] = got["explanations"]
        result = explanation["body"]
        assert explanation["status"] == "succeeded", result
        assert result["backend"] == "shap.PermutationExplainer"
        assert result["result"]["exact"] is False and result["result"]["output_space"] == "probability"
        assert "InferenceSession" in result["result"]["approximation"]
        assert result["quality"]["additivity_error"] < 1e-6
