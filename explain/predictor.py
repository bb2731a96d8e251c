"""Concrete predictors: a loaded model version that takes raw-feature DataFrames and returns scores.

Scores always come in the schema's class-label order, whatever order the library uses, so downstream
code (outputs, explanations, targets) never has to know the estimator's own class ordering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explain.array_path import array_estimator, frame_layout, layout_for
from explain.base import Predictor
from explain.errors import ArtifactError
from explain.schema import ModelSpec

_DTYPES = {"number": "float64", "integer": "int64", "boolean": "bool", "category": "object"}


def frame_from_rows(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Raw inputs as a DataFrame in schema column order with each feature's dtype (one numpy array per
    column: a third of the time of a Series per column, on the path of every logged decision)."""
    columns = {f.name: np.array([row[f.name] for row in rows], dtype=_DTYPES[f.type]) for f in spec.features}
    return pd.DataFrame(columns, columns=spec.feature_names)


def matrix_from_rows(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Raw inputs of a schema without categories as one float matrix in schema order (booleans 0/1), the
    input of ``predict_scores_array``."""
    names = spec.feature_names
    return np.array([[row[name] for name in names] for row in rows], dtype=float).reshape(len(rows), len(names))


def scores_of_rows(predictor: Predictor, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Scores of validated raw rows by the cheapest path that gives the same scores: the model's numeric path
    when it has one and the schema has no categories, else a DataFrame."""
    spec = predictor.spec
    if predictor.accepts_array and all(f.type != "category" for f in spec.features):
        return np.asarray(predictor.predict_scores_array(matrix_from_rows(spec, rows)), dtype=float)
    return np.asarray(predictor.predict_scores(frame_from_rows(spec, rows)), dtype=float)


def outputs_of(spec: ModelSpec, scores: np.ndarray) -> list[dict[str, Any]]:
    """Scores as recorded outputs: the label and every class's score, or the predicted value."""
    if not spec.is_classifier:
        return [{"value": float(v)} for v in scores]
    labels = spec.class_labels
    return [
        {
            "label": labels[int(np.argmax(row))],
            "scores": {label: float(p) for label, p in zip(labels, row, strict=True)},
        }
        for row in scores
    ]


class BasePredictor:
    format: str = "unknown"

    def __init__(self, estimator: Any, spec: ModelSpec) -> None:
        self.estimator = estimator
        self.spec = spec

    accepts_array: bool = False  # predict_scores_array is the model's own numeric path, not a frame rebuilt

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of raw numeric features in schema order as a float matrix (integers whole, booleans 0/1);
        for schemas without categorical features. Only fast where ``accepts_array`` is true."""
        return self.predict_scores(_numeric_frame(self.spec, matrix))

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
        return outputs_of(self.spec, self.predict_scores(frame))


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
            order = np.array([classes.index(label) for label in spec.class_labels])
            # None when the estimator's order is the schema's: no column shuffle (a copy) per call
            self._order = None if np.array_equal(order, np.arange(len(order))) else order
            self._classes = classes
        self._names = list(spec.feature_names)
        self._array_estimator = array_estimator(estimator, spec)
        self.accepts_array = self._array_estimator is not None
        self._layout = layout_for(self._array_estimator) if self._array_estimator is not None else frame_layout

    def _scores(self, model: Any, data: Any) -> np.ndarray:
        if self.spec.is_classifier:
            proba = np.asarray(model.predict_proba(data), dtype=float)
            return proba if self._order is None else proba[:, self._order]
        return np.asarray(model.predict(data), dtype=float).reshape(-1)

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        if self._array_estimator is not None and list(frame.columns) == self._names:
            return self._scores(self._array_estimator, self._layout(frame.to_numpy(dtype=float)))
        return self._scores(self.estimator, frame)

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        if self._array_estimator is not None:
            return self._scores(self._array_estimator, self._layout(matrix))
        return self._scores(self.estimator, _numeric_frame(self.spec, matrix))

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
        return margin, self._scores(final, transformed)


def _numeric_frame(spec: ModelSpec, matrix: np.ndarray) -> pd.DataFrame:
    """A numeric feature matrix as the frame the model was given before: each column in its schema dtype."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
    columns = {
        f.name: matrix[:, i].astype(_DTYPES[f.type]) if f.type != "number" else matrix[:, i]
        for i, f in enumerate(spec.features)
    }
    return pd.DataFrame(columns, columns=spec.feature_names, copy=False)


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

    accepts_array = True

    def _dmatrix(self, frame: pd.DataFrame) -> Any:
        return self._dmatrix_of(_numeric_matrix(frame, self.spec))

    def _dmatrix_of(self, matrix: np.ndarray) -> Any:
        import xgboost

        return xgboost.DMatrix(matrix, feature_names=self.spec.feature_names)

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_scores_array(_numeric_matrix(frame, self.spec))

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        out = np.asarray(self.estimator.predict(self._dmatrix_of(np.asarray(matrix, dtype=float))), dtype=float)
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

    accepts_array = True

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_scores_array(_numeric_matrix(frame, self.spec))

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        out = np.asarray(self.estimator.predict(np.asarray(matrix, dtype=float)), dtype=float)
        if self.spec.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.estimator.predict(_numeric_matrix(frame, self.spec), raw_score=True), dtype=float)


