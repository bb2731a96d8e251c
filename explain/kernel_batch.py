"""KernelSHAP over many rows with the model evaluated once per chunk of rows, not once per row.

``shap.KernelExplainer.shap_values`` explains row after row, and for each row calls the model three
times: on the background (when the explainer is built), on the row itself, and on the row's synthetic
samples (``nsamples`` times the background rows). For a scikit-learn pipeline each call costs milliseconds of
fixed overhead (DataFrame building, the ColumnTransformer), so most of a small model's time goes there.

Here the background is evaluated once per batch, the rows' own outputs come from the caller (the batch
already predicted them), and each row's sampling — shap's own code, seeded per row — stops where shap
would call the model; the synthetic samples of a chunk of rows then go to the model in one call, and
each row is finished with shap's own ``run`` and ``solve``. The sampling, the weights and the regression
are shap's; only when the model is called changes, so a row's values do not depend on its batch (up to
floating-point rounding in the model's own arithmetic on a larger matrix).

Written against shap 0.49's ``KernelExplainer`` (``explain`` → ``run`` → ``solve``); the tests compare it
with ``shap_values`` row by row.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explain.seeding import GLOBAL_RANDOM

# Synthetic rows sent to the model in one call: past ~10^5 rows the per-call overhead is negligible,
# and each pending row holds nsamples * background rows in memory until its chunk is evaluated.
CHUNK_MODEL_ROWS = 150_000


@dataclass(frozen=True, slots=True)
class KernelRow:
    """One row's attributions, (features, outputs), and the explainer's expected value per output."""

    phi: np.ndarray
    expected_value: np.ndarray


class _Deferred(Exception):
    """Raised from ``run``: the row's samples are ready and wait for the chunk's model call."""


class _Known:
    """Stands in for shap's model wrapper where the output is already known."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs

    def f(self, _data: Any) -> np.ndarray:
        return self.outputs


@functools.cache
def _deferring_kernel_class() -> type:
    import shap

    class DeferringKernelExplainer(shap.KernelExplainer):
        def run(self) -> None:
            raise _Deferred

        def sample_rows(self) -> np.ndarray:
            return np.asarray(self.synth_data[self.nsamplesRun * self.N : self.nsamplesAdded * self.N, :])

        def finish(self, outputs: np.ndarray) -> np.ndarray:
            """The rest of shap's ``explain`` once the model has answered: its ``run`` with the outputs,
            then its ``solve`` per output."""
            self.model = _Known(outputs)
            shap.KernelExplainer.run(self)
            phi = np.zeros((self.data.groups_size, self.D))
            for d in range(self.D):
                vphi, _ = self.solve(self.nsamples / self.max_samples, d)
                phi[self.varyingInds, d] = vphi
            return phi

    return DeferringKernelExplainer


def kernel_shap(
    model: Callable[[np.ndarray], np.ndarray],
    background: np.ndarray,
    rows: np.ndarray,
    outputs: np.ndarray,
    *,
    seeds: Sequence[int],
    nsamples: int | str,
    l1_reg: Any = False,
    charge: Callable[[int | None, int], None] | None = None,
) -> list[KernelRow]:
    """KernelSHAP values of every row of ``rows`` (coded features); ``outputs`` is model(rows), in the
    shape the model returns it. Each row is seeded with its own seed, as if it were explained alone.

    ``l1_reg`` is shap's feature selection, off unless asked for (shap's own default keeps 10 features).
    ``charge(row, n)`` is told how many rows the model evaluated for a row (``row=None``: for every row,
    the background, which each row would have evaluated alone)."""
    explainer_class = _deferring_kernel_class()
    if charge is not None:
        charge(None, len(background))
    base = explainer_class(model, background)
    expected = np.atleast_1d(np.asarray(base.expected_value, dtype=float))
    per_row = (nsamples if isinstance(nsamples, int) else 2 * rows.shape[1] + 2**11) * len(background)
    chunk = max(1, CHUNK_MODEL_ROWS // max(1, per_row))
    results: list[KernelRow | None] = [None] * len(rows)
    for start in range(0, len(rows), chunk):
        pending: list[tuple[int, Any]] = []
        for i in range(start, min(start + chunk, len(rows))):
            explainer = copy.copy(base)  # explain() re-allocates its per-row state on the copy
            explainer.model = _Known(outputs[i : i + 1])
            try:
                with GLOBAL_RANDOM:  # shap samples from numpy's global generator
                    np.random.seed(int(seeds[i]) % (2**32))
                    phi = explainer.explain(rows[i : i + 1], nsamples=nsamples, silent=True, l1_reg=l1_reg)
            except _Deferred:
                pending.append((i, explainer))
                continue
            results[i] = KernelRow(np.asarray(phi, dtype=float).reshape(rows.shape[1], -1), expected)
        if not pending:
            continue
        samples = [explainer.sample_rows() for _, explainer in pending]
        if charge is not None:
            for (i, _), block in zip(pending, samples, strict=True):
                charge(i, len(block))
        answers = np.asarray(model(np.concatenate(samples)), dtype=float)
        offset = 0
        for (i, explainer), block in zip(pending, samples, strict=True):
            phi = explainer.finish(answers[offset : offset + len(block)])
            offset += len(block)
            results[i] = KernelRow(phi.reshape(rows.shape[1], -1), expected)
    return [r for r in results if r is not None]
