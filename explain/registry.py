"""Explainer back-ends by name. Values are "module:Class" so libraries load only when a method is used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from explain.base import Background, Explainer, Predictor
from explain.errors import UnknownMethodError

EXPLAINERS: dict[str, str] = {
    "shap": "explain.shap_backend:ShapExplainer",
    "lime": "explain.lime_backend:LimeExplainer",
    "anchors": "explain.anchors_backend:AnchorExplainer",
    "counterfactuals": "explain.counterfactual_backend:CounterfactualExplainer",
}


def explainer_class(method: str) -> type[Explainer]:
    try:
        target = EXPLAINERS[method]
    except KeyError:
        raise UnknownMethodError(f"unknown explanation method {method!r}; known: {sorted(EXPLAINERS)}") from None
    module, _, name = target.partition(":")
    cls: type[Explainer] = getattr(importlib.import_module(module), name)
    return cls


def create_explainer(
    method: str, *, predictor: Predictor, background: Background, params: Mapping[str, Any] | None = None
) -> Explainer:
    """A fresh explainer object; never share one between threads."""
    return explainer_class(method)(predictor=predictor, background=background, params=params)


def check_request(
    method: str, *, predictor: Predictor, background: Background, params: Mapping[str, Any] | None = None
) -> None:
    """Refuse a request that cannot be honoured for this model before it is queued (UnsupportedModelError,
    a 422 saying why), instead of failing in a worker or silently substituting another algorithm."""
    explainer_class(method).check(predictor, background, dict(params or {}))


def check_available(method: str, params: Mapping[str, Any] | None = None) -> None:
    """UnsupportedModelError naming the extra to install when ``method`` cannot run in this install."""
    explainer_class(method).check_available(dict(params or {}))
