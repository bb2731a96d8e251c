"""Anchors (alibi AnchorTabular): a rule on raw features under which the prediction holds.

alibi is under the Business Source License 1.1 (see the README). Rules come back in raw terms:
category codes are named by the schema's categories and numbers are printed readably.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd

from explain.base import BatchMeter, CallMeter, Explainer, Target
from explain.coding import FeatureCoder
from explain.errors import UnsupportedModelError
from explain.results import AnchorRule, ExplanationResult
from explain.seeding import GLOBAL_RANDOM
from explain.versions import library_versions

_NUMBER = re.compile(r"-?\d+\.\d+")


def readable(condition: str) -> str:
    """'income <= 41200.00' -> 'income <= 41,200'; '0.20 < dti <= 0.35' keeps two decimals."""

    def fmt(match: re.Match[str]) -> str:
        value = float(match.group(0))
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"

    return _NUMBER.sub(fmt, condition)


class AnchorExplainer(Explainer):
    method = "anchors"

    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: BatchMeter
    ) -> list[ExplanationResult]:
        from alibi.explainers import AnchorTabular

        spec = self.predictor.spec
        if not spec.is_classifier:
            raise UnsupportedModelError("anchors explain classifiers; this model is a regression")
        coder = FeatureCoder(spec)
        background = coder.encode(self.background.frame)
        threshold = float(self.params.get("threshold", 0.95))
        coded = coder.encode(rows)
        results = []
        for i, seed in enumerate(seeds):
            started = time.perf_counter()
            own = meter.row(i)
            own.start()

            def model(z: np.ndarray, own: CallMeter = own) -> np.ndarray:
                z = np.atleast_2d(z)
                own.charge(len(z))
                return np.argmax(self.predictor.predict_scores(coder.decode(z)), axis=1)

            with GLOBAL_RANDOM:  # alibi samples from numpy's global generator
                np.random.seed(seed % (2**32))
                explainer = AnchorTabular(
                    model, feature_names=spec.feature_names, categorical_names=coder.categorical_names, seed=seed
                )
                explainer.fit(background, disc_perc=(25, 50, 75))
                explanation = explainer.explain(
                    coded[i],
                    threshold=threshold,
                    batch_size=int(self.params.get("batch_size", 100)),
                    coverage_samples=int(self.params.get("coverage_samples", 2000)),
                )
            predicted = int(model(coded[i : i + 1])[0])
            rule = AnchorRule(
                conditions=tuple(readable(c) for c in explanation.anchor),
                precision=float(np.atleast_1d(explanation.precision)[0]),
                coverage=float(explanation.coverage),
                threshold=threshold,
            )
            results.append(
                ExplanationResult(
                    method=self.method,
                    backend="alibi.AnchorTabular",
                    target=spec.class_labels[predicted],
                    body=rule,
                    parameters={
                        "threshold": threshold,
                        "disc_perc": [25, 50, 75],
                        "background_sha256": self.background.sha256,
                    },
                    seed=seed,
                    library_versions=library_versions("alibi"),
                    quality={"precision": rule.precision, "coverage": rule.coverage},
                    compute_ms=(time.perf_counter() - started) * 1000,
                    model_calls=own.rows,
                )
            )
        return results
