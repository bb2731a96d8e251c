"""Counterfactuals: the smallest changes to the inputs that flip the model's decision.

The default back-end is DiCE (model-agnostic, MIT). DiCE has been known to ignore ``features_to_vary`` and
permitted ranges, so every candidate is validated here — immutables unchanged, values inside the schema's
ranges and categories, and the model's prediction really equal to the desired class — and only valid ones
are kept; the rejected are counted by reason. alibi's CounterfactualProto is used when asked for and the
``tensorflow`` extra is installed.

Neither library returns the smallest change (DiCE's random sampler multiplies an income many times over
where a few percent flips the class), so every valid candidate is then minimised on the model itself:
first every changed feature the flip does not need is reverted (greedily, costliest first), then each
changed number is bisected toward its original value while the class stays flipped. Candidates are ranked
by a documented distance: the L1 distance with each number scaled by its median absolute deviation over
the background (Wachter et al. 2017), a changed category counting 1; sparsity is the number of features
changed. Every step keeps the validity, immutability and range guarantees (checked again at the end).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from explain.base import BatchMeter, CallMeter, Explainer, Target
from explain.errors import UnsupportedModelError
from explain.results import Counterfactual, Counterfactuals, ExplanationResult, FeatureChange
from explain.schema import ModelSpec
from explain.seeding import GLOBAL_RANDOM
from explain.versions import library_versions

OUTCOME = "__outcome__"
_PROTO_LOCK = threading.Lock()


def _low(feature: Any, column: np.ndarray) -> float:
    if feature.type == "category":
        return 0.0
    return float(feature.minimum) if feature.minimum is not None else float(column.min())


def _high(feature: Any, column: np.ndarray) -> float:
    if feature.type == "category":
        return float(len(feature.categories or ()) - 1)
    return float(feature.maximum) if feature.maximum is not None else float(column.max())


class _DiceModel:
    """What DiCE's sklearn back-end calls: predict_proba on raw DataFrames, column 1 = desired class."""

    def __init__(self, explainer: CounterfactualExplainer, meter: CallMeter, desired: int, current: int) -> None:
        self.explainer, self.meter, self.desired, self.current = explainer, meter, desired, current

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self.meter.charge(len(frame))
        scores = self.explainer.predictor.predict_scores(_typed(self.explainer.predictor.spec, frame))
        desired = scores[:, self.desired]
        return np.column_stack([1.0 - desired, desired])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(frame)[:, 1] > 0.5).astype(int)


