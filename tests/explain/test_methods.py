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


def test_anchor_rules_use_category_names_and_reproduce(credit):
    first = run(credit, "anchors", {"threshold": 0.9}, n=1)
    second = run(credit, "anchors", {"threshold": 0.9}, n=1)
    assert first[0].body == second[0].body
    for condition in first[0].body.conditions:
        if " = " in condition:
            name, value = condition.split(" = ")
            assert value in credit.predictor.spec.feature(name).categories


@pytest.mark.heavy
def test_every_counterfactual_is_valid_and_reproducible(credit):
    results = run(credit, "counterfactuals", {"total_cfs": 3}, n=3)
    again = run(credit, "counterfactuals", {"total_cfs": 3}, n=3)
    spec = credit.predictor.spec
    for i, (result, repeat) in enumerate(zip(results, again, strict=True)):
        body = result.body
        assert isinstance(body, Counterfactuals) and body == repeat.body
        original = credit.rows.iloc[i].to_dict()
        assert body.items, "DiCE found nothing for this applicant"
        for cf in body.items:
            candidate = dict(original)
            candidate.update({c.feature: c.to_value for c in cf.changes})
            assert "age" not in {c.feature for c in cf.changes}  # immutable
            assert check_candidate(spec, original, candidate) is None
            frame = pd.DataFrame([candidate])[spec.feature_names]
            assert credit.predictor.predict_labels(frame)[0] == body.desired == cf.predicted
            assert body.desired != credit.predictor.predict_labels(credit.rows.iloc[[i]])[0]
        distances = [cf.distance for cf in body.items]
        assert distances == sorted(distances)


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


@pytest.mark.parametrize("method", ["shap", "lime", "anchors", "counterfactuals"])
def test_budget_overrun_is_an_error_not_a_hang(credit, method):
    params = {"algorithm": "permutation"} if method == "shap" else {}
    with pytest.raises(BudgetExceededError, match="budget exceeded"):
        run(credit, method, params, n=1, budget=Budget(max_model_calls=50))


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


@pytest.mark.heavy
def test_alibi_counterfactual_proto_gives_valid_counterfactuals(credit):
    import tensorflow  # noqa: F401 - part of the dev install: its absence must fail, not skip

    # Known gap (issue #3 stays open): TensorFlow's optimiser is not bit-for-bit reproducible here, so
    # unlike every other method two runs can differ in the last digits; validity is what is asserted.
    [result] = run(credit, "counterfactuals", {"backend": "alibi-proto", "max_iterations": 200}, n=1)
    assert result.backend == "alibi.CounterfactualProto"
    body = result.body
    assert body.items, body.rejection_reasons
    spec = credit.predictor.spec
    original = credit.rows.iloc[0].to_dict()
    for cf in body.items:
        candidate = {**original, **{c.feature: c.to_value for c in cf.changes}}
        assert check_candidate(spec, original, candidate) is None
        frame = pd.DataFrame([candidate])[spec.feature_names]
        assert credit.predictor.predict_labels(frame)[0] == body.desired
