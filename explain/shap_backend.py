"""SHAP attributions per raw input feature.

The algorithm follows the model: TreeExplainer for tree ensembles (sklearn, XGBoost, LightGBM, also as the
last step of a Pipeline), LinearExplainer for linear models, otherwise Permutation (or Kernel on request)
over category-coded raw features. For a pipeline, tree/linear explain the final estimator on the
transformed matrix and the columns each raw feature produced (one-hot, scaling) are summed back to that
feature — exact, because SHAP values are additive. Model-agnostic runs are seeded per row, so one decision
gives the same explanation whatever batch it was computed in.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any

import numpy as np
import pandas as pd

from explain.base import CallMeter, Explainer, Target
from explain.coding import FeatureCoder
from explain.errors import UnsupportedModelError
from explain.results import Attributions, ExplanationResult
from explain.seeding import GLOBAL_RANDOM
from explain.versions import library_versions

ALGORITHMS = ("auto", "tree", "linear", "kernel", "permutation")
TREE_MODULE_HINTS = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm")


_PER_THREAD = threading.local()


def _tree_explainer(model: Any) -> Any:
    """One shap.TreeExplainer per model and thread: building it walks every tree (milliseconds per batch
    otherwise), and shap_values sets attributes on it, so threads do not share one."""
    import shap

    cache: weakref.WeakKeyDictionary[Any, Any] | None = getattr(_PER_THREAD, "trees", None)
    if cache is None:
        cache = _PER_THREAD.trees = weakref.WeakKeyDictionary()
    try:
        return cache[model]
    except (KeyError, TypeError):
        pass
    explainer = shap.TreeExplainer(model)
    with contextlib.suppress(TypeError):  # not weak-referenceable (a raw booster handle): no cache
        cache[model] = explainer
    return explainer


def _final_estimator(estimator: Any) -> tuple[Any, Any | None]:
    """(final model, preprocessing pipeline or None)."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return steps[-1][1], estimator[:-1] if len(steps) > 1 else None
    return estimator, None


def _is_tree(model: Any) -> bool:
    module = type(model).__module__
    name = type(model).__name__
    if module.startswith("sklearn.ensemble") and "HistGradient" in name:
        return True
    return module.startswith(TREE_MODULE_HINTS) and (
        "Forest" in name
        or "Tree" in name
        or "GradientBoosting" in name
        or "Booster" in name
        or "XGB" in name
        or "LGBM" in name
    )


def _is_linear(model: Any) -> bool:
    return type(model).__module__.startswith("sklearn.linear_model") and hasattr(model, "coef_")