def _typed(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[spec.feature_names].copy()
    for f in spec.features:
        if f.type == "integer":
            out[f.name] = np.rint(out[f.name].astype(float)).astype(np.int64)
        elif f.type == "number":
            out[f.name] = out[f.name].astype(float)
        elif f.type == "boolean":
            out[f.name] = out[f.name].astype(bool)
        else:
            out[f.name] = out[f.name].astype(str).astype(object)
    return out


def check_candidate(spec: ModelSpec, original: dict[str, Any], candidate: dict[str, Any]) -> str | None:
    """Why a counterfactual is invalid (None when it is valid), before the class check."""
    for f in spec.features:
        value = candidate[f.name]
        if f.immutable and value != original[f.name]:
            return f"immutable feature {f.name} changed"
        if f.type == "category" and value not in (f.categories or ()):
            return f"{f.name} outside its categories"
        too_low = f.minimum is not None and value < f.minimum
        too_high = f.maximum is not None and value > f.maximum
        if f.type in ("number", "integer") and (too_low or too_high):
            return f"{f.name} outside its range"
    return None


class CounterfactualExplainer(Explainer):
    method = "counterfactuals"

    @classmethod
    def needs(cls, params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        if str(params.get("backend", "dice")) == "alibi-proto":
            return (("alibi", "alibi"), ("tensorflow", "tensorflow"))
        return ()

    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: BatchMeter
    ) -> list[ExplanationResult]:
        spec = self.predictor.spec
        if not spec.is_classifier:
            raise UnsupportedModelError("counterfactuals are computed for classifiers; this model is a regression")
        backend = str(self.params.get("backend", "dice"))
        if backend == "alibi-proto":
            scores = self.predictor.predict_scores(rows)
            return [self._proto(rows.iloc[[i]], scores[i], seeds[i], meter.row(i)) for i in range(len(rows))]
        if backend != "dice":
            raise UnsupportedModelError(f"unknown counterfactual back-end {backend!r}; use dice or alibi-proto")
        scores = self.predictor.predict_scores(rows)
        return [self._one(rows.iloc[[i]], scores[i], seeds[i], meter.row(i)) for i in range(len(rows))]

    def _desired(self, scores: np.ndarray) -> int:
        spec = self.predictor.spec
        current = int(np.argmax(scores))
        wanted = self.params.get("desired_class")
        if wanted is not None:
            if wanted not in spec.class_labels:
                raise UnsupportedModelError(f"desired_class must be one of {list(spec.class_labels)}")
            return spec.class_labels.index(wanted)
        order = [int(k) for k in np.argsort(-scores) if int(k) != current]
        return order[0]

    def _one(self, row: pd.DataFrame, scores: np.ndarray, seed: int, meter: CallMeter) -> ExplanationResult:
        import dice_ml

        logging.getLogger("dice_ml").setLevel(logging.ERROR)
        started = time.perf_counter()
        meter.start()
        spec = self.predictor.spec
        current, desired = int(np.argmax(scores)), self._desired(scores)
        total = int(self.params.get("total_cfs", 3))
        method = str(self.params.get("method", "random"))
        background = _typed(spec, self.background.frame)
        labels = np.argmax(self.predictor.predict_scores(background), axis=1)
        data_frame = background.copy()
        data_frame[OUTCOME] = (labels == desired).astype(int)
        continuous = [f.name for f in spec.features if f.type in ("number", "integer")]
        data = dice_ml.Data(dataframe=data_frame, continuous_features=continuous, outcome_name=OUTCOME)
        model = dice_ml.Model(model=_DiceModel(self, meter, desired, current), backend="sklearn")
        dice = dice_ml.Dice(data, model, method=method)
        mutable = [f.name for f in spec.features if not f.immutable]
        permitted: dict[str, list[Any]] = {}
        for f in spec.features:
            if f.immutable:
                continue
            if f.type in ("number", "integer") and (f.minimum is not None or f.maximum is not None):
                low = f.minimum if f.minimum is not None else float(background[f.name].min())
                high = f.maximum if f.maximum is not None else float(background[f.name].max())
                permitted[f.name] = [low, high]
            elif f.type == "category":
                permitted[f.name] = list(f.categories or ())
        query = _typed(spec, row)
        try:
            with GLOBAL_RANDOM:  # DiCE draws from Python's `random` and numpy's global generators
                seeding: dict[str, Any] = {}
                if method == "random":
                    seeding["random_seed"] = seed
                else:  # the genetic method takes no seed argument: seed the generators it draws from
                    random.seed(seed)
                    np.random.seed(seed % (2**32))
                generated = dice.generate_counterfactuals(
                    query,
                    total_CFs=total,
                    desired_class=1,
                    features_to_vary=mutable,
                    permitted_range=permitted,
                    verbose=False,
                    **seeding,
                )
            candidates = generated.cf_examples_list[0].final_cfs_df
        except Exception as exc:  # DiCE raises when it finds nothing valid
            if "No counterfactuals found" not in str(exc):
                raise
            candidates = None
        original = {str(k): _plain(v) for k, v in query.iloc[0].items()}
        body = self._validated(original, candidates, desired, meter)
        return ExplanationResult(
            method=self.method,
            backend=f"dice_ml.{method}",
            target=spec.class_labels[desired],
            body=body,
            parameters={
                "method": method,
                "total_cfs": total,
                "features_to_vary": mutable,
                "minimise": bool(self.params.get("minimise", True)),
                "distance": "L1, numbers scaled by background MAD, categories 1",
                "background_sha256": self.background.sha256,
            },
            seed=seed,
            library_versions=library_versions("dice-ml"),
            quality={"found": float(len(body.items)), "rejected": float(body.rejected)},
            compute_ms=(time.perf_counter() - started) * 1000,
            model_calls=meter.rows,
        )

    def _validated(
        self,
        original: dict[str, Any],
        candidates: pd.DataFrame | None,
        desired: int,
        meter: CallMeter | None = None,
    ) -> Counterfactuals:
        """Keep only candidates that really are counterfactuals, minimised, smallest first; count the rest
        by reason."""
        spec = self.predictor.spec
        minimise = bool(self.params.get("minimise", True)) and meter is not None
        kept: list[Counterfactual] = []
        reasons: Counter[str] = Counter()
        if candidates is not None and len(candidates):
            typed = _typed(spec, candidates)
            predicted = np.argmax(self.predictor.predict_scores(typed), axis=1)
            for k, (_, cand) in enumerate(typed.iterrows()):
                candidate = {name: _plain(cand[name]) for name in spec.feature_names}
                problem = check_candidate(spec, original, candidate)
                if problem is None and int(predicted[k]) != desired:
                    problem = "model output does not flip"
                if problem is None and candidate == original:
                    problem = "no change"
                if problem:
                    reasons[problem] += 1
                    continue
                if minimise:
                    assert meter is not None
                    candidate = self._minimised(original, candidate, desired, meter)
                    if check_candidate(spec, original, candidate) is not None:  # cannot happen; never trusted
                        reasons["minimisation left the ranges"] += 1
                        continue
                kept.append(self._counterfactual(spec, original, candidate, spec.class_labels[desired]))
        kept.sort(key=lambda c: (c.distance, c.sparsity))
        unique: list[Counterfactual] = []
        for c in kept:
            if all(c.changes != u.changes for u in unique):
                unique.append(c)
        return Counterfactuals(
            desired=spec.class_labels[desired],
            items=tuple(unique),
            rejected=sum(reasons.values()),
            rejection_reasons=dict(reasons),
        )

    def _proto(self, row: pd.DataFrame, scores: np.ndarray, seed: int, meter: CallMeter) -> ExplanationResult:
        """alibi CounterfactualProto, black-box: numeric features scaled to [0, 1] by their declared ranges,
        categories as ordinal codes, immutables pinned by a zero-width range. TF1 graphs are process-global,
        so these runs are serialized."""
        import tensorflow as tf
        from alibi.explainers import CounterfactualProto

        from explain.coding import FeatureCoder

        started = time.perf_counter()
        meter.start()
        spec = self.predictor.spec
        coder = FeatureCoder(spec)
        desired = self._desired(scores)
        x = coder.encode(row)
        background = coder.encode(self.background.frame)
        lo = np.array([[_low(f, background[:, i]) for i, f in enumerate(spec.features)]], dtype=float)
        hi = np.array([[_high(f, background[:, i]) for i, f in enumerate(spec.features)]], dtype=float)
        numeric = [i for i, f in enumerate(spec.features) if f.type in ("number", "integer")]
        span = hi - lo
        span[span == 0] = 1.0

        def scale(a: np.ndarray) -> np.ndarray:
            out = np.array(a, dtype=float)
            out[:, numeric] = (out[:, numeric] - lo[0, numeric]) / span[0, numeric]
            return out

        def unscale(a: np.ndarray) -> np.ndarray:
            out = np.array(a, dtype=float)
            out[:, numeric] = out[:, numeric] * span[0, numeric] + lo[0, numeric]
            return out

        low, high = scale(lo), scale(hi)
        for i, f in enumerate(spec.features):
            if f.immutable:
                low[0, i] = high[0, i] = scale(x)[0, i]
        score = coder.scorer(self.predictor, meter)
        cat_vars = {i: len(f.categories or ()) for i, f in enumerate(spec.features) if f.type == "category"}
        iterations = int(self.params.get("max_iterations", 300))
        with GLOBAL_RANDOM, _PROTO_LOCK:  # numpy's global generator, and TensorFlow's default graph
            tf.compat.v1.disable_eager_execution()
            tf.compat.v1.reset_default_graph()
            tf.compat.v1.set_random_seed(seed % (2**31))
            np.random.seed(seed % (2**32))
            tf.config.experimental.enable_op_determinism()
            # one thread per session: reductions always add in the same order
            session = tf.compat.v1.Session(
                graph=tf.compat.v1.get_default_graph(),
                config=tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1),
            )
            try:
                explainer = CounterfactualProto(
                    lambda z: score(unscale(z)),
                    shape=(1, x.shape[1]),
                    beta=0.01,
                    cat_vars=cat_vars or None,
                    ohe=False,
                    max_iterations=iterations,
                    feature_range=(low, high),
                    c_init=1.0,
                    c_steps=int(self.params.get("c_steps", 3)),
                    eps=(0.01, 0.01),
                    use_kdtree=True,
                    sess=session,
                )
                _order_fista_updates(explainer, tf)
                explainer.fit(scale(background), d_type="abdm", disc_perc=[25, 50, 75])
                found = explainer.explain(scale(x), target_class=[desired]).cf
            finally:
                session.close()
        candidates = None
        if found is not None:
            raw = unscale(np.atleast_2d(found["X"]).astype(float))
            # TensorFlow works in float32: a feature it did not really move comes back off by ~1e-7
            # relative; snap those to the original, and keep 6 significant digits of the others.
            unchanged = np.abs(raw - x) <= 1e-4 * span
            raw[unchanged] = x[unchanged]
            moved = ~unchanged
            raw[moved] = [float(f"{v:.6g}") for v in raw[moved]]
            candidates = coder.decode(raw)
        original = {str(k): _plain(v) for k, v in _typed(spec, row).iloc[0].items()}
        body = self._validated(original, candidates, desired, meter)
        return ExplanationResult(
            method=self.method,
            backend="alibi.CounterfactualProto",
            target=spec.class_labels[desired],
            body=body,
            parameters={
                "max_iterations": iterations,
                "c_steps": int(self.params.get("c_steps", 3)),
                "beta": 0.01,
                "proto_distance": "abdm",
                "minimise": bool(self.params.get("minimise", True)),
                "distance": "L1, numbers scaled by background MAD, categories 1",
                "background_sha256": self.background.sha256,
            },
            seed=seed,
            library_versions=library_versions("alibi", "tensorflow-cpu"),
            quality={"found": float(len(body.items)), "rejected": float(body.rejected)},
            compute_ms=(time.perf_counter() - started) * 1000,
            model_calls=meter.rows,
        )

    def _flips(self, candidates: list[dict[str, Any]], desired: int, meter: CallMeter) -> np.ndarray:
        spec = self.predictor.spec
        meter.charge(len(candidates))
        frame = _typed(spec, pd.DataFrame(candidates, columns=spec.feature_names))
        return np.asarray(np.argmax(self.predictor.predict_scores(frame), axis=1) == desired)

    def _minimised(
        self, original: dict[str, Any], candidate: dict[str, Any], desired: int, meter: CallMeter
    ) -> dict[str, Any]:
        """The candidate with every unneeded change reverted and every changed number bisected toward its
        original value; the model's class stays ``desired`` at every accepted step."""
        spec = self.predictor.spec
        scales = mad_scales(spec, self.background.frame)
        current = dict(candidate)

        def cost(name: str) -> float:
            return change_cost(spec.feature(name), original[name], current[name], scales)

        steps = int(self.params.get("bisection_steps", 30))
        for _ in range(int(self.params.get("minimise_rounds", 3))):  # until no change moves any more
            before = dict(current)
            changed = sorted((n for n in spec.feature_names if current[n] != original[n]), key=cost, reverse=True)
            for name in changed:  # 1. revert what the flip does not need, costliest first
                trial = {**current, name: original[name]}
                if self._flips([trial], desired, meter)[0]:
                    current = trial
            for name in sorted((n for n in spec.feature_names if current[n] != original[n]), key=cost, reverse=True):
                feature = spec.feature(name)
                if feature.type in ("number", "integer"):  # 2. bisection on the model's own output
                    current[name] = self._bisect(feature, original[name], current, desired, meter, steps, scales)
            if not _moved(spec, before, current, scales):
                break
        return current

    def _bisect(
        self,
        feature: Any,
        start: Any,
        current: dict[str, Any],
        desired: int,
        meter: CallMeter,
        steps: int,
        scales: dict[str, float],
    ) -> Any:
        """The value of ``feature`` closest to ``start`` on the segment to its current value at which the
        class is still ``desired`` (to 1e-6 of the feature's MAD, or one unit for integers)."""
        name = feature.name
        lo, hi = float(start), float(current[name])  # lo keeps the original class, hi flips it
        tolerance = 1e-6 * scales.get(name, 1.0)
        for _ in range(steps):
            if feature.type == "integer":
                if abs(hi - lo) <= 1:
                    break
                mid = float(int((lo + hi) / 2))
            else:
                if abs(hi - lo) <= tolerance:
                    break
                mid = (lo + hi) / 2
            if self._flips([{**current, name: _as_type(feature, mid)}], desired, meter)[0]:
                hi = mid
            else:
                lo = mid
        return _as_type(feature, hi)

    def _counterfactual(
        self, spec: ModelSpec, original: dict[str, Any], candidate: dict[str, Any], predicted: str
    ) -> Counterfactual:
        changes = []
        scales = mad_scales(spec, self.background.frame)
        for f in spec.features:
            before, after = original[f.name], candidate[f.name]
            if before == after:
                continue
            changes.append(FeatureChange(f.name, before, after))
        distance = mad_l1(spec, original, candidate, scales)
        return Counterfactual(
            changes=tuple(changes), predicted=predicted, distance=distance, sparsity=len(changes), valid=True
        )


