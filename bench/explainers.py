"""Per-call time of the model as explainers call it through Rationale's predictor against the bare
estimator's ``predict_proba`` on the same rows; per-explanation time of each method through Rationale's
explainers and calling the library directly, on the same rows of the demo credit pipeline; then the quality
of counterfactuals (validity, mean distance, sparsity) of raw DiCE (random, genetic), raw alibi
CounterfactualProto and Rationale's minimised result, on the same rows and with the same distance. Each
table is side by side in one run.

The model-call table: 1- and 100-row calls on the credit pipeline (categorical features: the estimator
takes a DataFrame) and on a breast-cancer GradientBoostingClassifier (30 numeric features, 100 trees,
depth 3) fitted on a DataFrame and fitted on an array. "bare" is ``estimator.predict_proba`` on the form it
natively takes; "coded" is ``FeatureCoder.scores`` from the coded numpy rows (what anchors, LIME and
Kernel/Permutation SHAP call); "frame" is ``predict_scores`` of a raw-feature DataFrame. Target: coded and
frame within 1.2x of bare.

    .venv/bin/python bench/explainers.py [--rows N] [--cf-rows N] [--only-counterfactuals] [--only-predictor]
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from explain.artifacts import dump_skops, load_predictor
from explain.base import Background
from explain.coding import FeatureCoder
from explain.registry import create_explainer
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
from explain.schema import ModelSpec

PROTO_ITERATIONS = 200
ROUNDS = 25  # alternating timing rounds of the model-call table; the best counts


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="rows explained per method (default 8)")
    parser.add_argument(
        "--proto-rows", type=int, default=2, help="rows for alibi CounterfactualProto, ~15 s each (default 2)"
    )
    parser.add_argument("--cf-rows", type=int, default=20, help="rows for the counterfactual quality table")
    parser.add_argument("--only-counterfactuals", action="store_true", help="skip the timing table")
    parser.add_argument("--only-predictor", action="store_true", help="only the model-call table")
    args = parser.parse_args()
    logging.getLogger("dice_ml").setLevel(logging.ERROR)
    if args.only_counterfactuals:
        counterfactual_quality(args.cf_rows, args.proto_rows)
        return
    predictor_table()
    if args.only_predictor:
        return
    print()
    logging.getLogger("alibi").setLevel(logging.ERROR)

    spec = credit_spec()
    pipeline = train_credit_pipeline(seed=0, n=1500)
    predictor = load_predictor(dump_skops(pipeline), format="skops", spec=spec)
    background_frame, _ = make_credit_frame(100, seed=7)
    background = Background(background_frame, "bench")
    rows, _ = make_credit_frame(args.rows, seed=3)
    n = len(rows)
    proto_rows = min(args.proto_rows, n)
    seeds = list(range(1, n + 1))
    coder = FeatureCoder(spec)
    coded_bg, coded_rows = coder.encode(background_frame), coder.encode(rows)

    def proba(z: np.ndarray) -> np.ndarray:
        return pipeline.predict_proba(coder.decode(z))

    def ours(method: str, params: dict[str, object], k: int = n) -> float:
        explainer = create_explainer(method, predictor=predictor, background=background, params=params)
        return timed(lambda: explainer.explain(rows.iloc[:k], seeds=seeds[:k]))

    import shap

    def raw_tree() -> None:  # the same game as ours: interventional, the same 100 background rows
        final, prep = pipeline.steps[-1][1], pipeline[:-1]
        explainer = shap.TreeExplainer(final, prep.transform(background_frame), feature_perturbation="interventional")
        explainer(prep.transform(rows))

    def raw_permutation() -> None:
        masker = shap.maskers.Independent(coded_bg[:50], max_samples=50)
        for i in range(n):
            shap.PermutationExplainer(proba, masker, seed=i)(coded_rows[i : i + 1], max_evals=500, silent=True)

    def raw_kernel() -> None:
        explainer = shap.KernelExplainer(proba, coded_bg[:50])
        for i in range(n):
            explainer.shap_values(coded_rows[i : i + 1], silent=True)

    def raw_lime() -> None:
        from lime.lime_tabular import LimeTabularExplainer

        for i in range(n):
            LimeTabularExplainer(
                coded_bg,
                mode="classification",
                feature_names=spec.feature_names,
                categorical_features=coder.categorical_indices,
                categorical_names=coder.categorical_names,
                random_state=i,
            ).explain_instance(coded_rows[i], proba, num_features=len(spec.features), num_samples=1000)

    def raw_anchors() -> None:
        from alibi.explainers import AnchorTabular

        for i in range(n):
            anchor = AnchorTabular(
                lambda z: np.argmax(proba(np.atleast_2d(z)), axis=1),
                feature_names=spec.feature_names,
                categorical_names=coder.categorical_names,
                seed=i,
            )
            anchor.fit(coded_bg, disc_perc=(25, 50, 75))
            anchor.explain(coded_rows[i], threshold=0.95)

    def raw_dice() -> None:
        import dice_ml

        frame = background_frame.copy()
        frame["y"] = (pipeline.predict(background_frame) == "approved").astype(int)
        continuous = [f.name for f in spec.features if f.type != "category"]
        data = dice_ml.Data(dataframe=frame, continuous_features=continuous, outcome_name="y")
        model = dice_ml.Model(model=pipeline, backend="sklearn")
        dice = dice_ml.Dice(data, model, method="random")
        for i in range(n):
            dice.generate_counterfactuals(
                rows.iloc[[i]],
                total_CFs=3,
                desired_class="opposite",
                features_to_vary=[f.name for f in spec.features if not f.immutable],
                random_seed=i,
                verbose=False,
            )

    def raw_proto() -> None:
        import tensorflow as tf
        from alibi.explainers import CounterfactualProto

        low = coded_bg.min(axis=0, keepdims=True).astype(float)
        high = coded_bg.max(axis=0, keepdims=True).astype(float)
        cat_vars = {i: len(f.categories or ()) for i, f in enumerate(spec.features) if f.type == "category"}
        for i in range(proto_rows):
            tf.compat.v1.disable_eager_execution()
            tf.compat.v1.reset_default_graph()
            explainer = CounterfactualProto(
                proba,
                shape=(1, coded_rows.shape[1]),
                beta=0.01,
                cat_vars=cat_vars,
                ohe=False,
                max_iterations=PROTO_ITERATIONS,
                feature_range=(low, high),
                c_init=1.0,
                c_steps=3,
                eps=(0.01, 0.01),
                use_kdtree=True,
            )
            explainer.fit(coded_bg.astype(float), d_type="abdm", disc_perc=[25, 50, 75])
            explainer.explain(coded_rows[[i]].astype(float))

    cases = [
        ("shap tree", lambda: ours("shap", {"algorithm": "tree"}), raw_tree, n),
        ("shap permutation", lambda: ours("shap", {"algorithm": "permutation"}), raw_permutation, n),
        ("shap kernel", lambda: ours("shap", {"algorithm": "kernel"}), raw_kernel, n),
        ("lime", lambda: ours("lime", {}), raw_lime, n),
        ("anchors", lambda: ours("anchors", {}), raw_anchors, n),
        ("counterfactuals (DiCE)", lambda: ours("counterfactuals", {}), raw_dice, n),
        (
            "counterfactuals (proto)",
            lambda: ours("counterfactuals", {"backend": "alibi-proto", "max_iterations": PROTO_ITERATIONS}, proto_rows),
            raw_proto,
            proto_rows,
        ),
    ]
    ours("shap", {"algorithm": "tree"})  # warm imports
    print(f"credit pipeline (GBM, 9 raw features, 3 categorical), {n} rows, ms per explanation")
    print(f"{'method':<24}{'Rationale':>12}{'library':>12}{'ratio':>8}")
    for name, rationale, library, k in cases:
        ours_s, raw_s = float("inf"), float("inf")
        for _ in range(2):  # alternate and keep the best of two, so neither side pays the warm-up
            ours_s = min(ours_s, rationale())
            raw_s = min(raw_s, timed(library))
        print(f"{name:<24}{ours_s / k * 1000:>12.1f}{raw_s / k * 1000:>12.1f}{ours_s / raw_s:>8.2f}")
    print()
    counterfactual_quality(args.cf_rows, args.proto_rows)


def best_per_call(
    calls: dict[str, Callable[[], object]], *, rounds: int = ROUNDS, budget_s: float = 0.04
) -> dict[str, float]:
    """Seconds per call of each function: rounds alternate between them (so load on the machine falls on
    every side alike) and the best round counts."""
    for fn in calls.values():
        fn()
    reps = {name: max(1, int(budget_s / max(timed(fn), 1e-6))) for name, fn in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, fn in calls.items():
            elapsed = timed(lambda fn=fn, k=reps[name]: [fn() for _ in range(k)])
            best[name] = min(best[name], elapsed / reps[name])
    return best


def predictor_table() -> None:
    """Per-call model time: the bare estimator against Rationale's predictor as explainers call it."""
    import os

    import pandas as pd
    from sklearn.ensemble import GradientBoostingClassifier

    from explain.samples import breast_cancer_spec_and_data

    cases: list[tuple[str, Any, ModelSpec, pd.DataFrame, bool]] = []
    spec = credit_spec()
    pipeline = train_credit_pipeline(seed=0, n=1500)
    credit_rows, _ = make_credit_frame(100, seed=3)
    cases.append(("credit pipeline (categorical)", pipeline, spec, credit_rows, True))
    cancer_spec, cancer_frame, cancer_labels = breast_cancer_spec_and_data()
    for fitted_on in ("DataFrame", "array"):
        gbm = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
        gbm.fit(cancer_frame if fitted_on == "DataFrame" else cancer_frame.to_numpy(), cancer_labels)
        cases.append(
            (
                f"breast-cancer GBM, fit on {fitted_on}",
                gbm,
                cancer_spec,
                cancer_frame.iloc[:100],
                fitted_on == "DataFrame",
            )
        )

    print(f"model calls, ms per call (process nice {os.nice(0)}; best of {ROUNDS} alternating rounds)")
    print(f"{'model':<36}{'rows':>5}{'path':>7}{'bare':>9}{'coded':>9}{'frame':>9}{'coded/bare':>12}{'frame/bare':>12}")
    for name, estimator, model_spec, rows, takes_frame in cases:
        predictor = load_predictor(dump_skops(estimator), format="skops", spec=model_spec)
        coder = FeatureCoder(predictor.spec)
        path = "array" if predictor.accepts_array else "frame"
        for k in (1, 100):
            frame = rows.iloc[:k].reset_index(drop=True).copy()
            native = frame if takes_frame else frame.to_numpy()
            coded = coder.encode(frame)
            order = [[str(c) for c in estimator.classes_].index(c) for c in model_spec.class_labels]
            bare = np.asarray(estimator.predict_proba(native))[:, order]
            for ours in (coder.scores(predictor, coded), predictor.predict_scores(frame)):
                assert np.array_equal(ours, bare), "the wrapper's scores differ from the estimator's"
            t = best_per_call(
                {
                    "bare": lambda e=estimator, x=native: e.predict_proba(x),
                    "coded": lambda c=coder, p=predictor, z=coded: c.scores(p, z),
                    "frame": lambda p=predictor, f=frame: p.predict_scores(f),
                }
            )
            print(
                f"{name:<36}{k:>5}{path:>7}{t['bare'] * 1e3:>9.3f}{t['coded'] * 1e3:>9.3f}{t['frame'] * 1e3:>9.3f}"
                f"{t['coded'] / t['bare']:>12.2f}{t['frame'] / t['bare']:>12.2f}"
            )


