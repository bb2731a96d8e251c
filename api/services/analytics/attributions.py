"""SHAP attributions of a model's decisions, a page at a time (the pandas client's ``attributions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.scope import load_scope
from api.services.analytics.stats import finite
from storage.analytics import AnalyticsQueries


@dataclass(frozen=True, slots=True)
class DecisionAttributions:
    decision_id: str
    model: str
    occurred_at: datetime
    values: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class AttributionPage:
    model: str
    method: str
    features: list[str]
    items: list[DecisionAttributions]
    next_cursor: str | None


def list_attributions(
    services: Services,
    name: str,
    *,
    versions: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 1000,
) -> AttributionPage:
    """Keyset pagination on the decisions' storage order; pass ``next_cursor`` back as ``cursor``."""
    scope = load_scope(services, name)
    window = scope.window(versions, since, until)
    after = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise InvalidRequestError("not a cursor this endpoint returned", field="cursor")
        after = int(cursor)
    names = [f.name for f in scope.features([scope.by_id(i) for i in window.version_ids])]
    with services.db.unit_of_work(write=False) as uow:
        rows = AnalyticsQueries(uow.session).decision_page(window, names, after=after, limit=limit + 1)
    items = [
        DecisionAttributions(r[1], r[2], r[3], {n: finite(v) for n, v in zip(names, r[4:], strict=True)})
        for r in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return AttributionPage(model=name, method="shap", features=names, items=items, next_cursor=next_cursor)
