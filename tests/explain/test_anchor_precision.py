"""Anchors carry a precision re-measured on an independent seeded sample, with a confidence bound, and a
rule below its threshold is said not to hold."""

from __future__ import annotations

import numpy as np

from explain.anchors_backend import remeasure, wilson_lower
from explain.coding import FeatureCoder
from explain.reasons import reasons_for
from explain.registry import create_explainer
from explain.results import AnchorRule, ExplanationResult
from explain.schema import Feature, ModelSpec


def test_wilson_lower_bound():
    assert wilson_lower(0, 0) == 0.0
    assert 0.0 < wilson_lower(95, 100) < 0.95
    assert abs(wilson_lower(950, 1000) - 0.9379) < 1e-3  # one-sided 95% Wilson bound
    assert wilson_lower(1000, 1000) > 0.997


def test_a_rule_that_does_not_decide_the_outcome_is_measured_as_not_holding():
    spec = ModelSpec(
        task="binary",
        class_labels=("no", "yes"),
        features=(Feature("a", "number"), Feature("b", "number")),
    )
    coder = FeatureCoder(spec)
    background = np.random.default_rng(0).uniform(0, 1, (500, 2))

    def model(z):
        return (np.atleast_2d(z)[:, 1] > 0.5).astype(int)  # only b matters

    row = np.array([0.2, 0.9])
    weak = remeasure(["a <= 0.50"], row, background, coder, model, 1, n=2000, seed=3)
    assert 0.4 < weak[0] < 0.6 and weak[1] < 0.9 and weak[2] == 2000
    strong = remeasure(["b > 0.50"], row, background, coder, model, 1, n=2000, seed=3)
    assert strong[0] == 1.0 and strong[1] > 0.99
    assert remeasure(["a <= 0.50"], row, background, coder, model, 1, n=2000, seed=3) == weak  # seeded

    rule = AnchorRule(
        ("a <= 0.50",),
        precision=0.97,
        coverage=0.5,
        threshold=0.9,
        checked_precision=weak[0],
        precision_lower_bound=weak[1],
        precision_samples=2000,
    )
    assert rule.holds is False and AnchorRule.from_dict(rule.to_dict()) == rule
    sentence = reasons_for(
        spec,
        {"a": 0.2, "b": 0.9},
        attributions=None,
        counterfactuals=None,
        anchor=ExplanationResult("anchors", "alibi.AnchorTabular", "yes", rule, {}, 1, {}),
    ).anchor_sentence
    assert "does not reliably hold" in sentence and "requested 90%" in sentence


def test_stored_anchor_precision_is_rechecked_and_bounded(credit):
    explainer = create_explainer(
        "anchors", predictor=credit.predictor, background=credit.background, params={"threshold": 0.9}
    )
    [result] = explainer.explain(credit.rows.iloc[:1], seeds=[7])
    rule = result.body
    assert rule.precision_samples == 2000 and result.parameters["precision_samples"] == 2000
    assert 0.0 <= rule.precision_lower_bound <= rule.checked_precision <= 1.0
    assert rule.holds == (rule.precision_lower_bound >= 0.9)
    assert result.body.to_dict()["holds"] == rule.holds
