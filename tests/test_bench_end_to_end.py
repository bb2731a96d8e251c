"""The validity checks of bench/end_to_end.py on real library output for two rows: each passes what the
library gives and fails what is wrong (a changed attribution, a rule the row does not satisfy, a rule
whose precision does not reach the threshold)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench import end_to_end as e2e

# the library side calls the frame-fitted estimator with arrays, as the bench does (it filters this too)
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names:UserWarning")


@pytest.fixture(scope="module")
def work() -> e2e.Workload:
    return e2e.workload()


@pytest.fixture(scope="module")
def rows(work: e2e.Workload) -> np.ndarray:
    return work.rows(2, seed=3).to_numpy(dtype=float)


def test_tree_shap_efficiency_holds_and_a_changed_attribution_fails(work: e2e.Workload, rows: np.ndarray) -> None:
    _, results = e2e.run_library(e2e.tree_library(work, rows), len(rows), threads=0)
    assert e2e.count_valid(work, "TreeSHAP", rows, results) == 2
    assert e2e.count_valid(work, "TreeSHAP", rows, e2e.tree_batch(work, rows)) == 2
    values, base, space, k = results[0]
    wrong = values.copy()
    wrong[3] += 1e-3
    assert not e2e.shap_valid(work, wrong, base, rows[:1], space, k)
    assert not e2e.shap_valid(work, values, base, rows[:1], space, 1 - k)  # the other class's log-odds
    assert not e2e.shap_valid(work, values[:-1], base, rows[:1], space, k)  # a feature missing


def test_kernel_shap_efficiency_holds_and_a_wrong_base_fails(work: e2e.Workload, rows: np.ndarray) -> None:
    _, results = e2e.run_library(e2e.kernel_library(work, rows), len(rows), threads=2)
    assert e2e.count_valid(work, "KernelSHAP", rows, results) == 2
    values, base, space, k = results[1]
    assert e2e.efficiency_error(work, values, base, rows[1:2], space, k) < 1e-9
    assert not e2e.shap_valid(work, values, base + 0.01, rows[1:2], space, k)
    assert not e2e.shap_valid(work, values, base, rows[1:2], "log_odds", k)  # checked in the wrong space


def test_an_api_shap_body_is_read_by_feature_name(work: e2e.Workload, rows: np.ndarray) -> None:
    _, results = e2e.run_library(e2e.tree_library(work, rows), 1, threads=0)
    values, base, _, _ = results[0]
    k = int(work.classes(rows[0])[0])
    sign = 1.0 if k == 1 else -1.0  # the API explains the predicted class
    named = dict(reversed(list(zip(work.names, (sign * v for v in values), strict=True))))  # any key order
    decision: dict[str, Any] = {
        "explanations": [
            {
                "method": "shap",
                "created_at": "2026-01-01T00:00:00.000001Z",
                "body": {"result": {"values": named, "base_value": sign * base, "output_space": "log_odds"}},
            }
        ]
    }
    result, recorded = e2e.api_result(decision, "shap", work.names)
    assert recorded is not None and recorded.microsecond == 1
    assert e2e.count_valid(work, "TreeSHAP", rows[:1], [result]) == 1
    del named[work.names[0]]
    assert e2e.api_result(decision, "shap", work.names)[0] is None


def test_printed_conditions_are_read_to_their_printed_precision() -> None:
    values = {"mean_area": 1234.4, "mean_smoothness": 0.0864}
    assert e2e.satisfies("mean_area <= 1,234", values)  # printed as an integer: 1,234.4 rounds to it
    assert not e2e.satisfies("mean_area <= 1,233", values)
    assert e2e.satisfies("mean_smoothness > 0.09", values)  # 0.0864 prints as 0.09
    assert not e2e.satisfies("mean_smoothness > 0.10", values)
    assert e2e.satisfies("0.08 < mean_smoothness <= 0.09", values)
    assert not e2e.satisfies("0.10 < mean_smoothness <= 0.12", values)
    with pytest.raises(ValueError):
        e2e.satisfies("mean_area is large", values)


@pytest.mark.heavy
def test_an_anchor_holds_for_its_row_and_a_wrong_rule_fails(work: e2e.Workload, rows: np.ndarray) -> None:
    _, results = e2e.run_library(e2e.anchors_library(work, rows), 1, threads=0)
    conditions = results[0]
    check = e2e.check_anchor(work, conditions, rows[0], seed=1)
    assert check.valid, check
    # the same rule with every comparison turned around: the row no longer satisfies it
    flipped = [c.replace("<=", "\0").replace(">", "<=").replace("\0", ">") for c in conditions if " < " not in c]
    if flipped:
        assert not e2e.check_anchor(work, flipped, rows[0], seed=1).satisfied
    # a rule every row satisfies: its precision is the share of the data set with the same prediction
    loose = [f"{work.names[0]} > -1"]
    weak = e2e.check_anchor(work, loose, rows[0], seed=1)
    assert weak.satisfied and weak.covered == len(work.frame)
    assert not weak.valid and weak.precision < e2e.ANCHOR_THRESHOLD
    assert not weak.perturbed_holds
