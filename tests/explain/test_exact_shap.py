"""Tree and linear SHAP through scikit-learn pipelines against an independent exact computation.

The reference enumerates every coalition S of raw features and takes v(S) = mean over the background of
the model's output (in the space the explanation declares) on rows with S from x and the rest from the
background row: the interventional game's Shapley values, exactly, by their definition. It calls only the
fitted pipeline, never our code.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from explain.artifacts import dump_skops, load_predictor
from explain.base import Background, Target
from explain.errors import UnsupportedModelError
from explain.registry import check_request, create_explainer
from explain.schema import Feature, ModelSpec

TOLERANCE = 1e-9


def exact_shapley(output, x: pd.DataFrame, background: pd.DataFrame) -> tuple[np.ndarray, float]:
    """(phi per raw feature, base) of v(S) = mean_b output(x_S, b_rest), by enumerating coalitions."""
    names = list(x.columns)
    n = len(names)
    masks = list(itertools.product([False, True], repeat=n))
    take = np.array(masks, dtype=bool)  # (coalitions, features)
    columns = {}
    for j, name in enumerate(names):
        mine = np.asarray(x[name].to_numpy()[0], dtype=object)
        theirs = background[name].to_numpy(dtype=object)
        mixed = np.where(take[:, j][:, None], mine, theirs[None, :]).ravel()
        columns[name] = pd.Series(mixed, dtype=background[name].dtype)
    hybrids = pd.DataFrame(columns)
    values = np.asarray(output(hybrids), dtype=float).reshape(len(masks), -1)
    v = dict(zip(masks, values.mean(axis=1), strict=True))
    phi = np.zeros(n)
    for mask, value in v.items():
        size = sum(mask)
        for j in range(n):
            if mask[j]:
                continue
            with_j = tuple(True if k == j else m for k, m in enumerate(mask))
            phi[j] += math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n) * (v[with_j] - value)
    return phi, float(v[tuple([False] * n)])


def space_output(pipeline, space: str, est_index: int):
    """The model's own output in the declared space, for the estimator's class ``est_index``."""

    def output(frame: pd.DataFrame) -> np.ndarray:
        if space == "probability":
            return pipeline.predict_proba(frame)[:, est_index]
        if space == "raw":
            return pipeline.predict(frame)
        margin = pipeline.decision_function(frame)
        if margin.ndim == 1:
            return margin if est_index == 1 else -margin
        return margin[:, est_index]

    return output


def mixed_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": np.round(rng.lognormal(10.5, 0.4, n), 2),
            "ratio": np.round(rng.uniform(0, 1.5, n), 3),
            "years": rng.integers(0, 30, n).astype(np.int64),
            "purpose": rng.choice(["car", "home", "edu"], n).astype(object),
            "housing": rng.choice(["rent", "own", "mortgage", "other"], n).astype(object),
        }
    )


def mixed_spec(task: str, labels: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(
        task=task,  # type: ignore[arg-type]
        class_labels=labels,
        features=(
            Feature("income", "number"),
            Feature("ratio", "number"),
            Feature("years", "integer"),
            Feature("purpose", "category", categories=("car", "home", "edu")),
            Feature("housing", "category", categories=("rent", "own", "mortgage", "other")),
        ),
    )


def encoder(model, *, nested: bool = False):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    if nested:  # imputer + declared one-to-one log + scaler, nested; ordinal encoding for one category
        numeric = make_pipeline(
            SimpleImputer(strategy="median"),
            FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
            StandardScaler(),
        )
        prep = ColumnTransformer(
            [
                ("num", numeric, ["income", "ratio", "years"]),
                ("onehot", OneHotEncoder(drop="first"), ["purpose"]),
                ("ord", OrdinalEncoder(), ["housing"]),
            ]
        )
    else:
        prep = ColumnTransformer(
            [
                ("num", StandardScaler(), ["income", "ratio", "years"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["purpose", "housing"]),
            ]
        )
    return Pipeline([("prep", prep), ("model", model)])


def binary_labels(frame: pd.DataFrame) -> np.ndarray:
    score = np.log(frame["income"]) - 10.5 - frame["ratio"] + 0.03 * frame["years"] + (frame["purpose"] == "edu") * 0.5
    return np.where(score + (frame["housing"] == "own") * 0.4 > -0.2, "yes", "no").astype(object)


def multiclass_labels(frame: pd.DataFrame) -> np.ndarray:
    score = np.log(frame["income"]) - 10.5 - frame["ratio"] + (frame["housing"] == "own") * 0.6
    return np.select([score < -0.6, score < 0.1], ["low", "mid"], "high").astype(object)


def fitted(pipeline, spec: ModelSpec, y) -> tuple:
    train = mixed_data(400, seed=1)
    pipeline.fit(train, y(train) if callable(y) else y)
    predictor = load_predictor(dump_skops(pipeline), format="skops", spec=spec)
    background = Background(mixed_data(12, seed=2), "bg")
    return pipeline, predictor, background


def check_exact(pipeline, predictor, background, *, backend: str, space: str, targets=None) -> None:
    rows = mixed_data(3, seed=3)
    explainer = create_explainer("shap", predictor=predictor, background=background)
    results = explainer.explain(rows, seeds=[1, 2, 3], targets=targets)
    for i, result in enumerate(results):
        body = result.body
        assert result.backend == backend
        assert body.output_space == space and body.exact is True and body.approximation is None
        est = list(getattr(pipeline, "classes_", [])).index(result.target) if result.target != "value" else 0
        phi, base = exact_shapley(space_output(pipeline, space, est), rows.iloc[[i]], background.frame)
        ours = np.array([body.values[name] for name in predictor.spec.feature_names])
        assert np.max(np.abs(ours - phi)) < TOLERANCE, (ours, phi)
        assert abs(body.base_value - base) < TOLERANCE
        assert abs(body.output_value - space_output(pipeline, space, est)(rows.iloc[[i]])[0]) < TOLERANCE
        assert result.quality["additivity_error"] < TOLERANCE


@pytest.mark.parametrize("nested", [False, True])
def test_binary_tree_and_linear_through_encoders(nested):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    spec = mixed_spec("binary", ("no", "yes"))
    gbm = fitted(
        encoder(GradientBoostingClassifier(n_estimators=25, max_depth=3, random_state=0), nested=nested),
        spec,
        binary_labels,
    )
    check_exact(*gbm, backend="rationale.GroupTreeSHAP", space="log_odds")
    check_exact(*gbm, backend="rationale.GroupTreeSHAP", space="log_odds", targets=[Target(0)] * 3)
    forest = fitted(
        encoder(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), nested=nested),
        spec,
        binary_labels,
    )
    check_exact(*forest, backend="rationale.GroupTreeSHAP", space="probability")
    linear = fitted(encoder(LogisticRegression(max_iter=2000), nested=nested), spec, binary_labels)
    check_exact(*linear, backend="shap.LinearExplainer", space="log_odds", targets=[Target(0)] * 3)


def test_multiclass_tree_and_linear_through_encoders():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    spec = mixed_spec("multiclass", ("high", "low", "mid"))
    gbm = fitted(
        encoder(GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0)), spec, multiclass_labels
    )
    check_exact(*gbm, backend="rationale.GroupTreeSHAP", space="softmax_logit")
    check_exact(*gbm, backend="rationale.GroupTreeSHAP", space="softmax_logit", targets=[Target(1)] * 3)
    linear = fitted(encoder(LogisticRegression(max_iter=2000)), spec, multiclass_labels)
    check_exact(*linear, backend="shap.LinearExplainer", space="softmax_logit", targets=[Target(2)] * 3)


def test_regression_tree_and_linear_through_encoders():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge

    spec = mixed_spec("regression")

    def target(frame):
        return np.log(frame["income"]) * 2 - frame["ratio"] + (frame["housing"] == "own") * 0.7

    for model, backend in (
        (GradientBoostingRegressor(n_estimators=20, random_state=0), "rationale.GroupTreeSHAP"),
        (RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0), "rationale.GroupTreeSHAP"),
        (Ridge(alpha=0.5), "shap.LinearExplainer"),
    ):
        for nested in (False, True):
            check_exact(*fitted(encoder(model, nested=nested), spec, target), backend=backend, space="raw")


def test_wine_pipelines_of_the_issue_are_exact():
    """make_pipeline(StandardScaler(), LogisticRegression()) and (..., GradientBoostingClassifier()) on wine,
    3 classes, 13 features: every coalition enumerated."""
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wine = load_wine(as_frame=True)
    frame = wine.data.rename(columns=lambda c: c.replace("/", "_"))
    labels = np.array(["a", "b", "c"], dtype=object)[wine.target]
    spec = ModelSpec(
        task="multiclass", class_labels=("a", "b", "c"), features=tuple(Feature(c, "number") for c in frame)
    )
    for model, backend in (
        (LogisticRegression(max_iter=5000), "shap.LinearExplainer"),
        (GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0), "rationale.GroupTreeSHAP"),
    ):
        pipeline = make_pipeline(StandardScaler(), model).fit(frame, labels)
        predictor = load_predictor(dump_skops(pipeline), format="skops", spec=spec)
        background = Background(frame.iloc[::30].reset_index(drop=True), "wine-bg")
        rows = frame.iloc[[5, 80]].reset_index(drop=True)
        results = create_explainer("shap", predictor=predictor, background=background).explain(rows, seeds=[1, 2])
        for i, result in enumerate(results):
            assert result.backend == backend and result.body.output_space == "softmax_logit"
            est = list(pipeline.classes_).index(result.target)
            phi, _ = exact_shapley(space_output(pipeline, "softmax_logit", est), rows.iloc[[i]], background.frame)
            ours = np.array([result.body.values[c] for c in frame.columns])
            assert np.max(np.abs(ours - phi)) < TOLERANCE


def test_affine_steps_are_composed_into_the_linear_model():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    spec = mixed_spec("binary", ("no", "yes"))
    inner = encoder(LogisticRegression(max_iter=2000))
    pipeline = Pipeline(
        [
            ("prep", inner.steps[0][1]),
            ("pca", PCA(n_components=6)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    )
    pipeline, predictor, background = fitted(pipeline, spec, binary_labels)
    check_exact(pipeline, predictor, background, backend="shap.LinearExplainer", space="log_odds")


def test_explicit_algorithm_that_cannot_apply_is_refused_and_auto_falls_back_visibly():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    spec = mixed_spec("binary", ("no", "yes"))
    _, gbm, background = fitted(
        encoder(GradientBoostingClassifier(n_estimators=5, random_state=0)), spec, binary_labels
    )
    with pytest.raises(UnsupportedModelError, match="linear explainer needs a linear model"):
        check_request("shap", predictor=gbm, background=background, params={"algorithm": "linear"})
    with pytest.raises(UnsupportedModelError, match="must be one of"):
        check_request("shap", predictor=gbm, background=background, params={"algorithm": "exact"})
    check_request("shap", predictor=gbm, background=background, params={"algorithm": "tree"})

    poly = encoder(GradientBoostingClassifier(n_estimators=5, random_state=0))
    poly = Pipeline([*poly.steps[:1], ("poly", PolynomialFeatures(2)), poly.steps[1]])
    _, poly_predictor, _ = fitted(poly, spec, binary_labels)
    with pytest.raises(UnsupportedModelError, match="PolynomialFeatures"):
        check_request("shap", predictor=poly_predictor, background=background, params={"algorithm": "tree"})

    _, knn, _ = fitted(encoder(KNeighborsClassifier(5)), spec, binary_labels)
    with pytest.raises(UnsupportedModelError, match="tree ensemble; the final estimator is KNeighborsClassifier"):
        check_request("shap", predictor=knn, background=background, params={"algorithm": "tree"})
    [result] = create_explainer(
        "shap", predictor=knn, background=background, params={"max_evals": 30, "background_size": 6}
    ).explain(mixed_data(1, seed=5), seeds=[3])
    assert result.backend == "shap.PermutationExplainer"
    assert result.body.exact is False and result.body.output_space == "probability"
    assert "KNeighborsClassifier" in result.body.approximation and "no error bound" in result.body.approximation
    assert result.parameters["requested_algorithm"] == "auto" and result.parameters["fallback_reason"]
    _, lr, _ = fitted(encoder(LogisticRegression(max_iter=500)), spec, binary_labels)
    with pytest.raises(UnsupportedModelError, match="tree ensemble; the final estimator is LogisticRegression"):
        check_request("shap", predictor=lr, background=background, params={"algorithm": "tree"})


def _fitted_regression(estimator) -> tuple:
    """A tree regressor on the mixed data set, its predictor and background."""
    _, predictor, background = fitted(
        encoder(estimator),
        mixed_spec("regression"),
        lambda f: np.log(f["income"]) - f["ratio"] + (f["purpose"] == "edu"),
    )
    return predictor, background


def test_counting_background_patterns_gives_the_row_by_row_sums(monkeypatch):
    """The fast path (background rows counted by pattern) against the plain one, on deeper trees too."""
    from sklearn.ensemble import RandomForestRegressor

    import explain.tree_shap as tree_shap

    predictor, background = _fitted_regression(RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0))
    rows = mixed_data(4, seed=9)
    explainer = create_explainer("shap", predictor=predictor, background=background)
    fast = explainer.explain(rows, seeds=[1, 2, 3, 4])
    monkeypatch.setattr(tree_shap, "PATTERN_DEPTH", 0)
    plain = explainer.explain(rows, seeds=[1, 2, 3, 4])
    for a, b in zip(fast, plain, strict=True):
        assert a.body.values == pytest.approx(b.body.values, abs=1e-12)
        assert a.body.base_value == pytest.approx(b.body.base_value, abs=1e-12)


def test_the_background_side_is_reused_only_for_the_same_trees_and_background():
    """Batches reuse what depends on the background alone (computed once per process); a background that
    differs in one value, or other trees, must never be served another's."""
    from sklearn.ensemble import GradientBoostingRegressor

    import explain.tree_shap as tree_shap

    predictor, background = _fitted_regression(GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0))
    rows = mixed_data(3, seed=4)

    def explain(bg: Background) -> list[tuple[list[float], float]]:
        results = create_explainer("shap", predictor=predictor, background=bg).explain(rows, seeds=[1, 2, 3])
        return [(list(r.body.values.values()), r.body.base_value) for r in results]

    shifted_frame = background.frame.copy()
    shifted_frame.iloc[0, shifted_frame.columns.get_loc("income")] *= 3
    shifted = Background(shifted_frame, sha256="shifted")
    first, other = explain(background), explain(shifted)
    assert first != other  # the changed row moved the base value
    again = explain(background)  # from the cache
    tree_shap._SIDES.clear()
    assert again == first == explain(background)  # the cache changes nothing
    assert explain(shifted) == other
    side = next(iter(tree_shap._SIDES.values()))
    assert not side.ok_b.flags.writeable  # shared between batches: nobody may write to it
