"""The agreement checks between methods, on results built by hand."""

from __future__ import annotations

import pytest

from explain.agreement import agreement, spearman
from explain.results import (
    AnchorRule,
    Attributions,
    Counterfactual,
    Counterfactuals,
    ExplanationResult,
    FeatureChange,
)


def wrap(method, body):
    return ExplanationResult(method, "x", "yes", body, {}, None, {})


def attributions(values):
    return Attributions(values=values, base_value=0.0, output_value=sum(values.values()), output_space="log_odds")


def test_spearman():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1.0], [5.0]) == 1.0


def test_methods_that_tell_the_same_story_agree():
    shap = attributions({"income": 2.0, "debt": -1.0, "age": 0.1, "purpose": 0.05})
    lime = attributions({"income": 0.3, "debt": -0.2, "age": 0.01, "purpose": 0.0})
    rule = AnchorRule(("income > 50,000",), precision=0.97, coverage=0.2, threshold=0.95)
    cf = Counterfactuals("no", (Counterfactual((FeatureChange("income", 60_000.0, 40_000.0),), "no", 1.0, 1, True),))
    found = agreement(
        {
            "shap": wrap("shap", shap),
            "lime": wrap("lime", lime),
            "anchors": wrap("anchors", rule),
            "counterfactuals": wrap("counterfactuals", cf),
        },
        top=2,
    )
    assert found.agrees is True and found.checks == 3
    assert found.anchor_features_in_top == 1.0 and found.counterfactual_features_in_top == 1.0
    assert found.to_dict()["disagreements"] == []


def test_disagreement_is_flagged_with_reasons():
    shap = attributions({"income": 2.0, "debt": -1.0, "age": 0.1})
    lime = attributions({"income": 0.01, "debt": 0.02, "age": 0.5})
    rule = AnchorRule(("age > 60",), precision=0.97, coverage=0.2, threshold=0.95)
    found = agreement({"shap": wrap("shap", shap), "lime": wrap("lime", lime), "anchors": wrap("anchors", rule)}, top=2)
    assert found.agrees is False
    assert any("Spearman" in r for r in found.disagreements)
    assert any("anchor" in r for r in found.disagreements)
    assert agreement({"shap": wrap("shap", shap)}).agrees is None  # nothing to compare
