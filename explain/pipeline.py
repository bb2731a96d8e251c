"""What a scikit-learn pipeline does to each raw feature, so exact SHAP can run on its final estimator.

Tree and linear SHAP are exact on the matrix the final estimator sees. They are exact per *raw* feature
when every column of that matrix is a function of one raw feature only (a scaler, an imputer, a one-hot
or ordinal encoder, a ColumnTransformer of those, a FunctionTransformer that declares one-to-one feature
names, nested pipelines): then "raw feature j comes from x" is "the columns of j come from x", and the
raw-feature game is the transformed game played by groups of columns. ``trace`` follows the steps and
returns, per transformed column, the raw feature it came from, or says which step breaks the mapping.

For a linear final estimator, steps after that point may mix columns if they are affine (PCA, another
scaler, ...): the affine maps are composed into the estimator's coefficients, measured on unit vectors
and checked on the background, so the composition is exact or refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Transformers whose output column i depends on input column i only (same width, same order).
ELEMENTWISE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "PowerTransformer",
    "QuantileTransformer",
    "OrdinalEncoder",
    "Binarizer",
    "TargetEncoder",
}


class NotSeparableError(Exception):
    """A step's output columns cannot be traced back to single raw features; the message names the step."""


@dataclass(frozen=True, slots=True)
class Decomposed:
    """A pipeline as (raw rows -> matrix of the separable part) + the rest.

    ``groups[c]`` is the raw feature index of column ``c`` of ``transform(rows)``. ``affine`` is (A, c) for
    affine steps between that matrix and the final estimator (identity when None): the estimator sees
    ``transform(rows) @ A.T + c``.
    """

    steps: tuple[Any, ...]  # the separable preprocessing steps, applied in order
    final: Any
    groups: np.ndarray
    affine_steps: tuple[Any, ...] = ()

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        data: Any = rows
        for step in self.steps:
            data = step.transform(data)
        return _dense(data) if self.steps else rows.to_numpy(dtype=float)

    def to_final(self, matrix: np.ndarray) -> np.ndarray:
        """From the separable matrix to what the final estimator takes."""
        data: Any = matrix
        for step in self.affine_steps:
            data = step.transform(data)
        return _dense(data)


def decompose(estimator: Any, raw_names: list[str]) -> Decomposed:
    """Split ``estimator`` into separable preprocessing, affine steps and the final estimator.

    Raises NotSeparableError naming the first step whose columns do not map back to raw features.
    """
    steps = _flatten(estimator)
    final = steps[-1]
    prefix = steps[:-1]
    groups = np.arange(len(raw_names))
    names: list[str] | None = list(raw_names)
    done: list[Any] = []
    for i, step in enumerate(prefix):
        try:
            groups, names = trace(step, groups, names)
        except NotSeparableError:
            return Decomposed(tuple(done), final, groups, tuple(prefix[i:]))
        done.append(step)
    return Decomposed(tuple(done), final, groups)


