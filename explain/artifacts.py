"""Loading model artifacts safely: skops with an allow-list of exact type names, boosters from their own
formats, and pickle/joblib only when the caller says so (they can run arbitrary code when loaded; the API
allows it only when the operator set RATIONALE_ALLOW_PICKLE and the caller is admin).

Every refusal is an ArtifactError whose ``path`` names the field at fault and whose ``details`` say what the
artifact actually has (its untrusted types, its feature names, its classes), so a data scientist can fix
the manifest or the model without guessing.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterable
from typing import Any

from explain.base import Predictor
from explain.errors import ArtifactError
from explain.predictor import LightGBMPredictor, SklearnPredictor, XGBoostPredictor
from explain.schema import ModelSpec

FORMATS = ("skops", "xgboost-json", "xgboost-ubj", "lightgbm-text", "onnx", "pickle", "joblib")
# Types a skops file may hold beyond skops's own default-trusted set, by exact name: never a module prefix,
# since a prefix such as ``builtins.`` admits ``builtins.exec`` and ``builtins.eval`` (callable through a
# FunctionTransformer or functools.partial). Collected from the estimators scikit-learn, XGBoost and
# LightGBM users ship; operators add their own with RATIONALE_SKOPS_TRUSTED_TYPES.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "numpy.dtype",  # an encoder's ``dtype=np.float64`` parameter: the type itself, nothing is called
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.tree._tree.Tree",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
    }
)


def detect_format(data: bytes) -> str:
    """Guess the format from the bytes; raises ArtifactError when no known format matches."""
    head = data[:64]
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    if head.lstrip().startswith(b'{"learner"') or (head.startswith(b"{") and b'"learner"' in data[:2000]):
        return "xgboost-json"
    if head.startswith(b"{") and b"learner" in data[:200]:
        return "xgboost-ubj"
    if head.startswith(b"tree\n") or b"\nversion=v" in data[:200]:
        return "lightgbm-text"
    if head[:1] == b"\x80":
        return "pickle"
    raise ArtifactError(
        "unrecognised artifact format: send skops, XGBoost JSON/UBJ or LightGBM text, or set manifest.format",
        details={"size_bytes": len(data), "head_hex": data[:16].hex()},
    )


def dump_skops(estimator: Any) -> bytes:
    import skops.io

    data: bytes = skops.io.dumps(estimator)
    return data


def _zip_members(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()[:20]
    except (zipfile.BadZipFile, ValueError, OSError):
        return []


def _load_skops(data: bytes, *, trusted_types: Iterable[str] = ()) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:
        raise ArtifactError(
            f"not a readable skops file: {exc}",
            details={"size_bytes": len(data), "zip_members": _zip_members(data)},
        ) from exc
    allowed = TRUSTED_TYPES | frozenset(trusted_types)
    refused = sorted(t for t in untrusted if t not in allowed)
    if refused:
        raise ArtifactError(
            f"the skops file holds types that are not trusted: {', '.join(refused)}; only exact type names "
            "on the allow-list load (an operator may add one with RATIONALE_SKOPS_TRUSTED_TYPES)",
            details={"untrusted_types": refused},
        )
    try:
        return skops.io.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ArtifactError(f"the skops file cannot be loaded: {exc}") from exc


def _feature_names(estimator: Any) -> list[str] | None:
    """The columns a scikit-learn estimator was fitted on (``feature_names_in_``), when it knows them."""
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def check_fits(estimator: Any, spec: ModelSpec) -> None:
    """Refuse an artifact that disagrees with its manifest, naming the manifest path (relative to the
    manifest: ``features[3].name``, ``features``, ``class_labels``, ``task``) and what the artifact has."""
    names = _feature_names(estimator)
    if names is not None:
        known = set(names)
        for i, feature in enumerate(spec.features):
            if feature.name not in known:
                raise ArtifactError(
                    f"feature {feature.name!r} is not one the artifact was trained on",
                    path=f"features[{i}].name",
                    details={"artifact_features": names},
                )
        declared = set(spec.feature_names)
        missing = [n for n in names if n not in declared]
        if missing:
            raise ArtifactError(
                f"the artifact needs features the manifest does not declare: {', '.join(missing)}",
                path="features",
                details={"missing": missing, "artifact_features": names},
            )
    classes = getattr(estimator, "classes_", None)
    is_classifier = classes is not None or hasattr(estimator, "predict_proba")
    if spec.task == "regression" and is_classifier:
        raise ArtifactError(
            "the manifest declares a regression but the artifact is a classifier",
            path="task",
            details={
                "artifact_task": "classification",
                "artifact_classes": [str(c) for c in (classes if classes is not None else [])],
            },
        )
    if spec.is_classifier and not is_classifier and hasattr(estimator, "predict"):
        raise ArtifactError(
            f"the manifest declares a {spec.task} classifier but the artifact is a regressor",
            path="task",
            details={"artifact_task": "regression"},
        )
    if classes is not None and spec.is_classifier:
        artifact_classes = [str(c) for c in classes]
        if sorted(artifact_classes) != sorted(spec.class_labels):
            raise ArtifactError(
                f"the artifact's classes {artifact_classes} are not the manifest's class_labels "
                f"{list(spec.class_labels)}",
                path="class_labels",
                details={"artifact_classes": artifact_classes},
            )


def load_predictor(
    data: bytes,
    *,
    format: str,
    spec: ModelSpec,
    trust_pickle: bool = False,
    trusted_types: Iterable[str] = (),
) -> Predictor:
    """Load an artifact into a Predictor for ``spec``; ArtifactError says what is wrong and how to fix it.

    ``trust_pickle`` lets pickle/joblib load (arbitrary code: the caller decides who may); ``trusted_types``
    adds exact type names to the skops allow-list."""
    if format not in FORMATS:
        raise ArtifactError(f"unknown artifact format {format!r}; known: {', '.join(FORMATS)}")
    if format == "skops":
        estimator = _load_skops(data, trusted_types=trusted_types)
        check_fits(estimator, spec)
        return SklearnPredictor(estimator, spec)
    if format in ("pickle", "joblib"):
        if not trust_pickle:
            raise ArtifactError(
                f"{format} artifacts can run arbitrary code when loaded: refused unless the operator sets "
                "RATIONALE_ALLOW_PICKLE=true and an admin uploads it; use skops instead"
            )
        try:
            if format == "joblib":
                import joblib

                estimator = joblib.load(io.BytesIO(data))
            else:
                estimator = pickle.loads(data)
        except Exception as exc:
            raise ArtifactError(f"the {format} artifact cannot be loaded: {exc}") from exc
        check_fits(estimator, spec)
        return SklearnPredictor(estimator, spec, format=format)
    if format in ("xgboost-json", "xgboost-ubj"):
        import xgboost

        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(data))
        except Exception as exc:
            raise ArtifactError(f"not a readable XGBoost model: {exc}") from exc
        return XGBoostPredictor(booster, spec, format=format)
    if format == "lightgbm-text":
        import lightgbm

        try:
            lgbm = lightgbm.Booster(model_str=data.decode("utf-8"))
        except Exception as exc:
            raise ArtifactError(f"not a readable LightGBM model: {exc}") from exc
        return LightGBMPredictor(lgbm, spec)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ArtifactError("ONNX artifacts need the onnxruntime package, which is not installed") from exc
    from explain.predictor import OnnxPredictor

    return OnnxPredictor(data, spec)
