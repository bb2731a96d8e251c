"""Do a decision's explanations agree? Three checks between methods that should tell the same story.

- SHAP vs LIME: Spearman rank correlation of their attributions over the features either ranks in its
  top ``TOP`` by magnitude (units differ, log-odds vs probability, so ranks, not values, are compared).
- Anchor vs attributions: the share of the anchor rule's features among the top ``TOP`` attributions.
- Counterfactual vs attributions: the share of features the smallest counterfactual changes that are among
  the top ``TOP`` attributions.

A check below its threshold flags the decision as disagreeing: a reviewer should read such a decision's
explanations with care, since at least one of them tells a different story about what mattered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from explain.results import AnchorRule, Attributions, Counterfactuals, ExplanationResult

TOP = 5
MIN_RANK_CORRELATION = 0.5
MIN_SHARE_IN_TOP = 0.5


@dataclass(frozen=True, slots=True)
class Agreement:
    """The checks that could be made (None: a method is missing) and the verdict over them."""

    shap_lime_rank_correlation: float | None
    anchor_features_in_top: float | None
    counterfactual_features_in_top: float | None
    top: int = TOP

    @property
    def checks(self) -> int:
        return sum(
            v is not None
            for v in (
                self.shap_lime_rank_correlation,
                self.anchor_features_in_top,
                self.counterfactual_features_in_top,
            )
        )

    @property
    def disagreements(self) -> tuple[str, ...]:
        out = []
        rho = self.shap_lime_rank_correlation
        if rho is not None and rho < MIN_RANK_CORRELATION:
            out.append(f"SHAP and LIME rank the top features differently (Spearman {rho:.2f})")
        if self.anchor_features_in_top is not None and self.anchor_features_in_top < MIN_SHARE_IN_TOP:
            out.append(
                f"only {self.anchor_features_in_top:.0%} of the anchor's features are among the top {self.top} "
                "attributions"
            )
        share = self.counterfactual_features_in_top
        if share is not None and share < MIN_SHARE_IN_TOP:
            out.append(f"only {share:.0%} of the features the counterfactual changes are among the top {self.top}")
        return tuple(out)

    @property
    def agrees(self) -> bool | None:
        """None when fewer than two methods were recorded, so nothing could be compared."""
        if self.checks == 0:
            return None
        return not self.disagreements

    def to_dict(self) -> dict[str, Any]:
        return {
            "shap_lime_rank_correlation": self.shap_lime_rank_correlation,
            "anchor_features_in_top": self.anchor_features_in_top,
            "counterfactual_features_in_top": self.counterfactual_features_in_top,
            "top": self.top,
            "agrees": self.agrees,
            "disagreements": list(self.disagreements),
        }


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho with average ranks for ties; 1.0 for fewer than two points or a constant side."""
    if len(a) < 2:
        return 1.0
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 1.0 if np.array_equal(ra, rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties share their average rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _top(values: Mapping[str, float], k: int) -> list[str]:
    return [name for name, _ in sorted(values.items(), key=lambda kv: -abs(kv[1]))[:k] if values[name] != 0]


def _anchor_features(rule: AnchorRule, names: list[str]) -> set[str]:
    found: set[str] = set()
    for condition in rule.conditions:
        tokens = condition.replace("<", " ").replace(">", " ").replace("=", " ").split()
        found.update(n for n in names if n in tokens)
    return found


def agreement(results: Mapping[str, ExplanationResult], *, top: int = TOP) -> Agreement:
    """Compare the latest result of each method (``results`` by method name)."""
    shap = results.get("shap")
    lime = results.get("lime")
    shap_values = shap.body.values if shap is not None and isinstance(shap.body, Attributions) else None
    lime_values = lime.body.values if lime is not None and isinstance(lime.body, Attributions) else None
    reference = shap_values if shap_values is not None else lime_values
    rho = None
    if shap_values is not None and lime_values is not None:
        features = sorted(set(_top(shap_values, top)) | set(_top(lime_values, top)))
        rho = spearman([shap_values[f] for f in features], [lime_values.get(f, 0.0) for f in features])
    anchor_share = None
    anchors = results.get("anchors")
    if reference is not None and anchors is not None and isinstance(anchors.body, AnchorRule):
        used = _anchor_features(anchors.body, list(reference))
        if used:
            anchor_share = len(used & set(_top(reference, top))) / len(used)
    cf_share = None
    cfs = results.get("counterfactuals")
    if reference is not None and cfs is not None and isinstance(cfs.body, Counterfactuals) and cfs.body.items:
        changed = {c.feature for c in cfs.body.items[0].changes}
        if changed:
            cf_share = len(changed & set(_top(reference, top))) / len(changed)
    return Agreement(rho, anchor_share, cf_share, top)
