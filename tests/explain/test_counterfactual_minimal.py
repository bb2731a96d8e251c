"""Counterfactuals are minimised on the model: still valid, never farther than DiCE's own candidates,
no change the flip does not need, each changed number at the class boundary."""

from __future__ import annotations

import pandas as pd
import pytest

from explain.counterfactual_backend import check_candidate, mad_l1, mad_scales
from explain.registry import create_explainer


def explain(fitted, params, n=3):
    explainer = create_explainer(
        "counterfactuals", predictor=fitted.predictor, background=fitted.background, params=params
    )
    return explainer.explain(fitted.rows.iloc[:n], seeds=[3, 4, 5][:n])


@pytest.mark.parametrize("method", ["random", "genetic"])
def test_minimised_counterfactuals_are_valid_smaller_and_at_the_boundary(credit, method):
    spec = credit.predictor.spec
    minimised = explain(credit, {"method": method})
    raw = explain(credit, {"method": method, "minimise": False})
    scales = mad_scales(spec, credit.background.frame)
    for i, (small, big) in enumerate(zip(minimised, raw, strict=True)):
        assert small.parameters["minimise"] is True and big.parameters["minimise"] is False
        assert small.body.items, small.body.rejection_reasons
        assert small.body.items[0].distance <= big.body.items[0].distance + 1e-12
        original = credit.rows.iloc[i].to_dict()
        for cf in small.body.items:
            candidate = {**original, **{c.feature: c.to_value for c in cf.changes}}
            assert check_candidate(spec, original, candidate) is None
            assert cf.distance == pytest.approx(mad_l1(spec, original, candidate, scales))
            assert cf.sparsity == len(cf.changes)

            def label(row):
                return credit.predictor.predict_labels(pd.DataFrame([row])[spec.feature_names])[0]

            assert label(candidate) == small.body.desired
            for change in cf.changes:
                feature = spec.feature(change.feature)
                if feature.type == "number":  # a little toward the original and the class flips back
                    step = 1e-3 * scales[change.feature] * (1 if change.from_value > change.to_value else -1)
                    assert label({**candidate, change.feature: change.to_value + step}) != small.body.desired
        distances = [cf.distance for cf in small.body.items]
        assert distances == sorted(distances)
