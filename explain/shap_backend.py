"""SHAP attributions per raw input feature.

The algorithm follows the model. Tree ensembles (sklearn, XGBoost, LightGBM) and linear models get exact
interventional Shapley values with the registered background, also as the last step of a scikit-learn
pipeline whose steps map back to raw features (explain/pipeline.py): TreeSHAP over groups of columns
(explain/tree_shap.py), LinearSHAP on the final estimator's coefficients with affine steps composed in,
summed per raw feature (exact: a linear model is additive over its columns). Other models get
Permutation SHAP (or Kernel on request) over category-coded raw features, seeded per row so one decision
gives the same explanation whatever batch it was computed in — and the result says it is an estimate.

An explicitly requested ``tree`` or ``linear`` that cannot apply is refused (``check``), never silently
replaced; ``auto`` falling back to a model-agnostic estimate records why in the result.

The output space is declared from the model: the units of the trees' leaves or the linear model's link
(log-odds, softmax logit, probability, margin, raw regression output), never guessed from the numbers.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from explain.base import Background, BatchMeter, CallMeter, Explainer, Predictor, Target
from explain.coding import FeatureCoder
from explain.errors import UnsupportedModelError
from explain.pipeline import Decomposed, NotSeparableError, compose_affine, decompose
from explain.results import Attributions, ExplanationResult
from explain.seeding import GLOBAL_RANDOM
from explain.versions import library_versions

ALGORITHMS = ("auto", "tree", "linear", "kernel", "permutation")
TREE_MODULE_HINTS = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm")
BOOSTER_FORMATS = ("xgboost-json", "xgboost-ubj", "lightgbm-text")
TREE_BACKGROUND = 100  # background rows for interventional TreeSHAP unless background_size says otherwise

_LEAVES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_LEAVES_LOCK = threading.Lock()


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
    module = type(model).__module__
    return module.startswith(("sklearn.linear_model", "sklearn.svm")) and hasattr(model, "coef_")


@dataclass(frozen=True, slots=True)
class Plan:
    """How this model will be explained, decided once from the model and the request."""

    algorithm: str  # tree | linear | kernel | permutation
    requested: str
    fallback: str | None = None  # why auto could not be exact
    decomposed: Decomposed | None = None
    leaves: Any = None
    space: str = "raw"
    coef: np.ndarray | None = None  # linear: (outputs, separable columns), affine steps composed in
    intercept: np.ndarray | None = None


def _parts(predictor: Predictor) -> Decomposed:
    names = predictor.spec.feature_names
    if predictor.format in BOOSTER_FORMATS:
        return Decomposed((), predictor.estimator, np.arange(len(names)))
    return decompose(predictor.estimator, names)


def _leaves(final: Any, groups: np.ndarray, n_groups: int) -> tuple[Any, str | None]:
    """The trees as leaf boxes and the units of their leaves, per model and column grouping: parsing
    walks every node, so it is done once per process."""
    from explain.tree_shap import leaves_of

    key = (tuple(int(g) for g in groups), n_groups)
    with _LEAVES_LOCK:
        try:
            cached = _LEAVES.get(final, {})
        except TypeError:  # not weak-referenceable: no cache
            cached = {}
        if key in cached:
            return cached[key]
    ensemble = _ensemble(final)
    parsed = leaves_of(ensemble, groups, n_groups), ensemble.tree_output
    with _LEAVES_LOCK, contextlib.suppress(TypeError):
        _LEAVES.setdefault(final, {})[key] = parsed
    return parsed


def _ensemble(final: Any) -> Any:
    """shap's parse of the trees, or ours where shap has none (multiclass sklearn gradient boosting)."""
    from explain.tree_shap import lightgbm_ensemble, multiclass_gbm_ensemble, xgboost_ensemble

    if type(final).__name__ == "GradientBoostingClassifier" and len(getattr(final, "classes_", ())) > 2:
        return multiclass_gbm_ensemble(final)
    if type(final).__module__.startswith("xgboost"):
        return xgboost_ensemble(final.get_booster() if hasattr(final, "get_booster") else final)
    if type(final).__module__.startswith("lightgbm"):
        return lightgbm_ensemble(final.booster_ if hasattr(final, "booster_") else final)
    import shap

    return shap.TreeExplainer(final).model


