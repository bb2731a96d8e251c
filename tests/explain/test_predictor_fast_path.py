"""The predictor's fast paths give exactly the scores of the estimator called on a DataFrame.

Explainers score coded rows through ``FeatureCoder.scores``: a frame built from cached column arrays, or,
for all-numeric schemas, a float matrix handed to the model without any frame (explain/array_path.py).
Each is compared bit for bit with ``estimator.predict_proba(DataFrame)`` on the frame the slow, obvious
decoding builds, with the columns put in the schema's class order independently of the predictor.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from explain.coding import FeatureCoder
from explain.predictor import SklearnPredictor
from explain.samples import breast_cancer_spec_and_data, credit_spec, make_credit_frame
from explain.schema import Feature, ModelSpec

BATCHES = (1, 2, 7, 100)


def slow_decode(spec: ModelSpec, matrix: np.ndarray) -> pd.DataFrame:
    """The decoding as it was written first: one Series per feature, then category columns re-typed."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
    columns: dict[str, object] = {}
    for i, feature in enumerate(spec.features):
        values = matrix[:, i]
        if feature.type == "category":
            cats = np.asarray(feature.categories, dtype=object)
            columns[feature.name] = cats[np.clip(np.rint(values).astype(int), 0, len(cats) - 1)]
        elif feature.type == "boolean":
            columns[feature.name] = np.rint(values) >= 1
        elif feature.type == "integer":
            columns[feature.name] = np.rint(values).astype(np.int64)
        else:
            columns[feature.name] = values
    frame = pd.DataFrame(columns, columns=spec.feature_names)
    for f in spec.features:
        if f.type == "category":
            frame[f.name] = frame[f.name].astype(object)
    return frame


