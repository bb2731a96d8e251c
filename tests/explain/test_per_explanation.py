"""Recorded figures belong to one explanation: the same row alone or inside a batch records the same
``model_calls`` and values, budgets count per explanation, and KernelSHAP looks at every feature."""

from __future__ import annotations

import numpy as np
import pytest

from explain.base import Budget
from explain.errors import BudgetExceededError
from explain.registry import create_explainer

CASES = [
    ("shap", {"algorithm": "kernel", "nsamples": 200, "background_size": 20}),
    ("shap", {"algorithm": "permutation", "max_evals": 200, "background_size": 20}),
    ("lime", {"num_samples": 300}),
]


@pytest.mark.parametrize(("method", "params"), CASES)
def test_same_row_alone_and_in_a_batch_records_the_same_figures(cancer, method, params):
    rows = cancer.rows.iloc[:3].reset_index(drop=True)
    explainer = create_explainer(method, predictor=cancer.predictor, background=cancer.background, params=params)
    [alone] = explainer.explain(rows.iloc[[1]], seeds=[22])
    batch = explainer.explain(rows, seeds=[11, 22, 33])
    assert alone.model_calls == batch[1].model_calls > 0
    assert alone.body.values == pytest.approx(batch[1].body.values, abs=1e-9)
    assert alone.parameters == batch[1].parameters


def test_kernel_shap_keeps_every_feature_unless_selection_is_requested(cancer):
    rows = cancer.rows.iloc[:1]
    params = {"algorithm": "kernel", "nsamples": 400, "background_size": 20}
    explainer = create_explainer("shap", predictor=cancer.predictor, background=cancer.background, params=params)
    [full] = explainer.explain(rows, seeds=[5])
    nonzero = sum(1 for v in full.body.values.values() if v != 0)
    assert len(full.body.values) == 30 and nonzero > 10
    assert full.parameters["l1_reg"] is False and full.body.exact is False
    assert "feature selection" not in full.body.approximation

    selected = {**params, "l1_reg": "num_features(5)"}
    explainer = create_explainer("shap", predictor=cancer.predictor, background=cancer.background, params=selected)
    [chosen] = explainer.explain(rows, seeds=[5])
    assert sum(1 for v in chosen.body.values.values() if v != 0) <= 5
    assert chosen.parameters["l1_reg"] == "num_features(5)"
    assert "feature selection l1_reg='num_features(5)'" in chosen.body.approximation


def test_a_budget_is_per_explanation_not_per_batch(cancer):
    params = {"algorithm": "kernel", "nsamples": 200, "background_size": 20}
    explainer = create_explainer("shap", predictor=cancer.predictor, background=cancer.background, params=params)
    [one] = explainer.explain(cancer.rows.iloc[:1], seeds=[1])
    # a cap just above one explanation's cost lets a batch of three through: each stays within its own
    budget = Budget(max_model_calls=one.model_calls)
    results = explainer.explain(cancer.rows.iloc[:3], seeds=[1, 2, 3], budget=budget)
    assert all(r.model_calls <= one.model_calls for r in results)
    with pytest.raises(BudgetExceededError):
        explainer.explain(cancer.rows.iloc[:3], seeds=[1, 2, 3], budget=Budget(max_model_calls=one.model_calls - 1))
    assert np.isfinite([r.quality["additivity_error"] for r in results]).all()
