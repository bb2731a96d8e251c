"""The data-scientist toolkit over HTTP: deployments and timeline, drift, importance, performance, fairness,
attributions by model, and replay of a decision's explanations.

Responses are the services' own frozen dataclasses (typed in the OpenAPI document); the routes only parse
parameters. The analytics read many decisions, so they run in the thread pool, off the event loop.
Each route admits the roles of one action (``api/services/access.py`` RIGHTS): ``analytics.read``,
``deployments.record``, ``decisions.replay``; attribution pages and replays read decisions, so each leaves an
access entry in the ledger like every other read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.deps import Allow, ServicesDep
from api.moments import Moment
from api.schemas import NAME_PATTERN, Strict
from api.services import access_reads
from api.services.access import Principal, require_purpose
from api.services.analytics.attributions import AttributionPage, list_attributions
from api.services.analytics.drift import Drift, WindowSpec, compute_drift
from api.services.analytics.fairness import Fairness, compute_fairness
from api.services.analytics.importance import Importance, compute_importance
from api.services.analytics.performance import Performance, compute_performance
from api.services.analytics.timeline import DeploymentRecorded, Timeline, build_timeline, record_deployment
from api.services.replaying import ReplayOutcome, replay_decision

router = APIRouter(prefix="/v1/models/{name}", tags=["toolkit"])
decisions_router = APIRouter(prefix="/v1/decisions", tags=["toolkit"])

Versions = Annotated[list[str] | None, Query(description="model versions (repeat the parameter); all if omitted")]
# RFC 3339 with an offset or a date, never a Unix timestamp (api/moments.py), as on every other route
Since = Annotated[Moment | None, Query(description="decisions that occurred at or after (RFC 3339 or a date)")]
Until = Annotated[Moment | None, Query(description="decisions that occurred before (RFC 3339 or a date)")]
BucketParam = Literal["day", "week", "month", "all"]


class DeploymentCreate(Strict):
    """A version of this model goes live (``deploy``) or an earlier one goes live again (``rollback``)."""

    version: str = Field(pattern=NAME_PATTERN)
    action: Literal["deploy", "rollback"] = "deploy"
    reason: str = Field(min_length=1, max_length=2000)
    effective_at: Moment | None = Field(default=None, description="when it took effect; now if omitted")


@router.post("/deployments", status_code=status.HTTP_201_CREATED, response_model=DeploymentRecorded)
def create_deployment(
    services: ServicesDep, _: Annotated[Principal, Allow("deployments.record")], name: str, body: DeploymentCreate
) -> DeploymentRecorded:
    """Record, as a ledger entry, that a version went live or was rolled back to, and why."""
    return record_deployment(
        services,
        name=name,
        version=body.version,
        action=body.action,
        reason=body.reason,
        effective_at=body.effective_at,
    )


@router.get("/timeline", response_model=Timeline)
async def timeline(services: ServicesDep, _: Annotated[Principal, Allow("analytics.read")], name: str) -> Timeline:
    """Deployments merged with each version's first and last decision; decisions made by a version that was
    not live at the time are counted and the first few named."""
    return await run_in_threadpool(build_timeline, services, name)


@router.get("/drift", response_model=Drift)
async def drift(
    services: ServicesDep,
    _: Annotated[Principal, Allow("analytics.read")],
    name: str,
    reference_version: Versions = None,
    reference_since: Since = None,
    reference_until: Until = None,
    current_version: Versions = None,
    current_since: Since = None,
    current_until: Until = None,
    bins: Annotated[int, Query(ge=2, le=100, description="quantile bins of PSI and JS distance")] = 10,
) -> Drift:
    """Input drift (PSI, KS or chi-squared, Jensen-Shannon distance) and attribution drift (change in mean
    |SHAP| and in rank, shift of the SHAP values) between a reference and a current window."""
    reference = WindowSpec(reference_version, reference_since, reference_until)
    current = WindowSpec(current_version, current_since, current_until)
    return await run_in_threadpool(
        lambda: compute_drift(services, name, reference=reference, current=current, bins=bins)
    )


@router.get("/importance", response_model=Importance)
async def importance(
    services: ServicesDep,
    _: Annotated[Principal, Allow("analytics.read")],
    name: str,
    version: Versions = None,
    since: Since = None,
    until: Until = None,
    bucket: BucketParam = "all",
) -> Importance:
    """Mean |SHAP| per raw feature by version and time bucket (UTC day, ISO week or month; or ``all``)."""
    return await run_in_threadpool(
        lambda: compute_importance(services, name, versions=version, since=since, until=until, bucket=bucket)
    )


@router.get("/performance", response_model=Performance)
async def performance(
    services: ServicesDep,
    _: Annotated[Principal, Allow("analytics.read")],
    name: str,
    version: Versions = None,
    since: Since = None,
    until: Until = None,
    bucket: BucketParam = "week",
    calibration_bins: Annotated[int, Query(ge=2, le=50)] = 10,
) -> Performance:
    """Realised figures from outcomes, missing-outcome counts and a confidence-based estimate (CBPE), by
    version and time bucket."""
    return await run_in_threadpool(
        lambda: compute_performance(
            services,
            name,
            versions=version,
            since=since,
            until=until,
            bucket=bucket,
            calibration_bins=calibration_bins,
        )
    )


@router.get("/fairness", response_model=Fairness)
async def fairness(
    services: ServicesDep,
    _: Annotated[Principal, Allow("analytics.read")],
    name: str,
    group: Annotated[str, Query(min_length=1, max_length=200, description="input feature or context key")],
    version: Versions = None,
    since: Since = None,
    until: Until = None,
    positive: Annotated[str | None, Query(description="the selected class; the model's positive class")] = None,
) -> Fairness:
    """Selection rate, demographic parity difference and ratio, and equalised-odds difference per group
    (Fairlearn's MetricFrame), with counts."""
    return await run_in_threadpool(
        lambda: compute_fairness(
            services, name, group=group, versions=version, since=since, until=until, positive=positive
        )
    )


@router.get("/attributions", response_model=AttributionPage)
async def attributions(
    services: ServicesDep,
    principal: Annotated[Principal, Allow("analytics.read")],
    name: str,
    version: Versions = None,
    since: Since = None,
    until: Until = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> AttributionPage:
    """SHAP attributions per raw feature of the model's decisions, a page at a time (an access entry names
    the decisions on the page)."""
    page = await run_in_threadpool(
        lambda: list_attributions(
            services, name, versions=version, since=since, until=until, cursor=cursor, limit=limit
        )
    )
    await run_in_threadpool(
        lambda: access_reads.record_read(
            services,
            principal,
            "attributions.read",
            target={"model": name, "cursor": cursor, "limit": limit},
            decisions=[(item.decision_id, None) for item in page.items],
        )
    )
    return page


@dataclass(frozen=True, slots=True)
class ReplayPublic:
    decision_id: str
    model: str
    artifact_sha256: str
    artifact_intact: bool
    reproduced: bool
    outcomes: list[ReplayOutcome]


@decisions_router.post("/{decision_id}/replay", response_model=ReplayPublic)
def replay(
    services: ServicesDep, principal: Annotated[Principal, Allow("decisions.replay")], decision_id: str
) -> ReplayPublic:
    """Re-run the decision's recorded explanations from the stored artifact and compare with the ledger (an
    access entry records the read)."""
    require_purpose(principal)
    report = replay_decision(services, decision_id)
    access_reads.record_read(
        services, principal, "decision.replay", target={"decision_id": decision_id}, decisions=[(decision_id, None)]
    )
    return ReplayPublic(
        decision_id=report.decision_id,
        model=report.model,
        artifact_sha256=report.artifact_sha256,
        artifact_intact=report.artifact_intact,
        reproduced=report.ok,
        outcomes=list(report.outcomes),
    )
