"""Concrete predictors: a loaded model version that takes raw-feature DataFrames and returns scores.

Scores always come in the schema's class-label order, whatever order the library uses, so downstream
code (outputs, explanations, targets) never has to know the estimator's own class ordering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explain.errors import ArtifactError
from explain.schema import ModelSpec

_DTYPES = {"number": "float64", "integer": "int64", "boolean": "bool", "category": "object"}


def frame_from_rows(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Raw inputs as a DataFrame in schema column order with each feature's dtype."""
    columns = {f.name: pd.Series([row[f.name] for row in rows], dtype=_DTYPES[f.type]) for f in spec.features}
    return pd.DataFrame(columns, columns=spec.feature_names)


class BasePredictor:
    format: str = "unknown"

    def __init__(self, estimator: Any, spec: ModelSpec) -> None:
        self.estimator = estimator
        self.spec = spec

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Raw model output (log-odds for boosted classifiers) when the model has one."""
        return None

    def margin_and_scores(
        self, frame: pd.DataFrame, *, transformed: Any = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Both outputs; ``transformed`` is the frame already through the pipeline's preprocessing, when the
        caller has it, so the preprocessing (most of the cost for a small batch) runs once, not twice."""
        return self.margin(frame), self.predict_scores(frame)

    def predict_labels(self, frame: pd.DataFrame) -> list[str]:
        scores = self.predict_scores(frame)
        if not self.spec.is_classifier:
            return [repr(float(v)) for v in scores]
        labels = self.spec.class_labels
        return [labels[i] for i in np.argmax(scores, axis=1)]

    def predict(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        scores = self.predict_scores(frame)
        if not self.spec.is_classifier:
            return [{"value": float(v)} for v in scores]
        labels = self.spec.class_labels
        out = []
        for row in scores:
            out.append(
                {
                    "label": labels[int(np.argmax(row))],
                    "scores": {label: float(p) for label, p in zip(labels, row, strict=True)},
                }
            )
        return out


class SklearnPredictor(BasePredictor):
    format = "skops"

    def __init__(self, estimator: Any, spec: ModelSpec, *, format: str = "skops") -> None:
        super().__init__(estimator, spec)
        self.format = format
        self._order: np.ndarray | None = None
        if spec.is_classifier:
            classes = [str(c) for c in getattr(estimator, "classes_", [])]
            if sorted(classes) != sorted(spec.class_labels):
                raise ArtifactError(
                    f"the model's classes {classes} do not match the manifest's class_labels {list(spec.class_labels)}"
                )
            self._order = np.array([classes.index(label) for label in spec.class_labels])
            self._classes = classes

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        if self.spec.is_classifier:
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=float)
            assert self._order is not None
            return proba[:, self._order]
        return np.asarray(self.estimator.predict(frame), dtype=float).reshape(-1)

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        if not hasattr(self.estimator, "decision_function"):
            return None
        return np.asarray(self.estimator.decision_function(frame), dtype=float)

    def margin_and_scores(
        self, frame: pd.DataFrame, *, transformed: Any = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        steps = getattr(self.estimator, "steps", None)
        if transformed is None or not steps or len(steps) < 2:
            return super().margin_and_scores(frame)
        final = steps[-1][1]  # what Pipeline.predict_proba does after transform, on the same matrix
        margin = (
            np.asarray(final.decision_function(transformed), dtype=float)
            if hasattr(final, "decision_function")
            else None
        )
        if self.spec.is_classifier:
            assert self._order is not None
            return margin, np.asarray(final.predict_proba(transformed), dtype=float)[:, self._order]
        return margin, np.asarray(final.predict(transformed), dtype=float).reshape(-1)


def _numeric_matrix(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    for feature in spec.features:
        if feature.type == "category":
            raise ArtifactError(
                f"feature {feature.name!r} is categorical: boosters take numeric features; "
                "ship a scikit-learn pipeline (skops) that encodes it"
            )
    return frame[spec.feature_names].astype(float).to_numpy()


class XGBoostPredictor(BasePredictor):
    def __init__(self, booster: Any, spec: ModelSpec, *, format: str) -> None:
        super().__init__(booster, spec)
        self.format = format
        _numeric_matrix(frame_from_rows(spec, []), spec)

    def _dmatrix(self, frame: pd.DataFrame) -> Any:
        import xgboost

        return xgboost.DMatrix(_numeric_matrix(frame, self.spec), feature_names=self.spec.feature_names)

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self.estimator.predict(self._dmatrix(frame)), dtype=float)
        if self.spec.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.estimator.predict(self._dmatrix(frame), output_margin=True), dtype=float)


class LightGBMPredictor(BasePredictor):
    format = "lightgbm-text"

    def __init__(self, booster: Any, spec: ModelSpec) -> None:
        super().__init__(booster, spec)
        _numeric_matrix(frame_from_rows(spec, []), spec)

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self.estimator.predict(_numeric_matrix(frame, self.spec)), dtype=float)
        if self.spec.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.estimator.predict(_numeric_matrix(frame, self.spec), raw_score=True), dtype=float)
