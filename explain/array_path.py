"""Calling a scikit-learn model with a numpy matrix instead of a DataFrame, where that gives the same scores.

Why: scikit-learn's DataFrame path (feature-name validation, per-column dtype checks, pandas -> numpy
conversion) costs more than a small tree ensemble's own work. Measured on the breast-cancer
GradientBoostingClassifier (30 numeric features, 100 trees, depth 3; ``bench/explainers.py
--only-predictor``): ``predict_proba`` takes ~0.7 ms for a 1- or 100-row DataFrame and ~0.25 ms for the
same rows as a float matrix. Explainers call the model
hundreds of times per explanation (anchors ~790 calls), so this is most of their model time.

When it applies (``array_estimator`` returns None otherwise, and the caller keeps the DataFrame path):

- every feature of the schema is numeric (number, integer, boolean): the matrix holds the raw values;
- no step has a ``set_output`` container configured (a pandas-output step would rename columns);
- the model's first step was fitted on arrays (no ``feature_names_in_``: a matrix is its native input), or
  it was fitted on a DataFrame whose columns are the schema's, in order, and nothing nested inside it
  was fitted on a DataFrame (a ColumnTransformer's or a meta-estimator's sub-estimators are: those keep
  the DataFrame path). Then a shallow copy of that step without ``feature_names_in_`` is called; it shares
  every fitted array with the original, so the only thing skipped is the name check the schema already
  guarantees (frames are always built in schema order).

The shallow copy is checked once, at load, against the original on probe rows spanning the schema's
ranges (bit-identical scores or the DataFrame path is kept); tests/explain/test_predictor_fast_path.py
compares the two paths on the demo pipelines for several batch sizes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from explain.schema import ModelSpec


def _output_configured(estimator: Any) -> bool:
    config = getattr(estimator, "_sklearn_output_config", None) or {}
    if config.get("transform") not in (None, "default"):
        return True
    return any(_output_configured(step) for _, step in getattr(estimator, "steps", None) or ())


def _nested_fitted_on_frames(value: Any, depth: int = 0) -> bool:
    """Whether any estimator inside ``value`` (attributes, lists, tuples, dicts, object arrays) carries
    ``feature_names_in_``: such a sub-estimator would warn, or fail, when handed a matrix."""
    if depth > 6:
        return False
    if isinstance(value, np.ndarray):
        return value.dtype == object and any(_nested_fitted_on_frames(v, depth + 1) for v in value.ravel())
    if isinstance(value, (list, tuple)):
        return any(_nested_fitted_on_frames(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_nested_fitted_on_frames(v, depth + 1) for v in value.values())
    if hasattr(value, "get_params") and hasattr(value, "fit"):  # a scikit-learn estimator
        if hasattr(value, "feature_names_in_"):
            return True
        return any(_nested_fitted_on_frames(v, depth + 1) for v in vars(value).values())
    return False


def frame_layout(matrix: np.ndarray) -> np.ndarray:
    """A float matrix in the memory layout scikit-learn gets from a DataFrame (column-major: pandas keeps
    each dtype's columns as rows of one block and hands out its transpose). The layout matters: a linear
    model's matrix product sums in another order on a row-major matrix, and scores differ in the last bit
    (tests/explain/test_predictor_fast_path.py caught it on a 7-row batch)."""
    return np.asfortranarray(np.atleast_2d(np.asarray(matrix, dtype=float)))


# Estimators whose prediction reads each value by comparison only (tree traversals; a boosted model's
# initial estimate is computed after its input is converted to a C-ordered float32 copy): the matrix's
# memory layout cannot change their scores, so the column-major copy ``frame_layout`` makes is skipped.
# Exact classes: a subclass or a meta-estimator may do arithmetic on the matrix.
LAYOUT_FREE = frozenset(
    f"sklearn.{module}.{name}"
    for module, names in {
        "ensemble._gb": ("GradientBoostingClassifier", "GradientBoostingRegressor"),
        "ensemble._forest": (
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
        ),
        "ensemble._hist_gradient_boosting.gradient_boosting": (
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
        ),
        "tree._classes": (
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "ExtraTreeClassifier",
            "ExtraTreeRegressor",
        ),
    }.items()
    for name in names
)


def row_layout(matrix: np.ndarray) -> np.ndarray:
    """The matrix as given (row-major from numpy code): no copy when it is already float."""
    return np.atleast_2d(np.asarray(matrix, dtype=float))


def layout_for(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """How to lay out a matrix for ``estimator`` so that it scores it as it scores a DataFrame."""
    kind = type(estimator)
    return row_layout if f"{kind.__module__}.{kind.__qualname__}" in LAYOUT_FREE else frame_layout


def probe_matrix(spec: ModelSpec) -> np.ndarray:
    """A few rows spanning each feature's declared range (integers whole, booleans 0/1)."""
    columns = []
    for f in spec.features:
        if f.type == "boolean":
            columns.append([0.0, 1.0, 1.0, 0.0])
            continue
        low = f.minimum if f.minimum is not None else -1.0
        high = f.maximum if f.maximum is not None else 1.0
        values = [low, high, low + (high - low) / 3, low + 2 * (high - low) / 3]
        columns.append([float(round(v)) if f.type == "integer" else float(v) for v in values])
    return np.array(columns, dtype=float).T


def probe_frame(spec: ModelSpec, matrix: np.ndarray) -> pd.DataFrame:
    dtypes = {"number": "float64", "integer": "int64", "boolean": "bool"}
    return pd.DataFrame(
        {f.name: matrix[:, i].astype(dtypes[f.type]) for i, f in enumerate(spec.features)}, columns=spec.feature_names
    )


def array_estimator(estimator: Any, spec: ModelSpec) -> Any | None:
    """The estimator to call with a float matrix of the raw features in schema order, or None when only the
    DataFrame path is known to give the same scores (see the module docstring)."""
    if any(f.type == "category" for f in spec.features) or _output_configured(estimator):
        return None
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    names = getattr(first, "feature_names_in_", None)
    if names is None:
        fitted_on_arrays = getattr(first, "n_features_in_", None) == len(spec.features)
        return estimator if fitted_on_arrays and not _nested_fitted_on_frames(vars(first)) else None
    if [str(n) for n in names] != list(spec.feature_names) or _nested_fitted_on_frames(vars(first)):
        return None
    shadow_first = copy.copy(first)
    del shadow_first.feature_names_in_
    if steps:
        shadow: Any = copy.copy(estimator)
        shadow.steps = [(steps[0][0], shadow_first), *steps[1:]]
    else:
        shadow = shadow_first
    method = "predict_proba" if spec.is_classifier else "predict"
    probe = probe_matrix(spec)
    try:
        same = np.array_equal(
            np.asarray(getattr(estimator, method)(probe_frame(spec, probe))),
            np.asarray(getattr(shadow, method)(layout_for(shadow)(probe))),
        )
    except Exception:  # the probe is outside what the model takes: keep the path it was fitted with
        return None
    return shadow if same else None
