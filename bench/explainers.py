"""Per-explanation time of each method through Rationale's explainers and calling the library directly,
on the same rows of the demo credit pipeline, side by side in one run.

    .venv/bin/python bench/explainers.py [--rows N]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import numpy as np

from explain.artifacts import dump_skops, load_predictor
from explain.base import Background
from explain.coding import FeatureCoder
from explain.registry import create_explainer
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline

PROTO_ITERATIONS = 200


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
    args = parser.parse_args()
    logging.getLogger("dice_ml").setLevel(logging.ERROR)
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

    def raw_tree() -> None:
        final, prep = pipeline.steps[-1][1], pipeline[:-1]
        shap.TreeExplainer(final)(prep.transform(rows))

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


if __name__ == "__main__":
    main()