def tree_space(ensemble_output: str | None, spec: Any, n_outputs: int) -> str:
    """The units of the trees' leaves, named for this task."""
    if not spec.is_classifier:
        return "raw"
    if ensemble_output == "log_odds":
        return "log_odds" if n_outputs == 1 else "softmax_logit"
    if ensemble_output == "probability":
        return "probability"
    return "margin"


def linear_space(final: Any, spec: Any) -> str:
    """The link of a linear model: logistic regression is log-odds (binary, or one-vs-rest per class)
    or a softmax logit (multinomial); other linear classifiers give a margin; regressors raw output."""
    if not spec.is_classifier:
        return "raw"
    name = type(final).__name__
    if not name.startswith("LogisticRegression"):
        return "margin"
    if len(getattr(final, "classes_", ())) <= 2:
        return "log_odds"
    multi = getattr(final, "multi_class", "auto")
    if multi == "ovr" or (multi in ("auto", "deprecated") and getattr(final, "solver", "") == "liblinear"):
        return "log_odds"
    return "softmax_logit"


def make_plan(predictor: Predictor, background: Background, params: Mapping[str, Any]) -> Plan:
    """Decide the algorithm; raises UnsupportedModelError when an explicit tree/linear cannot apply."""
    requested = str(params.get("algorithm", "auto"))
    if requested not in ALGORITHMS:
        raise UnsupportedModelError(f"shap algorithm must be one of {', '.join(ALGORITHMS)}, not {requested!r}")
    if requested in ("kernel", "permutation"):
        return Plan(requested, requested, space="probability" if predictor.spec.is_classifier else "raw")
    reasons: list[str] = []
    for algorithm in ("tree", "linear") if requested == "auto" else (requested,):
        try:
            return _exact_plan(predictor, background, algorithm, requested)
        except UnsupportedModelError as exc:
            if requested != "auto":
                raise
            reasons.append(str(exc))
    space = "probability" if predictor.spec.is_classifier else "raw"
    return Plan("permutation", requested, fallback="; ".join(dict.fromkeys(reasons)), space=space)


def _exact_plan(predictor: Predictor, background: Background, algorithm: str, requested: str) -> Plan:
    spec = predictor.spec
    parts = _parts(predictor)
    final = parts.final
    kind = type(final).__name__
    if algorithm == "tree":
        if not _is_tree(final):
            raise UnsupportedModelError(f"the tree explainer needs a tree ensemble; the final estimator is {kind}")
        if parts.affine_steps:
            step = type(parts.affine_steps[0]).__name__
            raise UnsupportedModelError(
                f"the tree explainer cannot map the columns of pipeline step {step} back to raw features: "
                f"{_why_not_separable(predictor)}"
            )
        from explain.tree_shap import TreeParseError

        try:
            leaves, output = _leaves(final, parts.groups, len(spec.features))
        except TreeParseError as exc:
            raise UnsupportedModelError(f"the tree explainer cannot explain {kind}: {exc}") from None
        except Exception as exc:  # shap's parser refuses the model
            raise UnsupportedModelError(f"shap cannot read the trees of {kind}: {exc}") from None
        n_outputs = leaves.values.shape[1]
        return Plan("tree", requested, decomposed=parts, leaves=leaves, space=tree_space(output, spec, n_outputs))
    if not _is_linear(final):
        raise UnsupportedModelError(f"the linear explainer needs a linear model; the final estimator is {kind}")
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=float))
    intercept = np.atleast_1d(np.asarray(getattr(final, "intercept_", 0.0), dtype=float))
    if intercept.shape[0] != coef.shape[0]:
        intercept = np.broadcast_to(intercept, (coef.shape[0],)).copy()
    if parts.affine_steps:
        matrix = parts.transform(background.frame)
        try:
            a, c = compose_affine(parts.affine_steps, matrix)
        except NotSeparableError as exc:
            raise UnsupportedModelError(f"the linear explainer cannot compose the pipeline exactly: {exc}") from None
        intercept = intercept + coef @ c
        coef = coef @ a
    return Plan(
        "linear",
        requested,
        decomposed=parts,
        space=linear_space(final, spec),
        coef=coef,
        intercept=intercept,
    )


