"""Global importance: mean |SHAP| per raw feature, by version and time bucket, aggregated in the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from api.container import Services
from api.services.analytics.scope import load_scope
from api.services.analytics.stats import finite
from storage.analytics import AnalyticsQueries, Bucket


@dataclass(frozen=True, slots=True)
class ImportanceRow:
    version: str
    bucket: str  # start of the day / week (Monday) / month in UTC, or "all"
    explanations: int
    mean_abs: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class Importance:
    model: str
    bucket: Bucket
    features: list[str]  # by mean |SHAP| over every row, largest first
    rows: list[ImportanceRow]


def compute_importance(
    services: Services,
    name: str,
    *,
    versions: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Bucket = "all",
) -> Importance:
    scope = load_scope(services, name)
    window = scope.window(versions, since, until)
    names = [f.name for f in scope.features([scope.by_id(i) for i in window.version_ids])]
    with services.db.unit_of_work(write=False) as uow:
        raw = AnalyticsQueries(uow.session).importance(window, names, bucket)
    rows = [
        ImportanceRow(
            version=scope.by_id(int(r[0])).version,
            bucket=str(r[1]),
            explanations=int(r[2]),
            mean_abs={n: finite(v) for n, v in zip(names, r[3:], strict=True)},
        )
        for r in raw
    ]
    total = sum(r.explanations for r in rows) or 1
    overall = {n: sum((r.mean_abs[n] or 0.0) * r.explanations for r in rows) / total for n in names}
    ordered = sorted(names, key=lambda n: (-overall[n], n))
    return Importance(model=name, bucket=bucket, features=ordered, rows=rows)