def expected_scores(estimator: Any, spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    if not spec.is_classifier:
        return np.asarray(estimator.predict(frame), dtype=float)
    classes = [str(c) for c in estimator.classes_]
    return np.asarray(estimator.predict_proba(frame), dtype=float)[:, [classes.index(c) for c in spec.class_labels]]


def perturbed(coder: FeatureCoder, frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Coded rows as explainers make them: real rows, then off-grid numbers and codes out of range."""
    coded = coder.encode(frame)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.4, coded.shape) * np.maximum(np.abs(coded).mean(axis=0), 1.0)
    mask = rng.random(coded.shape) < 0.3
    return np.where(mask, coded + noise, coded)


def assert_paths_equal(predictor: SklearnPredictor, frame: pd.DataFrame, *, seed: int = 0) -> None:
    spec, estimator = predictor.spec, predictor.estimator
    coder = FeatureCoder(spec)
    coded = perturbed(coder, frame, seed)
    for n in BATCHES:
        z = coded[:n]
        reference = slow_decode(spec, z)
        pd.testing.assert_frame_equal(coder.decode(z), reference)
        want = expected_scores(estimator, spec, reference)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "fitted with/without feature names" warning on any path
            from_coded = coder.scores(predictor, z)
            from_frame = predictor.predict_scores(reference)
        assert from_coded.dtype == want.dtype and from_coded.shape == want.shape
        assert np.array_equal(from_coded, want), f"coded rows, batch of {n}"
        assert np.array_equal(from_frame, want), f"DataFrame rows, batch of {n}"


def reversed_labels(spec: ModelSpec) -> ModelSpec:
    return ModelSpec(task=spec.task, features=spec.features, class_labels=tuple(reversed(spec.class_labels)))


@pytest.mark.parametrize("reverse", [False, True])
def test_credit_pipeline_with_categories(credit: Any, reverse: bool) -> None:
    pipeline = credit.predictor.estimator
    spec = reversed_labels(credit_spec()) if reverse else credit_spec()
    predictor = SklearnPredictor(pipeline, spec)
    assert not predictor.accepts_array  # one-hot by column name: only a DataFrame will do
    rows, _ = make_credit_frame(100, seed=5)
    assert_paths_equal(predictor, rows)


@pytest.fixture(scope="module")
def cancer_data() -> tuple[ModelSpec, pd.DataFrame, np.ndarray]:
    return breast_cancer_spec_and_data()


@pytest.mark.parametrize("fitted_on", ["frame", "array"])
@pytest.mark.parametrize("reverse", [False, True])
def test_numeric_gbm_takes_the_array_path(cancer_data: Any, fitted_on: str, reverse: bool) -> None:
    spec, frame, labels = cancer_data
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)
    model.fit(frame if fitted_on == "frame" else frame.to_numpy(), labels)
    predictor = SklearnPredictor(model, reversed_labels(spec) if reverse else spec)
    assert predictor.accepts_array
    assert hasattr(model, "feature_names_in_") == (fitted_on == "frame")  # the original is left as it was
    if fitted_on == "frame":
        assert_paths_equal(predictor, frame.iloc[:100])
    else:  # its native input is the matrix: compare with that (a DataFrame would warn)
        coder = FeatureCoder(predictor.spec)
        for n in BATCHES:
            z = perturbed(coder, frame.iloc[:100], 1)[:n]
            want = expected_scores(model, predictor.spec, pd.DataFrame(z).to_numpy())
            assert np.array_equal(coder.scores(predictor, z), want)


def mixed_numeric() -> tuple[ModelSpec, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 2, n),
            "count": rng.integers(0, 12, n).astype(np.int64),
            "flag": rng.random(n) < 0.4,
        }
    )
    y = np.where(frame["x"] + 0.3 * frame["count"] - 2 * frame["flag"] + rng.normal(0, 1, n) > 1, "yes", "no")
    spec = ModelSpec(
        task="binary",
        class_labels=("yes", "no"),
        features=(
            Feature("x", "number", minimum=-10, maximum=10),
            Feature("count", "integer", minimum=0, maximum=20),
            Feature("flag", "boolean"),
        ),
    )
    return spec, frame, y.astype(object)


def test_integer_and_boolean_features_and_a_numeric_pipeline() -> None:
    spec, frame, y = mixed_numeric()
    gbm = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(frame, y)
    scaled = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(frame, y)
    for model in (gbm, scaled):
        predictor = SklearnPredictor(model, spec)
        assert predictor.accepts_array
        assert_paths_equal(predictor, frame.iloc[:100], seed=2)


def test_regression_array_path() -> None:
    spec, frame, _ = mixed_numeric()
    target = frame["x"] * 2 + frame["count"]
    regression = ModelSpec(task="regression", features=spec.features)
    model = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(frame, target)
    predictor = SklearnPredictor(model, regression)
    assert predictor.accepts_array
    assert_paths_equal(predictor, frame.iloc[:100], seed=4)


def test_column_transformer_by_name_keeps_the_frame_path() -> None:
    """Its sub-estimators were fitted on DataFrames: a matrix would warn, so the frame path stays."""
    spec, frame, y = mixed_numeric()
    prep = ColumnTransformer([("num", StandardScaler(), ["x", "count"]), ("flag", "passthrough", ["flag"])])
    model = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(frame, y)
    predictor = SklearnPredictor(model, spec)
    assert not predictor.accepts_array
    assert_paths_equal(predictor, frame.iloc[:100], seed=5)


def test_pandas_output_keeps_the_frame_path() -> None:
    spec, frame, y = mixed_numeric()
    scaler = StandardScaler().set_output(transform="pandas")
    model = Pipeline([("scale", scaler), ("model", LogisticRegression())]).fit(frame, y)
    predictor = SklearnPredictor(model, spec)
    assert not predictor.accepts_array
    assert_paths_equal(predictor, frame.iloc[:100], seed=6)


def test_columns_in_another_order_keep_the_frame_path() -> None:
    spec, frame, y = mixed_numeric()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(frame[["flag", "x", "count"]], y)
    assert not SklearnPredictor(model, spec).accepts_array


TREE_FAMILY = [
    "GradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "HistGradientBoostingClassifier",
    "DecisionTreeClassifier",
]


@pytest.mark.parametrize("name", TREE_FAMILY)
def test_tree_models_take_row_major_matrices_with_the_same_scores(cancer_data: Any, name: str) -> None:
    """No column-major copy for models that only compare values: scores stay bit for bit a DataFrame's."""
    import sklearn.ensemble
    import sklearn.tree

    from explain.array_path import layout_for, row_layout

    spec, frame, labels = cancer_data
    kind = getattr(sklearn.ensemble, name, None) or getattr(sklearn.tree, name)
    model = kind(random_state=0, **({"n_estimators": 20} if "Forest" in name or "Trees" in name else {}))
    model.fit(frame, labels)
    predictor = SklearnPredictor(model, spec)
    assert predictor.accepts_array and layout_for(predictor._array_estimator) is row_layout
    assert_paths_equal(predictor, frame.iloc[:100])


def test_models_that_multiply_and_subclasses_keep_the_column_major_copy(cancer_data: Any) -> None:
    from explain.array_path import frame_layout, layout_for

    spec, frame, labels = cancer_data

    class Tweaked(GradientBoostingClassifier):
        pass

    assert layout_for(LogisticRegression()) is frame_layout
    assert layout_for(Pipeline([("m", GradientBoostingClassifier())])) is frame_layout
    assert layout_for(Tweaked()) is frame_layout
    model = LogisticRegression(max_iter=5000).fit(frame, labels)
    predictor = SklearnPredictor(model, spec)
    assert predictor.accepts_array and layout_for(predictor._array_estimator) is frame_layout
    assert_paths_equal(predictor, frame.iloc[:100])
