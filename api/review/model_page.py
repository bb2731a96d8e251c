"""The model page (``/review/models/{name}``): which version was live when, importance by version, drift,
performance over time with the estimate, fairness by group. The same view renders the HTML report of
``rationale report model``. Access control will add its one ``Annotated`` dependency here as elsewhere
(readers: data_scientist, admin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from api.clock import utc_now
from api.deps import ServicesDep
from api.errors import InvalidRequestError
from api.review.model_charts import BarChart, LineChart, PeriodChart, bar_chart, line_chart, period_chart
from api.review.render import PageRoute, render
from api.review.session import Page, PageSession
from api.services.analytics.overview import ModelOverview, build_overview

router = APIRouter(prefix="/review", tags=["review"], route_class=PageRoute, include_in_schema=False)
TOP_FEATURES = 12


@dataclass(frozen=True, slots=True)
class ModelView:
    o: ModelOverview
    importance_chart: BarChart
    performance_chart: LineChart
    fairness_chart: BarChart | None
    periods: PeriodChart
    form: dict[str, str]
    report: bool


def model_view(overview: ModelOverview, *, form: dict[str, str], report: bool, now: datetime) -> ModelView:
    imp = overview.importance
    series = {f"v{r.version}": dict(r.mean_abs) for r in imp.rows}
    buckets = sorted({r.bucket for r in overview.performance.rows})
    lines: dict[str, tuple[bool, dict[str, float | None]]] = {}
    for row in overview.performance.rows:
        realised = row.realised.accuracy if row.realised else None
        estimated = row.estimated.accuracy if row.estimated else None
        lines.setdefault(f"v{row.version} realised", (False, {}))[1][row.bucket] = realised
        lines.setdefault(f"v{row.version} estimated", (True, {}))[1][row.bucket] = estimated
    fairness = overview.fairness
    fair_chart = None
    if fairness is not None and fairness.groups:
        fair_chart = bar_chart(
            [g.group for g in fairness.groups], {"selection rate": {g.group: g.selection_rate for g in fairness.groups}}
        )
    periods = {
        v.version: [(p.start, p.end) for p in v.live_periods] for v in overview.timeline.versions if v.live_periods
    }
    return ModelView(
        o=overview,
        importance_chart=bar_chart(imp.features[:TOP_FEATURES], series),
        performance_chart=line_chart(buckets, lines),
        fairness_chart=fair_chart,
        periods=period_chart(overview.versions, periods, now),
        form=form,
        report=report,
    )


def parse_moment(text: str | None, field: str) -> datetime | None:
    """A date or date-time from a form or the command line; without a zone it is UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: {text!r} is not a date (YYYY-MM-DD) or date-time", field=field) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    services: ServicesDep,
    session: Annotated[PageSession, Page("analytics.read")],
    name: str,
    since: str | None = None,
    until: str | None = None,
    reference: str | None = None,
    current: str | None = None,
    group: str | None = None,
) -> Response:
    """Everything the toolkit computes about one model, on one page."""
    form = {
        "since": since or "",
        "until": until or "",
        "reference": reference or "",
        "current": current or "",
        "group": group or "",
    }
    overview = build_overview(
        services,
        name,
        since=parse_moment(since, "since"),
        until=parse_moment(until, "until"),
        reference=reference or None,
        current=current or None,
        group=group or None,
    )
    view = model_view(overview, form=form, report=False, now=utc_now())
    return render("model.html", v=view, session=session)