def _flatten(estimator: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        out: list[Any] = []
        for _, step in estimator.steps:
            if step is None or step == "passthrough":
                continue
            out.extend(_flatten(step))
        return out
    return [estimator]


def trace(step: Any, groups: np.ndarray, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """The raw feature of each output column of ``step`` given those of its input columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import SelectorMixin
    from sklearn.pipeline import Pipeline

    kind = type(step).__name__
    module = type(step).__module__
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return groups, names
    if isinstance(step, Pipeline):
        for inner in _flatten(step):
            groups, names = trace(inner, groups, names)
        return groups, names
    if isinstance(step, ColumnTransformer):
        return _trace_columns(step, groups, names)
    if not module.startswith("sklearn."):
        raise NotSeparableError(f"{kind} is not a scikit-learn transformer whose columns are known")
    if isinstance(step, SelectorMixin):
        keep = step.get_support(indices=True)
        return groups[keep], [names[k] for k in keep] if names else None
    if kind in ELEMENTWISE:
        return groups, _out_names(step, names)
    if kind == "OneHotEncoder":
        counts = list(getattr(step, "_n_features_outs", [len(c) for c in step.categories_]))
        return np.repeat(groups, counts), _out_names(step, names)
    if kind == "KBinsDiscretizer":
        counts = [int(n) for n in step.n_bins_] if step.encode != "ordinal" else [1] * len(groups)
        return np.repeat(groups, counts), _out_names(step, names)
    if kind == "SimpleImputer":
        statistics = np.asarray(step.statistics_, dtype=object)
        kept = [
            j
            for j in range(len(groups))
            if getattr(step, "keep_empty_features", False) or not _is_missing(statistics[j])
        ]
        out = list(groups[kept])
        if getattr(step, "indicator_", None) is not None:
            out.extend(groups[step.indicator_.features_])
        return np.asarray(out, dtype=int), _out_names(step, names)
    if kind == "MissingIndicator":
        return groups[step.features_], _out_names(step, names)
    if kind == "FunctionTransformer":
        return _trace_function(step, groups, names)
    raise NotSeparableError(f"{kind} mixes or re-orders columns in a way that cannot be traced to raw features")


def _is_missing(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except TypeError:
        return value is None


def _out_names(step: Any, names: list[str] | None) -> list[str] | None:
    try:
        return [str(n) for n in step.get_feature_names_out()]
    except Exception:
        return None


def _trace_function(step: Any, groups: np.ndarray, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """A FunctionTransformer is traceable only when it declares its output names, each an input's name
    (``feature_names_out="one-to-one"`` or a callable naming inputs): the declaration is the contract."""
    if step.feature_names_out is None:
        raise NotSeparableError(
            "FunctionTransformer without declared feature_names_out: which raw feature each output comes "
            "from is unknown; declare feature_names_out='one-to-one' (or a callable naming input columns)"
        )
    fitted_names = getattr(step, "feature_names_in_", None)
    # fitted on an array: scikit-learn names the inputs x0, x1, ... and so do we
    inputs = [str(n) for n in fitted_names] if fitted_names is not None else [f"x{i}" for i in range(len(groups))]
    if len(inputs) != len(groups):
        raise NotSeparableError("FunctionTransformer input names do not match its input columns")
    outputs = [str(n) for n in step.get_feature_names_out()]
    missing = [n for n in outputs if n not in inputs]
    if missing:
        raise NotSeparableError(f"FunctionTransformer outputs {missing} are not named after one input column")
    return np.asarray([groups[inputs.index(n)] for n in outputs], dtype=int), outputs


def _trace_columns(step: Any, groups: np.ndarray, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    inputs = [str(n) for n in getattr(step, "feature_names_in_", names or [])]
    width = sum(s.stop - s.start for s in step.output_indices_.values())
    out = np.full(width, -1, dtype=int)
    for name, transformer, columns in step.transformers_:
        piece = step.output_indices_[name]
        if transformer == "drop" or piece.stop == piece.start:
            continue
        selected = _column_positions(columns, inputs, len(groups))
        sub_groups = groups[selected]
        sub_names = [inputs[k] for k in selected] if inputs else None
        if transformer == "passthrough":
            traced = sub_groups
        else:
            traced, _ = trace(transformer, sub_groups, sub_names)
        if len(traced) != piece.stop - piece.start:
            raise NotSeparableError(f"ColumnTransformer part {name!r} produced an unexpected number of columns")
        out[piece] = traced
    if (out < 0).any():
        raise NotSeparableError("ColumnTransformer output columns could not all be traced")
    return out, _out_names(step, names)


def _column_positions(columns: Any, inputs: list[str], n: int) -> list[int]:
    if isinstance(columns, slice):
        return list(range(n))[columns]
    if callable(columns):
        raise NotSeparableError("ColumnTransformer with callable column selectors is not traced")
    selection = np.atleast_1d(np.asarray(columns))
    if selection.dtype == bool:
        return [int(k) for k in np.flatnonzero(selection)]
    return [int(c) if isinstance(c, (int, np.integer)) else inputs.index(str(c)) for c in selection]


def compose_affine(steps: tuple[Any, ...], background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, c) with ``steps(X) == X @ A.T + c``, measured on unit vectors and checked on ``background``.

    Raises NotSeparableError when the steps are not affine (checked to 1e-9 relative on the background).
    """
    n = background.shape[1]
    probe = np.vstack([np.zeros(n), np.eye(n)])
    out = _apply(steps, probe)
    c = out[0]
    a = (out[1:] - c).T
    predicted = background @ a.T + c
    actual = _apply(steps, background)
    scale = max(1.0, float(np.max(np.abs(actual))) if actual.size else 1.0)
    if actual.shape != predicted.shape or not np.allclose(actual, predicted, rtol=0, atol=1e-9 * scale):
        names = ", ".join(type(s).__name__ for s in steps)
        raise NotSeparableError(f"the steps {names} between the encoders and the linear model are not affine")
    return a, c


def _apply(steps: tuple[Any, ...], matrix: np.ndarray) -> np.ndarray:
    data: Any = matrix
    for step in steps:
        data = step.transform(data)
    return _dense(data)


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)
