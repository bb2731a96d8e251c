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

_FROM_ARRAYS = getattr(pd.DataFrame, "_from_arrays", None)


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
        # the column layout, computed once: decode runs on every model call of an explainer
        self._layout = [
            (f.type, np.asarray(f.categories, dtype=object) if f.type == "category" else None) for f in spec.features
        ]
        self._index = pd.Index(self.names)
        self._numeric = all(f.type != "category" for f in spec.features)
        self._rounded = [i for i, f in enumerate(spec.features) if f.type in ("integer", "boolean")]
        self._booleans = [i for i, f in enumerate(spec.features) if f.type == "boolean"]
        try:
            self._strings_inferred = bool(pd.get_option("future.infer_string"))
        except (KeyError, pd.errors.OptionError):
            self._strings_inferred = False

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
        """Coded rows as raw-feature rows: schema column order and dtypes (float64, int64, bool, object).

        Runs on every model call of a model-agnostic explainer, so the frame is built straight from one
        array per column into consolidated blocks (pandas' ``DataFrame._from_arrays``, as its own
        constructor does after inferring; pandas is pinned below 3 and the public constructor is the
        fallback): ~0.05 ms for the credit schema, where building a frame and re-typing its category
        columns took ~0.55 ms; an unconsolidated frame (``copy=False``) would cost the pipeline ~0.1 ms more
        per call. tests/explain/test_predictor_fast_path.py keeps it equal to the obvious construction."""
        matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
        columns = self._columns(matrix)
        if _FROM_ARRAYS is not None:
            frame = _FROM_ARRAYS(columns, columns=self._index, index=pd.RangeIndex(len(matrix)), verify_integrity=False)
        else:
            frame = pd.DataFrame(dict(zip(self.names, columns, strict=True)), columns=self.names)
        if self._strings_inferred:  # pandas' string inference would give the category columns a str dtype
            for f in self.spec.features:
                if f.type == "category":
                    frame[f.name] = frame[f.name].astype(object)
        return frame

    def _columns(self, matrix: np.ndarray) -> list[np.ndarray]:
        columns: list[np.ndarray] = []
        for i, (kind, cats) in enumerate(self._layout):
            values = matrix[:, i]
            if kind == "category":
                assert cats is not None
                columns.append(cats[np.clip(np.rint(values).astype(np.intp), 0, len(cats) - 1)])
            elif kind == "boolean":
                columns.append(np.rint(values) >= 1)
            elif kind == "integer":
                columns.append(np.rint(values).astype(np.int64))
            else:
                columns.append(values.copy())  # the caller's matrix is not the frame's storage
        return columns

    def values(self, matrix: np.ndarray) -> np.ndarray:
        """Coded rows of a schema without categories as the raw numbers ``decode`` would put in its frame
        (integers rounded, booleans 0/1), as one float matrix."""
        matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
        if not self._rounded:
            return matrix
        out = matrix.copy()
        for i in self._rounded:
            out[:, i] = np.rint(out[:, i])
        for i in self._booleans:
            out[:, i] = out[:, i] >= 1
        return out

    def scores(self, predictor: Predictor, matrix: np.ndarray) -> np.ndarray:
        """The model's scores for coded rows by the cheapest path that gives the same scores: the model's
        own numeric path when the schema has no categories and the predictor has one (no DataFrame at
        all), else ``predict_scores`` of the decoded frame."""
        if self._numeric and predictor.accepts_array:
            return np.asarray(predictor.predict_scores_array(self.values(matrix)), dtype=float)
        return np.asarray(predictor.predict_scores(self.decode(matrix)), dtype=float)

    def empty_frame(self) -> pd.DataFrame:
        return frame_from_rows(self.spec, [])

    def scorer(self, predictor: Predictor, meter: CallMeter) -> Callable[[np.ndarray], np.ndarray]:
        """The model as model-agnostic explainers see it: codes in, scores out, every row charged."""

        def score(z: np.ndarray) -> np.ndarray:
            meter.charge(len(z))
            return self.scores(predictor, z)

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
