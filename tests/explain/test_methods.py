"""LIME, anchors and counterfactuals on the credit pipeline (string categoricals) and breast cancer:
raw-feature results, faithful anchors, valid counterfactuals, reproducibility, budgets."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from explain.base import Budget
from explain.counterfactual_backend import check_candidate
from explain.errors import BudgetExceededError, UnsupportedModelError
from explain.reasons import reasons_for
from explain.registry import create_explainer
from explain.results import AnchorRule, Attributions, Counterfactuals

SEEDS = [11, 22, 33, 44]


def run(fitted, method, params=None, n=2, **kwargs):
    explainer = create_explainer(method, predictor=fitted.predictor, background=fitted.background, params=params)
    return explainer.explain(fitted.rows.iloc[:n], seeds=SEEDS[:n], **kwargs)


@pytest.mark.parametrize("data", ["credit", "cancer"])
def test_lime_reports_raw_features_and_reproduces(request, data):
    fitted = request.getfixturevalue(data)
    params = {"num_samples": 500}
    first, second = run(fitted, "lime", params), run(fitted, "lime", params)
    for result, again in zip(first, second, strict=True):
        assert isinstance(result.body, Attributions)
        assert list(result.body.values) == fitted.predictor.spec.feature_names
        assert result.body == again.body and result.seed == again.seed
        assert result.library_versions["lime"] == "0.2.0.1"
        assert result.parameters["background_sha256"] == fitted.background.sha256


def anchor_holds(condition: str, frame: pd.DataFrame) -> pd.Series:
    text = condition.replace(",", "")
    between = re.fullmatch(r"(-?[\d.]+) < (\w+) <= (-?[\d.]+)", text)
    if between:
        low, name, high = between.groups()
        return (frame[name] > float(low)) & (frame[name] <= float(high))
    name, op, value = re.fullmatch(r"(\w+) (<=|>=|<|>|=) (.+)", text).groups()
    if op == "=":
        return frame[name].astype(str) == value
    column = frame[name].astype(float)
    return {
        "<=": column <= float(value),
        ">=": column >= float(value),
        "<": column < float(value),
        ">": column > float(value),
    }[op]


@pytest.mark.heavy
@pytest.mark.parametrize("data", ["credit", "cancer"])
def test_anchor_precision_holds_on_fresh_samples(request, data):
    fitted = request.getfixturevalue(data)
    results = run(fitted, "anchors", {"threshold": 0.9}, n=2)
    predicted = np.array(fitted.predictor.predict_labels(fitted.fresh))
    checked = 0
    for result in results:
        rule = result.body
        assert isinstance(rule, AnchorRule) and rule.conditions
        names = fitted.predictor.spec.feature_names
        assert all(any(n in c.split() for n in names) for c in rule.conditions), rule.conditions
        mask = np.ones(len(fitted.fresh), dtype=bool)
        for condition in rule.conditions:
            mask &= anchor_holds(condition, fitted.fresh).to_numpy()
        if mask.sum() < 20:
            continue  # too rare in the fresh sample to measure
        measured = float(np.mean(predicted[mask] == result.target))
        assert abs(measured - rule.precision) <= 0.05, (rule.rule, measured, rule.precision)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("data", ["credit", "cancer"])
def test_anchor_rules_use_raw_names_and_reproduce(request, data):
    fitted = request.getfixturevalue(data)
    first = run(fitted, "anchors", {"threshold": 0.9}, n=1)
    second = run(fitted, "anchors", {"threshold": 0.9}, n=1)
    assert first[0].body == second[0].body
    for condition in first[0].body.conditions:
        if " = " in condition:
            name, value = condition.split(" = ")
            assert value in fitted.predictor.spec.feature(name).categories


def assert_valid_and_repeatable(fitted, results, again) -> None:
    """Every stored counterfactual keeps immutables, stays in ranges and categories, really flips the
    model's class; the same seed gives the same result."""
    spec = fitted.predictor.spec
    immutable = {f.name for f in spec.features if f.immutable}
    for i, (result, repeat) in enumerate(zip(results, again, strict=True)):
        body = result.body
        assert isinstance(body, Counterfactuals)
        assert body == repeat.body and result.seed == repeat.seed
        assert body.items, f"nothing found for row {i}: {body.rejection_reasons}"
        original = fitted.rows.iloc[i].to_dict()
        assert body.desired != fitted.predictor.predict_labels(fitted.rows.iloc[[i]])[0]
        for cf in body.items:
            candidate = {**original, **{c.feature: c.to_value for c in cf.changes}}
            assert not immutable & {c.feature for c in cf.changes}
            assert check_candidate(spec, original, candidate) is None
            frame = pd.DataFrame([candidate])[spec.feature_names]
            assert fitted.predictor.predict_labels(frame)[0] == body.desired == cf.predicted
        distances = [cf.distance for cf in body.items]
        assert distances == sorted(distances)


@pytest.mark.heavy
@pytest.mark.parametrize("data", ["credit", "cancer"])
def test_every_dice_counterfactual_is_valid_and_reproducible(request, data):
    fitted = request.getfixturevalue(data)
    params = {"total_cfs": 3}
    results, again = run(fitted, "counterfactuals", params, n=3), run(fitted, "counterfactuals", params, n=3)
    assert results[0].backend.startswith("dice")
    assert_valid_and_repeatable(fitted, results, again)


