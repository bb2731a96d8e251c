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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.scope import load_scope
from api.services.analytics.stats import finite
from storage.analytics import AnalyticsQueries, Bucket


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
    groups: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
    regression = scope.task == "regression"
    positive = scope.positive_class
    if not regression and scope.task == "binary" and positive is None:
        raise InvalidRequestError("the model names no class labels", field="name")
    with services.db.unit_of_work(write=False) as uow:
        queries = AnalyticsQueries(uow.session)
        chunks = (
            queries.regression_rows(window, unit=bucket)
            if regression
            else queries.classification_rows(window, positive=positive or "", unit=bucket)
        )
        for chunk in chunks:
            for row in chunk:
                groups.setdefault((int(row[0]), str(row[1])), []).append(row[2:])
    rows = []
    for (version_id, label), values in sorted(groups.items()):
        version = scope.by_id(version_id).version
        if regression:
            rows.append(_regression_row(version, label, values))
        elif scope.task == "binary":
            rows.append(_binary_row(version, label, values, positive or "", calibration_bins))
        else:
            rows.append(_multiclass_row(version, label, values, calibration_bins))
        values.clear()
    return Performance(model=name, task=scope.task, positive_class=positive, bucket=bucket, rows=rows)


def _regression_row(version: str, bucket: str, values: list[tuple[Any, ...]]) -> PerformanceRow:
    data = np.array([(v[0], np.nan if v[1] is None else v[1]) for v in values], dtype=float).reshape(-1, 2)
    known = data[~np.isnan(data[:, 1])]
    realised = None
    if len(known):
        error = known[:, 0] - known[:, 1]
        realised = Realised(
            mae=finite(np.mean(np.abs(error))),
            rmse=finite(np.sqrt(np.mean(error**2))),
            bias=finite(np.mean(error)),
        )
    return PerformanceRow(version, bucket, len(data), len(known), len(data) - len(known), realised, None)


def _binary_row(version: str, bucket: str, values: list[tuple[Any, ...]], positive: str, bins: int) -> PerformanceRow:
    predicted_pos = np.array([v[0] == positive for v in values], dtype=bool)
    score = np.array([np.nan if v[1] is None else v[1] for v in values], dtype=float)
    has = np.array([v[3] is not None for v in values], dtype=bool)
    actual_pos = np.array([v[3] == positive for v in values], dtype=bool)
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
    n = len(values)
    return PerformanceRow(version, bucket, n, int(has.sum()), n - int(has.sum()), realised, estimated)


def _multiclass_row(version: str, bucket: str, values: list[tuple[Any, ...]], bins: int) -> PerformanceRow:
    predicted = [v[0] for v in values]
    confidence = np.array([float((v[2] or {}).get(v[0], np.nan)) for v in values], dtype=float)
    has = np.array([v[3] is not None for v in values], dtype=bool)
    estimated = Estimated(accuracy=finite(np.nanmean(confidence)) if len(values) else None)
    realised = None
    if has.any():
        from sklearn.metrics import precision_score, recall_score

        y = [v[3] for v, h in zip(values, has, strict=True) if h]
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
    n = len(values)
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