def column_map(prep: Any, raw_names: list[str], n_out: int) -> list[int] | None:
    """For each transformed column, the index of the raw feature it came from; None if not derivable."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if prep is None:
        return list(range(len(raw_names))) if n_out == len(raw_names) else None
    if isinstance(prep, Pipeline):
        if len(prep.steps) != 1:
            return None
        prep = prep.steps[0][1]
    if not isinstance(prep, ColumnTransformer):
        return None
    mapping: list[int | None] = [None] * n_out
    for name, transformer, columns in prep.transformers_:
        if transformer == "drop" or (name == "remainder" and transformer == "drop"):
            continue
        out_slice = prep.output_indices_[name]
        cols = [raw_names[c] if isinstance(c, (int, np.integer)) else c for c in np.atleast_1d(columns)]
        width = out_slice.stop - out_slice.start
        if width == 0:
            continue
        if len(cols) == width:
            counts = [1] * len(cols)
        elif hasattr(transformer, "categories_"):
            counts = [len(c) for c in transformer.categories_]
            drop = getattr(transformer, "drop_idx_", None)
            if drop is not None:
                counts = [n - (0 if d is None else 1) for n, d in zip(counts, drop, strict=True)]
            if sum(counts) != width:
                return None
        elif len(cols) == 1:
            counts = [width]
        else:
            return None
        position = out_slice.start
        for col, count in zip(cols, counts, strict=True):
            for _ in range(count):
                mapping[position] = raw_names.index(col)
                position += 1
    if any(m is None for m in mapping):
        return None
    return [int(m) for m in mapping if m is not None]


class ShapExplainer(Explainer):
    method = "shap"

    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: CallMeter
    ) -> list[ExplanationResult]:
        algorithm = str(self.params.get("algorithm", "auto"))
        if algorithm not in ALGORITHMS:
            raise UnsupportedModelError(f"shap algorithm must be one of {', '.join(ALGORITHMS)}")
        final, prep = _final_estimator(self.predictor.estimator)
        if algorithm == "auto":
            algorithm = "tree" if _is_tree(final) else "linear" if _is_linear(final) else "permutation"
        if algorithm in ("tree", "linear"):
            if algorithm == "tree" and not _is_tree(final):
                raise UnsupportedModelError("the tree explainer needs a tree ensemble")
            if algorithm == "linear" and not _is_linear(final):
                raise UnsupportedModelError("the linear explainer needs a linear model")
            exact = self._model_specific(rows, targets, meter, final, prep, algorithm)
            if exact is not None:
                return exact
            algorithm = "permutation"  # the pipeline's columns cannot be mapped back: go model-agnostic
        return self._agnostic(rows, seeds, targets, meter, algorithm)

    # -- tree and linear: exact, vectorised over the whole batch ---------------------------------------
    def _model_specific(
        self,
        rows: pd.DataFrame,
        targets: list[Target],
        meter: CallMeter,
        final: Any,
        prep: Any,
        algorithm: str,
    ) -> list[ExplanationResult] | None:
        import shap

        spec = self.predictor.spec
        names = spec.feature_names
        started = time.perf_counter()
        transformed: Any = None
        if self.predictor.format in ("xgboost-json", "xgboost-ubj", "lightgbm-text"):
            matrix = rows[names].astype(float).to_numpy()
            background = self.background.frame[names].astype(float).to_numpy()
            mapping: list[int] | None = list(range(len(names)))
        else:
            transformed = prep.transform(rows) if prep is not None else None
            matrix = _dense(transformed) if transformed is not None else rows.to_numpy(dtype=float)
            background = matrix[:0]
            if algorithm == "linear":  # only the linear masker needs the transformed background
                background = (
                    _dense(prep.transform(self.background.frame))
                    if prep is not None
                    else self.background.frame.to_numpy(dtype=float)
                )
            mapping = column_map(prep, names, matrix.shape[1])
        if mapping is None:
            return None
        meter.charge(len(rows))
        if algorithm == "tree":
            explainer = _tree_explainer(final)
            backend, params = (
                "shap.TreeExplainer",
                {"algorithm": "tree", "feature_perturbation": "tree_path_dependent"},
            )
        else:
            explainer = shap.LinearExplainer(final, shap.maskers.Independent(background, max_samples=1000))
            backend, params = "shap.LinearExplainer", {"algorithm": "linear", "masker": "independent"}
        explanation = explainer(matrix)
        values = np.asarray(explanation.values, dtype=float)
        base = np.asarray(explanation.base_values, dtype=float)
        margin, proba = self.predictor.margin_and_scores(rows, transformed=transformed)
        compute_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        results = []
        for i, target in enumerate(targets):
            phi, b, f, space = self._select(values, base, margin, proba, i, target)
            raw = np.zeros(len(names))
            np.add.at(raw, mapping, phi)
            results.append(self._result(raw, b, f, space, backend, params, None, target, compute_ms, meter))
        return results

    def _select(
        self,
        values: np.ndarray,
        base: np.ndarray,
        margin: np.ndarray | None,
        proba: np.ndarray,
        i: int,
        target: Target,
    ) -> tuple[np.ndarray, float, float, str]:
        """Pick the target's attributions and the model output in the space SHAP explained."""
        spec = self.predictor.spec
        if not spec.is_classifier:
            b = float(base.reshape(len(values), -1)[i][0]) if base.ndim else float(base)
            return values[i], b, float(proba[i]), "raw"
        k = target.class_index if target.class_index is not None else int(np.argmax(proba[i]))
        est_index = self._estimator_index(k)
        if values.ndim == 3:
            phi = values[i, :, est_index]
            b = float(base[i, est_index]) if base.ndim == 2 else float(base[est_index])
            candidates = []
            if margin is not None and margin.ndim == 2:
                candidates.append((float(margin[i, est_index]), "log_odds"))
            candidates.append((float(proba[i, k]), "probability"))
        else:  # one output: the estimator's class 1 (binary)
            sign = 1.0 if est_index == 1 else -1.0
            phi = sign * values[i]
            b0 = float(base[i]) if base.ndim else float(base)
            b = sign * b0
            candidates = []
            if margin is not None and margin.ndim == 1:
                candidates.append((sign * float(margin[i]), "log_odds"))
            candidates.append((float(proba[i, k]), "probability"))
        total = float(np.sum(phi)) + b
        f, space = min(candidates, key=lambda c: abs(total - c[0]))
        return phi, b, f, space

    def _estimator_index(self, k: int) -> int:
        """Position of spec class k in the estimator's own class order."""
        label = self.predictor.spec.class_labels[k]
        classes = getattr(self.predictor, "_classes", None)
        if classes is None:  # boosters: class order is the spec's order
            return k
        return int(list(classes).index(label))

    # -- kernel and permutation: model-agnostic on coded raw features, seeded per row ------------------
    def _agnostic(
        self, rows: pd.DataFrame, seeds: list[int], targets: list[Target], meter: CallMeter, algorithm: str
    ) -> list[ExplanationResult]:
        coder = FeatureCoder(self.predictor.spec)
        n_background = int(self.params.get("background_size", 50))
        background = coder.encode(self.background.frame)
        if len(background) > n_background:
            pick = np.random.default_rng(0).choice(len(background), n_background, replace=False)
            background = background[np.sort(pick)]
        spec = self.predictor.spec

        model = coder.scorer(self.predictor, meter)

        coded = coder.encode(rows)
        proba = self.predictor.predict_scores(rows)
        if algorithm == "kernel":
            computed = self._kernel(model, background, coded, proba, seeds)
        else:
            computed = [self._permutation(model, background, coded[i : i + 1], seed) for i, seed in enumerate(seeds)]
        results = []
        for i, (target, seed, (values, base, backend, params, compute_ms)) in enumerate(
            zip(targets, seeds, computed, strict=True)
        ):
            phi_all = values.reshape(coded.shape[1], -1)
            if spec.is_classifier:
                k = target.class_index if target.class_index is not None else int(np.argmax(proba[i]))
                phi = phi_all[:, k]
                b = float(np.atleast_1d(base)[k])
                f = float(proba[i, k])
                space = "probability"
            else:
                phi = phi_all[:, 0]
                b = float(np.atleast_1d(base)[0])
                f = float(proba[i])
                space = "raw"
            results.append(self._result(phi, b, f, space, backend, params, seed, target, compute_ms, meter))
        return results

    def _kernel(
        self, model: Any, background: np.ndarray, coded: np.ndarray, proba: np.ndarray, seeds: list[int]
    ) -> list[tuple[np.ndarray, np.ndarray, str, dict[str, Any], float]]:
        """KernelSHAP with the model evaluated for many rows at once (explain/kernel_batch.py)."""
        from explain.kernel_batch import kernel_shap

        nsamples = self.params.get("nsamples", "auto")
        started = time.perf_counter()
        rows = kernel_shap(model, background, coded, proba, seeds=seeds, nsamples=nsamples)
        compute_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        params = {"algorithm": "kernel", "nsamples": nsamples, "background_size": len(background)}
        return [(r.phi, r.expected_value, "shap.KernelExplainer", params, compute_ms) for r in rows]

    def _permutation(
        self, model: Any, background: np.ndarray, row: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any], float]:
        import shap

        started = time.perf_counter()
        max_evals = int(self.params.get("max_evals", max(500, 2 * row.shape[1] + 1)))
        masker = shap.maskers.Independent(background, max_samples=len(background))
        with GLOBAL_RANDOM:  # shap seeds numpy's global generator
            explanation = shap.PermutationExplainer(model, masker, seed=seed)(row, max_evals=max_evals, silent=True)
        values = np.asarray(explanation.values, dtype=float)
        base = np.asarray(explanation.base_values, dtype=float)[0]
        params = {"algorithm": "permutation", "max_evals": max_evals, "background_size": len(background)}
        compute_ms = (time.perf_counter() - started) * 1000
        return values[0], base, "shap.PermutationExplainer", params, compute_ms

    def _result(
        self,
        raw: np.ndarray,
        base: float,
        output: float,
        space: str,
        backend: str,
        params: dict[str, Any],
        seed: int | None,
        target: Target,
        compute_ms: float,
        meter: CallMeter,
    ) -> ExplanationResult:
        spec = self.predictor.spec
        values = {name: float(v) for name, v in zip(spec.feature_names, raw, strict=True)}
        error = abs(sum(values.values()) + base - output)
        label = (
            spec.class_labels[target.class_index]
            if target.class_index is not None
            else ("value" if not spec.is_classifier else "predicted")
        )
        return ExplanationResult(
            method=self.method,
            backend=backend,
            target=label,
            body=Attributions(values=values, base_value=base, output_value=output, output_space=space),
            parameters={**params, "background_sha256": self.background.sha256},
            seed=seed,
            library_versions=library_versions("shap"),
            quality={"additivity_error": error},
            compute_ms=compute_ms,
            model_calls=meter.rows,
        )


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)
