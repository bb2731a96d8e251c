"""Anchors (alibi AnchorTabular): a rule on raw features under which the prediction holds.

alibi is under the Business Source License 1.1 (see the README). Rules come back in raw terms:
category codes are named by the schema's categories and numbers are printed readably.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import numpy as np
import pandas as pd

from explain.base import BatchMeter, CallMeter, Explainer, Target
from explain.coding import FeatureCoder
from explain.errors import UnsupportedModelError
from explain.results import AnchorRule, ExplanationResult
from explain.seeding import GLOBAL_RANDOM
from explain.versions import library_versions

_NUMBER = re.compile(r"-?\d+\.\d+")
_BETWEEN = re.compile(r"(-?[\d.]+) < (\w+) <= (-?[\d.]+)")
_COMPARE = re.compile(r"(\w+) (<=|>=|<|>|=) (.+)")
PRECISION_SAMPLES = 2000  # independent samples re-measuring each anchor's precision
Z_95 = 1.6448536269514722  # one-sided 95% normal quantile, for the Wilson lower bound


def condition_mask(condition: str, coded: np.ndarray, coder: FeatureCoder) -> np.ndarray:
    """Which coded rows satisfy one of alibi's conditions ("a < f <= b", "f <= v", "f = category")."""
    names = coder.names
    between = _BETWEEN.fullmatch(condition)
    if between:
        low, name, high = between.groups()
        column = coded[:, names.index(name)]
        return (column > float(low)) & (column <= float(high))
    match = _COMPARE.fullmatch(condition)
    if match is None:
        raise ValueError(f"unreadable anchor condition {condition!r}")
    name, op, value = match.groups()
    j = names.index(name)
    column = coded[:, j]
    if op == "=":
        categories = coder.categorical_names.get(j, [])
        return column == float(categories.index(value) if value in categories else value)
    number = float(value)
    return {
        "<=": column <= number,
        ">=": column >= number,
        "<": column < number,
        ">": column > number,
    }[op]


def wilson_lower(successes: int, n: int, z: float = Z_95) -> float:
    """One-sided lower confidence bound of a proportion (Wilson score interval)."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def remeasure(
    conditions: list[str],
    row: np.ndarray,
    background: np.ndarray,
    coder: FeatureCoder,
    model: Any,
    predicted: int,
    *,
    n: int,
    seed: int,
) -> tuple[float, float, int]:
    """Precision of the rule on a fresh sample, independent of alibi's: background rows drawn with our own
    seeded generator, each anchored feature replaced by a value drawn from background rows satisfying its
    condition (the population the rule speaks of). Returns (precision, 95% lower bound, samples)."""
    rng = np.random.default_rng([seed, 0x414E43])  # a stream of its own, never alibi's
    sample = background[rng.integers(0, len(background), n)].copy()
    for condition in conditions:
        mask = condition_mask(condition, background, coder)
        names = [name for name in coder.names if re.search(rf"\b{re.escape(name)}\b", condition)]
        j = coder.names.index(names[0])
        pool = background[mask, j] if mask.any() else np.array([row[j]])
        sample[:, j] = pool[rng.integers(0, len(pool), n)]
    same = int(np.sum(model(sample) == predicted))
    return same / n, wilson_lower(same, n), n


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
    requires = (("alibi", "alibi"),)

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
        samples = int(self.params.get("precision_samples", PRECISION_SAMPLES))
        results = []
        for i, seed in enumerate(seeds):
            started = time.perf_counter()
            own = meter.row(i)
            own.start()

            def model(z: np.ndarray, own: CallMeter = own) -> np.ndarray:
                z = np.atleast_2d(z)
                own.charge(len(z))
                return np.argmax(coder.scores(self.predictor, z), axis=1)

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
            checked, lower, n_checked = remeasure(
                list(explanation.anchor),
                coded[i],
                background,
                coder,
                model,
                predicted,
                n=samples,
                seed=seed,
            )
            rule = AnchorRule(
                conditions=tuple(readable(c) for c in explanation.anchor),
                precision=float(np.atleast_1d(explanation.precision)[0]),
                coverage=float(explanation.coverage),
                threshold=threshold,
                checked_precision=checked,
                precision_lower_bound=lower,
                precision_samples=n_checked,
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
                        "precision_samples": samples,
                        "precision_confidence": 0.95,
                        "background_sha256": self.background.sha256,
                    },
                    seed=seed,
                    library_versions=library_versions("alibi"),
                    quality={
                        "precision": rule.precision,
                        "coverage": rule.coverage,
                        "checked_precision": checked,
                        "precision_lower_bound": lower,
                    },
                    compute_ms=(time.perf_counter() - started) * 1000,
                    model_calls=own.rows,
                )
            )
        return results