class OnnxPredictor(BasePredictor):
    """An ONNX graph run by onnxruntime on the CPU: one float input of the numeric features in schema order.

    Classifiers must give class probabilities in the manifest's ``class_labels`` order (a float tensor of
    shape (n, classes), or scikit-learn-onnx's ZipMap of label -> probability); regressors one value per row.
    The graph is opaque to SHAP's tree and linear explainers, so it is explained model-agnostically.
    """

    format = "onnx"

    def __init__(self, data: bytes, spec: ModelSpec) -> None:
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ArtifactError(f"not a readable ONNX model: {exc}") from exc
        super().__init__(session, spec)
        _numeric_matrix(frame_from_rows(spec, []), spec)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ArtifactError("ONNX models must take one input tensor of the numeric features in schema order")
        self._input = inputs[0].name
        self._outputs = [o.name for o in session.get_outputs()]
        probe = self._run(np.zeros((1, len(spec.features))))
        if spec.is_classifier and probe.shape != (1, len(spec.class_labels)):
            raise ArtifactError(f"the ONNX model gives no probabilities for the {len(spec.class_labels)} class_labels")

    def _run(self, matrix: np.ndarray) -> np.ndarray:
        results = self.estimator.run(None, {self._input: matrix.astype(np.float32)})
        labels = list(self.spec.class_labels)
        for value in results:
            if isinstance(value, list) and value and isinstance(value[0], dict):  # ZipMap
                return np.array([[float(row[_key(row, label)]) for label in labels] for row in value])
        numeric = [np.asarray(v) for v in results if np.asarray(v).dtype.kind == "f"]
        if not numeric:
            raise ArtifactError("the ONNX model has no numeric output")
        if self.spec.is_classifier:
            wide = [v for v in numeric if v.ndim == 2 and v.shape[1] == len(labels)]
            if not wide:
                raise ArtifactError("the ONNX model has no (rows, classes) probability output")
            return np.asarray(wide[-1], dtype=float)
        return np.asarray(numeric[0], dtype=float).reshape(len(matrix), -1)[:, 0]

    accepts_array = True

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self._run(_numeric_matrix(frame, self.spec))

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        return self._run(np.asarray(matrix, dtype=float))


def _key(row: dict[Any, float], label: str) -> Any:
    if label in row:
        return label
    for key in row:  # ZipMap keys are the training labels' own type (often integers)
        if str(key) == label:
            return key
    raise ArtifactError(f"the ONNX model's probabilities have no class {label!r}")
