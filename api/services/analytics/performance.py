"""Outcomes vs predictions by version and time bucket, with an estimate for windows whose outcomes are late.

Realised figures use the decisions that have an outcome. The estimate is confidence-based performance
estimation (NannyML's CBPE): if the model's scores are calibrated, a decision predicted with confidence p is
right with probability p, so the expected accuracy of a window is the mean confidence, and the expected
confusion matrix (hence precision, recall and ROC AUC) follows from the positive-class scores. It is
computed over every decision of the bucket, with or without outcome, and shown next to the realised
figure once outcomes arrive; the calibration table and expected calibration error say how far to trust it.
Rows are streamed from the database in chunks and reduced per (version, bucket).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.scope import load_scope
from api.services.analytics.stats import finite
from storage.analytics import AnalyticsQueries, Bucket

CLASSIFICATION_COLUMNS = ("version_id", "bucket", "predicted", "score", "scores", "outcome")


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    lower: float
    upper: float
    decisions: int
    mean_predicted: float | None
    observed: float | None


@dataclass(frozen=True, slots=True)
class Realised:
    """From the decisions with an outcome (classifiers: accuracy...; regression: mae, rmse, bias)."""

    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    roc_auc: float | None = None
    brier: float | None = None
    expected_calibration_error: float | None = None
    calibration: list[CalibrationBin] | None = None
    mae: float | None = None
    rmse: float | None = None
    bias: float | None = None  # mean(prediction - outcome)


@dataclass(frozen=True, slots=True)
class Estimated:
    """CBPE from the recorded scores, over every decision of the bucket."""

    accuracy: float | None
    precision: float | None = None
    recall: float | None = None
    roc_auc: float | None = None


@dataclass(frozen=True, slots=True)
class PerformanceRow:
    version: str
    bucket: str
    decisions: int
    with_outcome: int
    missing_outcomes: int
    realised: Realised | None
    estimated: Estimated | None


@dataclass(frozen=True, slots=True)
class Performance:
    model: str
    task: str
    positive_class: str | None
    bucket: Bucket
    rows: list[PerformanceRow]


def compute_performance(
    services: Services,
    name: str,
    *,
    versions: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Bucket = "week",
    calibration_bins: int = 10,
) -> Performance:
    scope = load_scope(services, name)
    window = scope.window(versions, since, until)
    regression = scope.task == "regression"
    positive = scope.positive_class
    if not regression and scope.task == "binary" and positive is None:
        raise InvalidRequestError("the model names no class labels", field="name")
    names = ("version_id", "bucket", "predicted", "outcome") if regression else CLASSIFICATION_COLUMNS
    parts: list[pd.DataFrame] = []
    with services.db.unit_of_work(write=False) as uow:
        queries = AnalyticsQueries(uow.session)
        chunks = (
            queries.regression_rows(window, unit=bucket)
            if regression
            else queries.classification_rows(
                window, positive=positive or "", unit=bucket, scores=scope.task == "multiclass"
            )
        )
        for chunk in chunks:
            if chunk:
                parts.append(pd.DataFrame(dict(zip(names, chunk, strict=True))))
    rows = []
    if parts:
        frame = pd.concat(parts, ignore_index=True)
        del parts
        for (version_id, label), group in frame.groupby(["version_id", "bucket"], sort=True):
            version = scope.by_id(int(str(version_id))).version
            if regression:
                rows.append(_regression_row(version, str(label), group))
            elif scope.task == "binary":
                rows.append(_binary_row(version, str(label), group, positive or "", calibration_bins))
            else:
                rows.append(_multiclass_row(version, str(label), group, calibration_bins))
    return Performance(model=name, task=scope.task, positive_class=positive, bucket=bucket, rows=rows)


def _floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)


def _regression_row(version: str, bucket: str, group: pd.DataFrame) -> PerformanceRow:
    predicted, outcome = _floats(group["predicted"]), _floats(group["outcome"])
    has = ~np.isnan(outcome)
    realised = None
    if has.any():
        error = predicted[has] - outcome[has]
        realised = Realised(
            mae=finite(np.mean(np.abs(error))),
            rmse=finite(np.sqrt(np.mean(error**2))),
            bias=finite(np.mean(error)),
        )
    n, known = len(group), int(has.sum())
    return PerformanceRow(version, bucket, n, known, n - known, realised, None)


def _binary_row(version: str, bucket: str, group: pd.DataFrame, positive: str, bins: int) -> PerformanceRow:
    predicted_pos = (group["predicted"] == positive).to_numpy(dtype=bool)
    score = _floats(group["score"])
    has = group["outcome"].notna().to_numpy(dtype=bool)
    actual_pos = (group["outcome"] == positive).to_numpy(dtype=bool)
    confidence = np.where(predicted_pos, score, 1 - score)
    estimated = Estimated(
        accuracy=finite(np.nanmean(confidence)) if len(score) else None,
        precision=_ratio(np.nansum(score[predicted_pos]), np.sum(predicted_pos)),
        recall=_ratio(np.nansum(score[predicted_pos]), np.nansum(score)),
        roc_auc=_expected_auc(score[~np.isnan(score)]),
    )
    realised = None
    if has.any():
        y, p, s = actual_pos[has], predicted_pos[has], score[has]
        tp = float(np.sum(y & p))
        auc = None
        if 0 < y.sum() < len(y) and not np.isnan(s).any():
            from sklearn.metrics import roc_auc_score

            auc = finite(roc_auc_score(y, s))
        table, ece = _calibration(s, y.astype(float), bins)
        realised = Realised(
            accuracy=finite(np.mean(y == p)),
            precision=_ratio(tp, float(np.sum(p))),
            recall=_ratio(tp, float(np.sum(y))),
            roc_auc=auc,
            brier=finite(np.nanmean((s - y) ** 2)),
            expected_calibration_error=ece,
            calibration=table,
        )
    n = len(group)
    return PerformanceRow(version, bucket, n, int(has.sum()), n - int(has.sum()), realised, estimated)


def _multiclass_row(version: str, bucket: str, group: pd.DataFrame, bins: int) -> PerformanceRow:
    predicted = group["predicted"].tolist()
    scores = [json.loads(d) if isinstance(d, str) else (d or {}) for d in group["scores"]]  # SQLite: JSON text
    confidence = np.array([float(d.get(p, np.nan)) for d, p in zip(scores, predicted, strict=True)], dtype=float)
    has = group["outcome"].notna().to_numpy(dtype=bool)
    estimated = Estimated(accuracy=finite(np.nanmean(confidence)) if len(predicted) else None)
    realised = None
    if has.any():
        from sklearn.metrics import precision_score, recall_score

        y = group["outcome"][has].astype(str).tolist()
        p = [x for x, h in zip(predicted, has, strict=True) if h]
        correct = np.array([a == b for a, b in zip(y, p, strict=True)], dtype=float)
        table, ece = _calibration(confidence[has], correct, bins)
        realised = Realised(
            accuracy=finite(np.mean(correct)),
            precision=finite(precision_score(y, p, average="macro", zero_division=0)),
            recall=finite(recall_score(y, p, average="macro", zero_division=0)),
            expected_calibration_error=ece,
            calibration=table,
        )
    n = len(group)
    return PerformanceRow(version, bucket, n, int(has.sum()), n - int(has.sum()), realised, estimated)


def _ratio(numerator: float, denominator: float) -> float | None:
    return finite(numerator / denominator) if denominator else None


def _expected_auc(score: np.ndarray) -> float | None:
    """CBPE's ROC AUC: each decision counts as score positives and 1 - score negatives; sweep thresholds."""
    if len(score) < 2:
        return None
    ordered = np.sort(score)[::-1]
    tp = np.concatenate([[0.0], np.cumsum(ordered)])
    fp = np.concatenate([[0.0], np.cumsum(1 - ordered)])
    if tp[-1] == 0 or fp[-1] == 0:
        return None
    return finite(
        np.trapezoid(tp / tp[-1], fp / fp[-1]) if hasattr(np, "trapezoid") else np.trapz(tp / tp[-1], fp / fp[-1])
    )


def _calibration(predicted: np.ndarray, observed: np.ndarray, bins: int) -> tuple[list[CalibrationBin], float | None]:
    """Equal-width bins of the predicted probability; ECE = Σ (n_b / n) · |observed_b - predicted_b|."""
    keep = ~np.isnan(predicted)
    predicted, observed = predicted[keep], observed[keep]
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        mean_p = finite(np.mean(predicted[mask])) if n else None
        obs = finite(np.mean(observed[mask])) if n else None
        if n and mean_p is not None and obs is not None:
            ece += n / len(predicted) * abs(obs - mean_p)
        table.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), n, mean_p, obs))
    return table, finite(ece) if len(predicted) else None