def _why_not_separable(predictor: Predictor) -> str:
    from explain.pipeline import trace

    parts = _parts(predictor)
    groups, names = parts.groups, None
    for step in parts.affine_steps:
        try:
            groups, names = trace(step, groups, names)
        except NotSeparableError as exc:
            return str(exc)
    return "its output columns mix raw features"


class ShapExplainer(Explainer):
    method = "shap"

    @classmethod
    def check(cls, predictor: Predictor, background: Background, params: Mapping[str, Any]) -> None:
        make_plan(predictor, background, params)

    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: BatchMeter
    ) -> list[ExplanationResult]:
        plan = make_plan(self.predictor, self.background, self.params)
        if plan.algorithm == "tree":
            return self._tree(rows, targets, meter, plan)
        if plan.algorithm == "linear":
            return self._linear(rows, targets, meter, plan)
        return self._agnostic(rows, seeds, targets, meter, plan)

    # -- tree and linear: exact, vectorised over the whole batch ---------------------------------------
    def _background_rows(self, default: int | None) -> pd.DataFrame:
        frame = self.background.frame
        size = self.params.get("background_size", default)
        if size is not None and len(frame) > int(size):
            pick = np.sort(np.random.default_rng(0).choice(len(frame), int(size), replace=False))
            frame = frame.iloc[pick]
        return frame

    def _tree(
        self, rows: pd.DataFrame, targets: list[Target], meter: BatchMeter, plan: Plan
    ) -> list[ExplanationResult]:
        from explain.tree_shap import group_tree_shap

        assert plan.decomposed is not None
        started = time.perf_counter()
        spec = self.predictor.spec
        meter.charge(1)
        background = self._background_rows(TREE_BACKGROUND)
        parts = plan.decomposed
        if self.predictor.format in BOOSTER_FORMATS:
            matrix = rows[spec.feature_names].astype(float).to_numpy()
            bg_matrix = background[spec.feature_names].astype(float).to_numpy()
        else:
            matrix, bg_matrix = parts.transform(rows), parts.transform(background)
        shap_values = group_tree_shap(plan.leaves, matrix, bg_matrix, len(spec.features))
        margin, proba = self._outputs(rows, parts, matrix)
        compute_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        params = {
            "algorithm": "tree",
            "feature_perturbation": "interventional",
            "background_size": len(background),
            "grouping": "raw features",
        }
        results = []
        for i, target in enumerate(targets):
            phi, b, f = self._select(shap_values.values[i], shap_values.base, margin, proba, i, target, plan.space)
            results.append(
                self._result(phi, b, f, plan, "rationale.GroupTreeSHAP", params, None, target, compute_ms, meter.row(i))
            )
        return results

    def _linear(
        self, rows: pd.DataFrame, targets: list[Target], meter: BatchMeter, plan: Plan
    ) -> list[ExplanationResult]:
        import shap

        assert plan.decomposed is not None and plan.coef is not None and plan.intercept is not None
        started = time.perf_counter()
        spec = self.predictor.spec
        meter.charge(1)
        parts = plan.decomposed
        background = self._background_rows(None)
        matrix, bg_matrix = parts.transform(rows), parts.transform(background)
        coef = plan.coef[0] if plan.coef.shape[0] == 1 else plan.coef
        intercept = plan.intercept[0] if plan.coef.shape[0] == 1 else plan.intercept
        masker = shap.maskers.Independent(bg_matrix, max_samples=len(bg_matrix))
        explainer = shap.LinearExplainer((coef, intercept), masker)
        values = np.asarray(explainer.shap_values(matrix), dtype=float)
        if values.ndim == 2:
            values = values[..., None]
        base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
        membership = np.zeros((len(parts.groups), len(spec.features)))
        membership[np.arange(len(parts.groups)), parts.groups] = 1.0
        grouped = np.einsum("rck,cg->rgk", values, membership)  # columns summed per raw feature
        margin, proba = self._outputs(rows, parts, parts.to_final(matrix))
        compute_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        params = {
            "algorithm": "linear",
            "masker": "independent",
            "background_size": len(background),
            "composed_steps": [type(s).__name__ for s in parts.affine_steps],
        }
        results = []
        for i, target in enumerate(targets):
            phi, b, f = self._select(grouped[i], base, margin, proba, i, target, plan.space)
            results.append(
                self._result(phi, b, f, plan, "shap.LinearExplainer", params, None, target, compute_ms, meter.row(i))
            )
        return results

    def _outputs(
        self, rows: pd.DataFrame, parts: Decomposed, final_input: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """The model's own outputs (margin, scores) to check additivity against, not the explainer's."""
        if self.predictor.format in BOOSTER_FORMATS or not (parts.steps or parts.affine_steps):
            return self.predictor.margin(rows), self.predictor.predict_scores(rows)
        final = parts.final
        margin = (
            np.asarray(final.decision_function(final_input), dtype=float)
            if hasattr(final, "decision_function")
            else None
        )
        return margin, self.predictor.predict_scores(rows)

    def _select(
        self,
        values: np.ndarray,
        base: np.ndarray,
        margin: np.ndarray | None,
        proba: np.ndarray,
        i: int,
        target: Target,
        space: str,
    ) -> tuple[np.ndarray, float, float]:
        """The target's attributions (features, outputs -> features), base and the model's output in
        ``space``. With one output for two classes, that output is the estimator's second class."""
        spec = self.predictor.spec
        if not spec.is_classifier:
            return values[:, 0], float(base[0]), float(proba[i])
        k = target.class_index if target.class_index is not None else int(np.argmax(proba[i]))
        est = self._estimator_index(k)
        if space == "probability":
            return values[:, est], float(base[est]), float(proba[i, k])
        if margin is None:
            raise UnsupportedModelError("the model gives no margin to explain")
        if values.shape[1] == 1:  # binary, one output for the estimator's class 1
            sign = 1.0 if est == 1 else -1.0
            m = float(np.ravel(margin)[i]) if margin.ndim == 1 else float(margin[i, -1])
            return sign * values[:, 0], sign * float(base[0]), sign * m
        return values[:, est], float(base[est]), float(margin[i, est])

    def _estimator_index(self, k: int) -> int:
        """Position of spec class k in the estimator's own class order."""
        label = self.predictor.spec.class_labels[k]
        classes = getattr(self.predictor, "_classes", None)
        if classes is None:  # boosters: class order is the spec's order
            return k
        return int(list(classes).index(label))

    # -- kernel and permutation: model-agnostic on coded raw features, seeded per row ------------------
    def _agnostic(
        self, rows: pd.DataFrame, seeds: list[int], targets: list[Target], meter: BatchMeter, plan: Plan
    ) -> list[ExplanationResult]:
        coder = FeatureCoder(self.predictor.spec)
        n_background = int(self.params.get("background_size", 50))
        background = coder.encode(self.background.frame)
        if len(background) > n_background:
            pick = np.random.default_rng(0).choice(len(background), n_background, replace=False)
            background = background[np.sort(pick)]
        spec = self.predictor.spec
        coded = coder.encode(rows)
        proba = self.predictor.predict_scores(rows)
        if plan.algorithm == "kernel":
            computed = self._kernel(coder, meter, background, coded, proba, seeds)
        else:
            computed = []
            for i, seed in enumerate(seeds):
                meter.row(i).start()
                model = coder.scorer(self.predictor, meter.row(i))
                computed.append(self._permutation(model, background, coded[i : i + 1], seed))
        results = []
        for i, (target, seed, (values, base, backend, params, compute_ms, note)) in enumerate(
            zip(targets, seeds, computed, strict=True)
        ):
            phi_all = values.reshape(coded.shape[1], -1)
            if spec.is_classifier:
                k = target.class_index if target.class_index is not None else int(np.argmax(proba[i]))
                phi, b, f = phi_all[:, k], float(np.atleast_1d(base)[k]), float(proba[i, k])
            else:
                phi, b, f = phi_all[:, 0], float(np.atleast_1d(base)[0]), float(proba[i])
            if plan.fallback:
                params = {**params, "requested_algorithm": plan.requested, "fallback_reason": plan.fallback}
            results.append(
                self._result(phi, b, f, plan, backend, params, seed, target, compute_ms, meter.row(i), note=note)
            )
        return results

    def _kernel(
        self,
        coder: FeatureCoder,
        meter: BatchMeter,
        background: np.ndarray,
        coded: np.ndarray,
        proba: np.ndarray,
        seeds: list[int],
    ) -> list[tuple[np.ndarray, np.ndarray, str, dict[str, Any], float, str]]:
        """KernelSHAP with the model evaluated for many rows at once (explain/kernel_batch.py). No feature
        selection unless ``l1_reg`` asks for one: shap's default keeps 10 features and zeroes the rest."""
        from explain.kernel_batch import kernel_shap

        nsamples = self.params.get("nsamples", "auto")
        l1_reg = self.params.get("l1_reg", False)
        started = time.perf_counter()

        def score(z: np.ndarray) -> np.ndarray:
            return coder.scores(self.predictor, z)

        def charge(row: int | None, n: int) -> None:
            (meter if row is None else meter.row(row)).charge(n)

        rows = kernel_shap(
            score, background, coded, proba, seeds=seeds, nsamples=nsamples, l1_reg=l1_reg, charge=charge
        )
        compute_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        params = {
            "algorithm": "kernel",
            "nsamples": nsamples,
            "l1_reg": l1_reg,
            "background_size": len(background),
        }
        note = "KernelSHAP estimate from sampled coalitions (no error bound)"
        if l1_reg not in (False, 0, None):
            note += f"; feature selection l1_reg={l1_reg!r} as requested: unselected features are reported as 0"
        return [(r.phi, r.expected_value, "shap.KernelExplainer", params, compute_ms, note) for r in rows]

    def _permutation(
        self, model: Any, background: np.ndarray, row: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any], float, str]:
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
        note = "PermutationSHAP estimate from sampled feature orderings (no error bound)"
        return values[0], base, "shap.PermutationExplainer", params, compute_ms, note

    def _result(
        self,
        raw: np.ndarray,
        base: float,
        output: float,
        plan: Plan,
        backend: str,
        params: dict[str, Any],
        seed: int | None,
        target: Target,
        compute_ms: float,
        meter: CallMeter,
        *,
        note: str | None = None,
    ) -> ExplanationResult:
        spec = self.predictor.spec
        values = {name: float(v) for name, v in zip(spec.feature_names, raw, strict=True)}
        error = abs(sum(values.values()) + base - output)
        label = (
            spec.class_labels[target.class_index]
            if target.class_index is not None
            else ("value" if not spec.is_classifier else "predicted")
        )
        exact = plan.algorithm in ("tree", "linear")
        if not exact and plan.fallback:
            note = f"{note}; exact SHAP was not possible: {plan.fallback}"
        return ExplanationResult(
            method=self.method,
            backend=backend,
            target=label,
            body=Attributions(
                values=values,
                base_value=base,
                output_value=output,
                output_space=plan.space,
                exact=exact,
                approximation=None if exact else note,
            ),
            parameters={**params, "background_sha256": self.background.sha256},
            seed=seed,
            library_versions=library_versions("shap"),
            quality={"additivity_error": error},
            compute_ms=compute_ms,
            model_calls=meter.rows,
        )