def counterfactual_quality(n_rows: int, proto_rows: int) -> None:
    """Validity, mean MAD-scaled L1 distance and sparsity of the best counterfactual per row, per method.

    Raw libraries get the same features to vary and permitted ranges as Rationale gives them; a raw
    candidate counts as valid only if it keeps immutables and ranges and really flips the model's class,
    and the best valid candidate of each row (by the same distance) is the one measured.
    """
    import dice_ml
    import pandas as pd

    from explain.counterfactual_backend import _typed, check_candidate, mad_l1, mad_scales

    spec = credit_spec()
    pipeline = train_credit_pipeline(seed=0, n=1500)
    predictor = load_predictor(dump_skops(pipeline), format="skops", spec=spec)
    background_frame, _ = make_credit_frame(300, seed=7)
    background = Background(background_frame, "bench")
    rows, _ = make_credit_frame(n_rows, seed=11)
    scales = mad_scales(spec, background_frame)
    labels = list(spec.class_labels)
    predicted = predictor.predict_labels(rows)
    mutable = [f.name for f in spec.features if not f.immutable]
    permitted = {
        f.name: [f.minimum, f.maximum] if f.type != "category" else list(f.categories or ())
        for f in spec.features
        if not f.immutable
    }
    continuous = [f.name for f in spec.features if f.type != "category"]

    def best(i: int, candidates: pd.DataFrame | None) -> tuple[float, int] | None:
        if candidates is None or not len(candidates):
            return None
        original = {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[i].items()}
        typed = _typed(spec, candidates)
        outcome = predictor.predict_labels(typed)
        found = []
        for k, (_, cand) in enumerate(typed.iterrows()):
            candidate = {n: (cand[n].item() if hasattr(cand[n], "item") else cand[n]) for n in spec.feature_names}
            if check_candidate(spec, original, candidate) is None and outcome[k] != predicted[i]:
                changed = sum(candidate[n] != original[n] for n in spec.feature_names)
                found.append((mad_l1(spec, original, candidate, scales), changed))
        return min(found) if found else None

    def raw_dice(method: str) -> list[tuple[float, int] | None]:
        out = []
        for i in range(n_rows):
            desired = labels[1 - labels.index(predicted[i])]
            frame = background_frame.copy()
            frame["y"] = (pipeline.predict(background_frame) == desired).astype(int)
            data = dice_ml.Data(dataframe=frame, continuous_features=continuous, outcome_name="y")

            class Model:  # column 1 = the desired class, as DiCE's binary sklearn back-end expects
                column = list(pipeline.classes_).index(desired)

                def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
                    p = pipeline.predict_proba(_typed(spec, x))[:, self.column]
                    return np.column_stack([1 - p, p])

                def predict(self, x: pd.DataFrame) -> np.ndarray:
                    return (self.predict_proba(x)[:, 1] > 0.5).astype(int)

            dice = dice_ml.Dice(data, dice_ml.Model(model=Model(), backend="sklearn"), method=method)
            seeding: dict[str, object] = {"random_seed": i + 1} if method == "random" else {}
            if method != "random":
                random.seed(i + 1)
                np.random.seed(i + 1)
            try:
                result = dice.generate_counterfactuals(
                    rows.iloc[[i]],
                    total_CFs=3,
                    desired_class=1,
                    features_to_vary=mutable,
                    permitted_range=permitted,
                    verbose=False,
                    **seeding,
                )
                out.append(best(i, result.cf_examples_list[0].final_cfs_df))
            except Exception:  # DiCE raises when it finds nothing
                out.append(None)
        return out

    def raw_proto(k: int) -> list[tuple[float, int] | None]:
        import tensorflow as tf
        from alibi.explainers import CounterfactualProto

        coder = FeatureCoder(spec)
        coded_bg, coded_rows = coder.encode(background_frame), coder.encode(rows)
        low = np.array([[f.minimum if f.minimum is not None else 0.0 for f in spec.features]], dtype=float)
        high = np.array(
            [[f.maximum if f.maximum is not None else len(f.categories or ()) - 1 for f in spec.features]],
            dtype=float,
        )
        for j, f in enumerate(spec.features):
            if f.immutable:
                low[0, j] = high[0, j] = np.nan  # pinned per row below
        cat_vars = {j: len(f.categories or ()) for j, f in enumerate(spec.features) if f.type == "category"}
        out = []
        for i in range(k):
            lo, hi = low.copy(), high.copy()
            pinned = np.isnan(lo)
            lo[pinned] = coded_rows[i][pinned[0]]
            hi[pinned] = coded_rows[i][pinned[0]]
            tf.compat.v1.disable_eager_execution()
            tf.compat.v1.reset_default_graph()
            explainer = CounterfactualProto(
                lambda z: pipeline.predict_proba(coder.decode(z)),
                shape=(1, coded_rows.shape[1]),
                beta=0.01,
                cat_vars=cat_vars,
                ohe=False,
                max_iterations=PROTO_ITERATIONS,
                feature_range=(lo, hi),
                c_init=1.0,
                c_steps=3,
                eps=(0.01, 0.01),
                use_kdtree=True,
            )
            explainer.fit(coded_bg.astype(float), d_type="abdm", disc_perc=[25, 50, 75])
            cf = explainer.explain(coded_rows[[i]].astype(float)).cf
            out.append(best(i, coder.decode(np.atleast_2d(cf["X"])) if cf is not None else None))
        return out

    def ours(params: dict[str, object], k: int) -> list[tuple[float, int] | None]:
        explainer = create_explainer("counterfactuals", predictor=predictor, background=background, params=params)
        results = explainer.explain(rows.iloc[:k], seeds=[i + 1 for i in range(k)])
        return [(r.body.items[0].distance, r.body.items[0].sparsity) if r.body.items else None for r in results]

    proto_rows = min(proto_rows, n_rows)
    table = [
        ("DiCE random (raw)", raw_dice("random"), n_rows),
        ("DiCE genetic (raw)", raw_dice("genetic"), n_rows),
        ("Rationale (DiCE random, minimised)", ours({}, n_rows), n_rows),
        ("Rationale (DiCE genetic, minimised)", ours({"method": "genetic"}, n_rows), n_rows),
        ("alibi CounterfactualProto (raw)", raw_proto(proto_rows), proto_rows),
        (
            "Rationale (proto, minimised)",
            ours({"backend": "alibi-proto", "max_iterations": PROTO_ITERATIONS}, proto_rows),
            proto_rows,
        ),
    ]
    print(f"counterfactuals on the credit pipeline: {n_rows} rows (proto: {proto_rows}); distance = L1 with")
    print("numbers in units of their background MAD, a changed category = 1; best valid candidate per row")
    print(f"{'method':<38}{'rows':>6}{'valid':>8}{'mean distance':>15}{'sparsity':>10}{'common rows':>13}")
    reference = {name: found for name, found, _ in table}
    for name, found, k in table:
        valid = [f for f in found if f is not None]
        raw_name = "DiCE random (raw)" if "random" in name else "DiCE genetic (raw)" if "genetic" in name else None
        common = ""
        if raw_name and name.startswith("Rationale"):
            pairs = [(a, b) for a, b in zip(found, reference[raw_name], strict=False) if a and b]
            if pairs:
                ours_d = np.mean([a[0] for a, _ in pairs])
                raw_d = np.mean([b[0] for _, b in pairs])
                common = f"{len(pairs)}: -{(1 - ours_d / raw_d):.0%}"
        mean_d = f"{np.mean([v[0] for v in valid]):.3f}" if valid else "-"
        mean_s = f"{np.mean([v[1] for v in valid]):.2f}" if valid else "-"
        print(f"{name:<38}{k:>6}{len(valid) / k:>8.0%}{mean_d:>15}{mean_s:>10}{common:>13}")


if __name__ == "__main__":
    main()
