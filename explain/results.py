"""Typed, frozen explanation results. Every back-end returns these, never a library's own objects.

Each result converts to a plain JSON dict (``to_dict``) for the ledger and back (``from_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OUTPUT_SPACES = ("probability", "log_odds", "softmax_logit", "margin", "raw")


@dataclass(frozen=True, slots=True)
class Attributions:
    """Per-raw-feature contributions: sum(values) + base_value == output_value in ``output_space``.

    ``output_space`` is declared from the model, not inferred from the numbers: "probability" (a class
    probability), "log_odds" (binary logistic link), "softmax_logit" (one class's multinomial logit),
    "margin" (a classifier's decision function without a probability link) or "raw" (regression output).
    ``exact`` says whether the values are the exact Shapley values of the game (tree/linear SHAP) or an
    estimate; an estimate carries ``approximation`` (why it is one) and ``error_bound`` when the method
    has one. None: not recorded (entries written before these fields existed).
    """

    values: Mapping[str, float]
    base_value: float
    output_value: float
    output_space: str
    exact: bool | None = None
    approximation: str | None = None
    error_bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": "attributions",
            "values": {k: float(v) for k, v in self.values.items()},
            "base_value": float(self.base_value),
            "output_value": float(self.output_value),
            "output_space": self.output_space,
        }
        if self.exact is not None:
            data["exact"] = bool(self.exact)
        if self.approximation is not None:
            data["approximation"] = self.approximation
        if self.error_bound is not None:
            data["error_bound"] = float(self.error_bound)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attributions:
        exact = data.get("exact")
        bound = data.get("error_bound")
        return cls(
            values=dict(data["values"]),
            base_value=float(data["base_value"]),
            output_value=float(data["output_value"]),
            output_space=str(data["output_space"]),
            exact=None if exact is None else bool(exact),
            approximation=data.get("approximation"),
            error_bound=None if bound is None else float(bound),
        )


@dataclass(frozen=True, slots=True)
class AnchorRule:
    """An anchor: conditions on raw features under which the prediction holds with ``precision``.

    ``precision`` is alibi's own estimate; ``checked_precision`` is re-measured on an independent seeded
    sample of ``precision_samples`` rows, with a one-sided 95% (Wilson) ``precision_lower_bound``. The rule
    is presented as holding only when that bound reaches ``threshold`` (``holds``).
    """

    conditions: tuple[str, ...]
    precision: float
    coverage: float
    threshold: float
    checked_precision: float | None = None
    precision_lower_bound: float | None = None
    precision_samples: int | None = None

    @property
    def rule(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "(any input)"

    @property
    def holds(self) -> bool | None:
        if self.precision_lower_bound is None:
            return None
        return self.precision_lower_bound >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": "anchor",
            "conditions": list(self.conditions),
            "rule": self.rule,
            "precision": float(self.precision),
            "coverage": float(self.coverage),
            "threshold": float(self.threshold),
        }
        if self.checked_precision is not None:
            data["checked_precision"] = float(self.checked_precision)
            data["precision_lower_bound"] = float(self.precision_lower_bound or 0.0)
            data["precision_samples"] = int(self.precision_samples or 0)
            data["holds"] = bool(self.holds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnchorRule:
        checked = data.get("checked_precision")
        return cls(
            conditions=tuple(data["conditions"]),
            precision=float(data["precision"]),
            coverage=float(data["coverage"]),
            threshold=float(data["threshold"]),
            checked_precision=None if checked is None else float(checked),
            precision_lower_bound=None if checked is None else float(data["precision_lower_bound"]),
            precision_samples=None if checked is None else int(data["precision_samples"]),
        )


@dataclass(frozen=True, slots=True)
class FeatureChange:
    feature: str
    from_value: Any
    to_value: Any

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "from": self.from_value, "to": self.to_value}


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """One alternative input: what changes, how far it is, and whether the model's output really flips."""

    changes: tuple[FeatureChange, ...]
    predicted: str
    distance: float
    sparsity: int
    valid: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.to_dict() for c in self.changes],
            "predicted": self.predicted,
            "distance": float(self.distance),
            "sparsity": int(self.sparsity),
            "valid": bool(self.valid),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counterfactual:
        return cls(
            changes=tuple(FeatureChange(c["feature"], c["from"], c["to"]) for c in data["changes"]),
            predicted=str(data["predicted"]),
            distance=float(data["distance"]),
            sparsity=int(data["sparsity"]),
            valid=bool(data["valid"]),
        )


@dataclass(frozen=True, slots=True)
class Counterfactuals:
    """Valid counterfactuals only, smallest first; ``rejected`` counts candidates that failed our checks."""

    desired: str
    items: tuple[Counterfactual, ...]
    rejected: int = 0
    rejection_reasons: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "counterfactuals",
            "desired": self.desired,
            "items": [c.to_dict() for c in self.items],
            "rejected": int(self.rejected),
            "rejection_reasons": {k: int(v) for k, v in self.rejection_reasons.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counterfactuals:
        return cls(
            desired=str(data["desired"]),
            items=tuple(Counterfactual.from_dict(c) for c in data["items"]),
            rejected=int(data.get("rejected", 0)),
            rejection_reasons=dict(data.get("rejection_reasons", {})),
        )


Body = Attributions | AnchorRule | Counterfactuals
_BODY_KINDS: dict[str, Any] = {
    "attributions": Attributions,
    "anchor": AnchorRule,
    "counterfactuals": Counterfactuals,
}


@dataclass(frozen=True, slots=True)
class ExplanationResult:
    """One explanation of one decision, with everything needed to reproduce it."""

    method: str  # registry name: "shap", "lime", "anchors", "counterfactuals"
    backend: str  # e.g. "shap.TreeExplainer"
    target: str  # class label explained, or "value" for regression
    body: Body
    parameters: Mapping[str, Any]
    seed: int | None
    library_versions: Mapping[str, str]
    quality: Mapping[str, float] = field(default_factory=dict)
    compute_ms: float = 0.0
    model_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "backend": self.backend,
            "target": self.target,
            "result": self.body.to_dict(),
            "parameters": dict(self.parameters),
            "seed": self.seed,
            "library_versions": dict(self.library_versions),
            "quality": {k: float(v) for k, v in self.quality.items()},
            "compute_ms": float(self.compute_ms),
            "model_calls": int(self.model_calls),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationResult:
        body_data = data["result"]
        body = _BODY_KINDS[body_data["kind"]].from_dict(body_data)
        return cls(
            method=str(data["method"]),
            backend=str(data["backend"]),
            target=str(data["target"]),
            body=body,
            parameters=dict(data["parameters"]),
            seed=data.get("seed"),
            library_versions=dict(data["library_versions"]),
            quality=dict(data.get("quality", {})),
            compute_ms=float(data.get("compute_ms", 0.0)),
            model_calls=int(data.get("model_calls", 0)),
        )
