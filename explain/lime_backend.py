"""LIME tabular attributions per raw feature; categories are perturbed as categories, not numbers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from explain.base import BatchMeter, Explainer, Target
from explain.coding import FeatureCoder
from explain.results import Attributions, ExplanationResult
from explain.versions import library_versions


class LimeExplainer(Explainer):
    method = "lime"

    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: BatchMeter
    ) -> list[ExplanationResult]:
        from lime.lime_tabular import LimeTabularExplainer

        spec = self.predictor.spec
        coder = FeatureCoder(spec)
        background = coder.encode(self.background.frame)
        num_samples = int(self.params.get("num_samples", 1000))
        mode = "classification" if spec.is_classifier else "regression"

        coded = coder.encode(rows)
        scores = self.predictor.predict_scores(rows)
        results = []
        for i, (seed, target) in enumerate(zip(seeds, targets, strict=True)):
            started = time.perf_counter()
            meter.row(i).start()
            model = coder.scorer(self.predictor, meter.row(i))
            explainer = LimeTabularExplainer(
                background,
                mode=mode,
                feature_names=spec.feature_names,
                categorical_features=coder.categorical_indices,
                categorical_names=coder.categorical_names,
                discretize_continuous=True,
                random_state=seed,
            )
            if spec.is_classifier:
                k = target.class_index if target.class_index is not None else int(np.argmax(scores[i]))
                exp = explainer.explain_instance(
                    coded[i], model, labels=(k,), num_features=len(spec.features), num_samples=num_samples
                )
                weights = dict(exp.as_map()[k])
                base, local = float(exp.intercept[k]), float(np.atleast_1d(exp.local_pred)[0])
                output, label, space = float(scores[i, k]), spec.class_labels[k], "probability"
            else:
                exp = explainer.explain_instance(
                    coded[i], model, num_features=len(spec.features), num_samples=num_samples
                )
                key = next(iter(exp.local_exp))
                weights = dict(exp.local_exp[key])
                intercept = exp.intercept[key] if isinstance(exp.intercept, dict) else exp.intercept
                base, local = float(intercept), float(np.atleast_1d(exp.local_pred)[0])
                output, label, space = float(scores[i]), "value", "raw"
            values = {name: float(weights.get(j, 0.0)) for j, name in enumerate(spec.feature_names)}
            results.append(
                ExplanationResult(
                    method=self.method,
                    backend="lime.LimeTabularExplainer",
                    target=label,
                    body=Attributions(values=values, base_value=base, output_value=local, output_space=space),
                    parameters={
                        "num_samples": num_samples,
                        "discretize_continuous": True,
                        "background_sha256": self.background.sha256,
                    },
                    seed=seed,
                    library_versions=library_versions("lime"),
                    quality={"score": float(exp.score), "local_pred_error": abs(local - output)},
                    compute_ms=(time.perf_counter() - started) * 1000,
                    model_calls=meter.row(i).rows,
                )
            )
        return results