@pytest.mark.heavy
@pytest.mark.parametrize("data", ["credit", "cancer"])
def test_alibi_counterfactual_proto_is_valid_and_reproducible(request, data):
    import tensorflow  # noqa: F401 - part of the dev install: its absence must fail, not skip

    fitted = request.getfixturevalue(data)
    params = {"backend": "alibi-proto", "max_iterations": 200}
    results, again = run(fitted, "counterfactuals", params, n=1), run(fitted, "counterfactuals", params, n=1)
    assert results[0].backend == "alibi.CounterfactualProto"
    assert_valid_and_repeatable(fitted, results, again)


def test_invalid_candidates_are_named():
    from explain.samples import credit_spec

    spec = credit_spec()
    original = {
        "income": 50_000.0,
        "debt_to_income": 0.3,
        "credit_history_years": 10.0,
        "loan_amount": 9000.0,
        "open_accounts": 3,
        "age": 40,
        "purpose": "car",
        "housing": "rent",
        "employment": "salaried",
    }
    assert check_candidate(spec, original, {**original, "age": 30}) == "immutable feature age changed"
    assert check_candidate(spec, original, {**original, "purpose": "yacht"}) == "purpose outside its categories"
    assert check_candidate(spec, original, {**original, "income": -5.0}) == "income outside its range"


@pytest.mark.parametrize("data", ["credit", "cancer"])
@pytest.mark.parametrize("method", ["shap", "lime", "anchors", "counterfactuals"])
def test_budget_overrun_is_an_error_not_a_hang(request, data, method):
    fitted = request.getfixturevalue(data)
    params = {"algorithm": "permutation"} if method == "shap" else {}
    with pytest.raises(BudgetExceededError, match="budget exceeded"):
        run(fitted, method, params, n=1, budget=Budget(max_model_calls=50))


def test_regression_models_are_explained_and_anchors_refuse_them():
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    from explain.artifacts import dump_skops, load_predictor
    from explain.base import Background
    from explain.schema import Feature, ModelSpec

    data = load_diabetes(as_frame=True)
    frame = data.data
    spec = ModelSpec(task="regression", features=tuple(Feature(c, "number") for c in frame.columns))
    model = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(frame, data.target)
    predictor = load_predictor(dump_skops(model), format="skops", spec=spec)
    background = Background(frame.iloc[:100], "diabetes")
    rows = frame.iloc[200:202]
    for method, params in (("shap", {}), ("lime", {"num_samples": 300})):
        [result, _] = create_explainer(method, predictor=predictor, background=background, params=params).explain(
            rows, seeds=[1, 2]
        )
        assert result.target == "value" and result.body.output_space == "raw"
        if method == "shap":
            assert result.quality["additivity_error"] < 1e-6
    with pytest.raises(UnsupportedModelError):
        create_explainer("anchors", predictor=predictor, background=background).explain(rows, seeds=[1, 2])


def test_multiclass_explains_the_requested_class():
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from explain.artifacts import dump_skops, load_predictor
    from explain.base import Background, Target
    from explain.schema import Feature, ModelSpec

    iris = load_iris(as_frame=True)
    frame = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    labels = np.array(iris.target_names)[iris.target]
    spec = ModelSpec(
        task="multiclass",
        class_labels=tuple(iris.target_names),
        features=tuple(Feature(c, "number") for c in frame.columns),
    )
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, labels)
    predictor = load_predictor(dump_skops(model), format="skops", spec=spec)
    background = Background(frame.iloc[::3], "iris")
    rows = frame.iloc[[0, 75]]
    explainer = create_explainer("shap", predictor=predictor, background=background)
    default = explainer.explain(rows, seeds=[1, 2])
    assert [r.target for r in default] == predictor.predict_labels(rows)
    chosen = explainer.explain(rows, seeds=[1, 2], targets=[Target(2), Target(2)])
    assert [r.target for r in chosen] == ["virginica", "virginica"]
    for r in chosen:
        assert r.quality["additivity_error"] < 1e-6


def test_reasons_read_like_sentences(credit):
    shap_result = run(credit, "shap", n=1)[0]
    inputs = credit.rows.iloc[0].to_dict()
    rule = AnchorRule(conditions=("purpose = edu", "income <= 41,200"), precision=0.97, coverage=0.1, threshold=0.95)
    from explain.results import Counterfactual, ExplanationResult, FeatureChange

    cfs = Counterfactuals(
        desired="approved",
        items=(
            Counterfactual(
                changes=(FeatureChange("income", 38_000.0, 52_000.0),),
                predicted="approved",
                distance=0.1,
                sparsity=1,
                valid=True,
            ),
        ),
    )

    def wrap(body):
        return ExplanationResult("x", "x", "approved", body, {}, None, {})

    reasons = reasons_for(
        credit.predictor.spec, inputs, attributions=shap_result, anchor=wrap(rule), counterfactuals=wrap(cfs)
    )
    top = reasons.top_reasons[0]
    label = credit.predictor.spec.feature(top["feature"]).display_name
    assert reasons.sentences[0].startswith(label) and "the most" in reasons.sentences[0]
    assert reasons.anchor_sentence == (
        "The decision holds whenever loan purpose is edu and annual income at most 41,200 "
        "(precision 97%, coverage 10%)."
    )
    assert reasons.counterfactual_sentence == (
        "Had Annual income been 52,000 instead of 38,000, the outcome would have been approved."
    )
    custom = reasons_for(
        credit.predictor.spec,
        inputs,
        attributions=shap_result,
        anchor=None,
        counterfactuals=None,
        templates={"reason_first": "Mostly {feature}."},
    )
    assert custom.sentences[0] == f"Mostly {label[:1].upper() + label[1:]}."
