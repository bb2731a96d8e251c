"""Loading model artifacts safely: skops with an allow-list, boosters from their own formats, and
pickle/joblib only behind an explicit trust flag (they can run arbitrary code when loaded)."""

from __future__ import annotations

import io
import pickle
from typing import Any

from explain.base import Predictor
from explain.errors import ArtifactError
from explain.predictor import LightGBMPredictor, SklearnPredictor, XGBoostPredictor
from explain.schema import ModelSpec

FORMATS = ("skops", "xgboost-json", "xgboost-ubj", "lightgbm-text", "onnx", "pickle", "joblib")
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.", "scipy.", "xgboost.", "lightgbm.")


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
        "unrecognised artifact format: send skops, XGBoost JSON/UBJ or LightGBM text, or set manifest.format"
    )


def dump_skops(estimator: Any) -> bytes:
    import skops.io

    data: bytes = skops.io.dumps(estimator)
    return data


def _load_skops(data: bytes) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:
        raise ArtifactError(f"not a readable skops file: {exc}") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(f"the skops file contains types that are not trusted: {refused}")
    try:
        return skops.io.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ArtifactError(f"the skops file cannot be loaded: {exc}") from exc


def load_predictor(data: bytes, *, format: str, spec: ModelSpec, trust_pickle: bool = False) -> Predictor:
    """Load an artifact into a Predictor for ``spec``; ArtifactError says what is wrong and how to fix it."""
    if format not in FORMATS:
        raise ArtifactError(f"unknown artifact format {format!r}; known: {', '.join(FORMATS)}")
    if format == "skops":
        return SklearnPredictor(_load_skops(data), spec)
    if format in ("pickle", "joblib"):
        if not trust_pickle:
            raise ArtifactError(
                f"{format} artifacts can run arbitrary code when loaded: set trust_unsafe_pickle to load one"
            )
        try:
            if format == "joblib":
                import joblib

                estimator = joblib.load(io.BytesIO(data))
            else:
                estimator = pickle.loads(data)
        except Exception as exc:
            raise ArtifactError(f"the {format} artifact cannot be loaded: {exc}") from exc
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