def _order_fista_updates(explainer: Any, tf: Any) -> None:
    """alibi runs the two FISTA assignments in one `session.run` although each reads the variable the other
    writes, so which value is read is a race and one seed gave different counterfactuals run to run. Compute
    both new values from the old ones first, then assign: FISTA as published, and deterministic."""
    with explainer.sess.graph.as_default():
        new_adv = tf.identity(explainer.assign_adv)
        new_adv_s = tf.identity(explainer.assign_adv_s)
        with tf.control_dependencies([new_adv, new_adv_s]):
            explainer.adv_updater = tf.compat.v1.assign(explainer.adv, new_adv)
            explainer.adv_updater_s = tf.compat.v1.assign(explainer.adv_s, new_adv_s)


def mad_scales(spec: ModelSpec, background: pd.DataFrame) -> dict[str, float]:
    """Per numeric feature, its median absolute deviation over the background: the distance's unit. A
    feature with MAD 0 (mostly one value) falls back to its standard deviation, then to 1."""
    scales: dict[str, float] = {}
    for f in spec.features:
        if f.type not in ("number", "integer"):
            continue
        column = background[f.name].astype(float).to_numpy()
        mad = float(np.median(np.abs(column - np.median(column))))
        scales[f.name] = mad or float(np.std(column)) or 1.0
    return scales


def change_cost(feature: Any, before: Any, after: Any, scales: dict[str, float]) -> float:
    if before == after:
        return 0.0
    if feature.type in ("number", "integer"):
        return abs(float(after) - float(before)) / scales[feature.name]
    return 1.0


def mad_l1(spec: ModelSpec, original: dict[str, Any], candidate: dict[str, Any], scales: dict[str, float]) -> float:
    """L1 distance, numbers in units of their background MAD, each changed category or boolean counting 1."""
    return float(sum(change_cost(f, original[f.name], candidate[f.name], scales) for f in spec.features))


def _moved(spec: ModelSpec, before: dict[str, Any], after: dict[str, Any], scales: dict[str, float]) -> bool:
    """Did a minimisation round change anything beyond the bisection's own tolerance?"""
    for f in spec.features:
        if f.type in ("number", "integer"):
            if abs(float(before[f.name]) - float(after[f.name])) > 1e-6 * scales[f.name]:
                return True
        elif before[f.name] != after[f.name]:
            return True
    return False


def _as_type(feature: Any, value: float) -> Any:
    return round(value) if feature.type == "integer" else float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
