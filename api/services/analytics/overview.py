"""Everything the model page and ``rationale report model`` show about one model, gathered once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.drift import Drift, WindowSpec, compute_drift
from api.services.analytics.fairness import Fairness, compute_fairness
from api.services.analytics.importance import Importance, compute_importance
from api.services.analytics.performance import Performance, compute_performance
from api.services.analytics.scope import load_scope
from api.services.analytics.timeline import Timeline, build_timeline


@dataclass(frozen=True, slots=True)
class ModelOverview:
    model: str
    versions: list[str]
    task: str
    since: datetime | None
    until: datetime | None
    timeline: Timeline
    importance: Importance
    performance: Performance
    drift: Drift | None  # None with a single version and no reference chosen
    fairness: Fairness | None  # None for regression, or with no categorical feature to group by
    group_choices: list[str]
    fairness_problem: str | None = None


def build_overview(
    services: Services,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    reference: str | None = None,
    current: str | None = None,
    group: str | None = None,
) -> ModelOverview:
    """Drift compares ``reference`` with ``current`` (default: the two latest versions); fairness groups by
    ``group`` (default: the first categorical feature)."""
    scope = load_scope(services, name)
    versions = [v.version for v in scope.versions]
    window = WindowSpec(None, since, until)
    scope.window(None, since, until)  # validates the times once, naming the field
    drift = None
    if reference or current or len(versions) > 1:
        ref = reference or (versions[-2] if len(versions) > 1 else versions[-1])
        cur = current or versions[-1]
        drift = compute_drift(
            services,
            name,
            reference=WindowSpec([ref], since, until),
            current=WindowSpec([cur], since, until),
        )
    choices = [f.name for f in scope.features() if not f.numeric]
    fairness, problem = None, None
    if scope.task != "regression" and (group or choices):
        try:
            fairness = compute_fairness(services, name, group=group or choices[0], since=since, until=until)
        except InvalidRequestError as exc:
            problem = str(exc)
    return ModelOverview(
        model=name,
        versions=versions,
        task=scope.task,
        since=since,
        until=until,
        timeline=build_timeline(services, name),
        importance=compute_importance(services, name, since=window.since, until=window.until),
        performance=compute_performance(services, name, since=since, until=until, bucket="week"),
        drift=drift,
        fairness=fairness,
        group_choices=choices,
        fairness_problem=problem,
    )
