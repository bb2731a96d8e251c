"""Batched KernelSHAP gives what shap's own KernelExplainer gives row by row, with fewer model calls."""

from __future__ import annotations

import numpy as np
import pytest
import shap

from explain import kernel_batch
from explain.base import Budget, CallMeter
from explain.coding import FeatureCoder
from explain.kernel_batch import kernel_shap
from explain.samples import make_credit_frame


def shap_row_by_row(model, background, rows, seeds, nsamples):
    """What Rationale did before batching, and what a per-request server does: one explainer per row."""
    out = []
    for i, seed in enumerate(seeds):
        np.random.seed(seed)
        explainer = shap.KernelExplainer(model, background)
        values = np.asarray(explainer.shap_values(rows[i : i + 1], nsamples=nsamples, silent=True))
        out.append((values.reshape(rows.shape[1], -1), np.atleast_1d(explainer.expected_value)))
    return out


class Counting:
    def __init__(self, fn):
        self.fn, self.calls, self.rows = fn, 0, 0

    def __call__(self, z):
        self.calls += 1
        self.rows += len(z)
        return self.fn(z)


@pytest.fixture(scope="module")
def coded(credit):
    coder = FeatureCoder(credit.predictor.spec)
    meter = CallMeter(Budget(max_model_calls=10**12))
    background = coder.encode(credit.background.frame.iloc[:30])
    rows = coder.encode(make_credit_frame(6, seed=5)[0])
    return coder.scorer(credit.predictor, meter), background, rows


def test_classifier_values_match_shap_row_by_row(coded):
    model, background, rows = coded
    seeds = [3, 1, 4, 1, 5, 9]
    expected = shap_row_by_row(model, background, rows, seeds, nsamples=120)
    counting = Counting(model)
    got = kernel_shap(counting, background, rows, model(rows), seeds=seeds, nsamples=120)
    assert len(got) == len(rows)
    for (phi, base), row in zip(expected, got, strict=True):
        np.testing.assert_allclose(row.phi, phi, rtol=0, atol=1e-12)
        np.testing.assert_allclose(row.expected_value, base, rtol=0, atol=1e-12)
    # the background once, then all six rows' samples in one call (shap: three calls per row)
    assert counting.calls == 2


def test_regression_and_rows_with_fewer_than_two_varying_features(coded):
    model, background, rows = coded

    def regression(z):
        return model(z)[:, 1] * 10.0  # one output: shap's scalar path

    same_as_background = np.repeat(background[:1], 2, axis=0)
    same_as_background[1, 0] = background[0, 0] + 12_345.0  # one feature differs from the first background row
    background = np.repeat(background[:1], 3, axis=0)  # a constant background: M is 0 and 1 for these rows
    mixed = np.vstack([same_as_background, rows[:2]])
    seeds = [7, 8, 9, 10]
    expected = shap_row_by_row(regression, background, mixed, seeds, nsamples=60)
    got = kernel_shap(regression, background, mixed, regression(mixed), seeds=seeds, nsamples=60)
    for (phi, _), row in zip(expected, got, strict=True):
        np.testing.assert_allclose(row.phi, phi, rtol=0, atol=1e-12)
    assert np.all(got[0].phi == 0)
    assert np.count_nonzero(got[1].phi) == 1


def test_a_rows_values_do_not_depend_on_its_batch_or_chunk(coded, monkeypatch):
    model, background, rows = coded
    seeds = [21, 22, 23, 24, 25, 26]
    together = kernel_shap(model, background, rows, model(rows), seeds=seeds, nsamples=80)
    monkeypatch.setattr(kernel_batch, "CHUNK_MODEL_ROWS", 1)  # one row per model call
    alone = [
        kernel_shap(model, background, rows[i : i + 1], model(rows[i : i + 1]), seeds=[s], nsamples=80)[0]
        for i, s in enumerate(seeds)
    ]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.phi, b.phi, rtol=0, atol=1e-12)
