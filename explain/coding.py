"""Raw rows <-> numeric matrices for model-agnostic explainers.

Kernel/Permutation SHAP, LIME and anchors perturb numbers; our models take raw rows with string
categories. The coder turns each category into its index in the schema and back, so the explainer
works on numbers while the model always sees valid raw values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from explain.base import CallMeter, Predictor
from explain.predictor import frame_from_rows
from explain.schema import ModelSpec


class FeatureCoder:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.names = spec.feature_names
        self.categorical_indices = [i for i, f in enumerate(spec.features) if f.type in ("category", "boolean")]
        self.categorical_names: dict[int, list[str]] = {}
        for i, f in enumerate(spec.features):
            if f.type == "category":
                self.categorical_names[i] = list(f.categories or ())
            elif f.type == "boolean":
                self.categorical_names[i] = ["false", "true"]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.names)), dtype=float)
        for i, feature in enumerate(self.spec.features):
            column = frame[feature.name]
            if feature.type == "category":
                lookup = {c: k for k, c in enumerate(feature.categories or ())}
                out[:, i] = [lookup[v] for v in column]
            else:
                out[:, i] = column.astype(float).to_numpy()
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
        columns: dict[str, object] = {}
        for i, feature in enumerate(self.spec.features):
            values = matrix[:, i]
            if feature.type == "category":
                cats = np.asarray(feature.categories, dtype=object)
                codes = np.clip(np.rint(values).astype(int), 0, len(cats) - 1)
                columns[feature.name] = cats[codes]
            elif feature.type == "boolean":
                columns[feature.name] = np.rint(values) >= 1
            elif feature.type == "integer":
                columns[feature.name] = np.rint(values).astype(np.int64)
            else:
                columns[feature.name] = values
        frame = pd.DataFrame(columns, columns=self.names)
        for f in self.spec.features:
            if f.type == "category":
                frame[f.name] = frame[f.name].astype(object)
        return frame

    def empty_frame(self) -> pd.DataFrame:
        return frame_from_rows(self.spec, [])

    def scorer(self, predictor: Predictor, meter: CallMeter) -> Callable[[np.ndarray], np.ndarray]:
        """The model as model-agnostic explainers see it: codes in, scores out, every row charged."""

        def score(z: np.ndarray) -> np.ndarray:
            meter.charge(len(z))
            return np.asarray(predictor.predict_scores(self.decode(z)), dtype=float)

        return score

    def value_of(self, index: int, code: float) -> object:
        """The raw value a coded number stands for (for rules and reasons)."""
        feature = self.spec.features[index]
        if feature.type == "category":
            cats = feature.categories or ()
            return cats[int(np.clip(round(code), 0, len(cats) - 1))]
        if feature.type == "boolean":
            return bool(round(code))
        if feature.type == "integer":
            return round(code)
        return float(code)
