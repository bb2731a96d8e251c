"""The data-scientist toolkit over HTTP: deployments and timeline, drift, importance, performance, fairness,
attributions by model, and replay of a decision's explanations.

Responses are the services' own frozen dataclasses (typed in the OpenAPI document); the routes only parse
parameters. Access control will add one ``Annotated`` dependency per route (readers: data_scientist, admin;
``POST .../deployments``: admin or data_scientist).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.schemas import NAME_PATTERN, Strict
from api.services.analytics.timeline import DeploymentRecorded, Timeline, build_timeline, record_deployment

router = APIRouter(prefix="/v1/models/{name}", tags=["toolkit"])

Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class DeploymentCreate(Strict):
    """A version of this model goes live (``deploy``) or an earlier one goes live again (``rollback``)."""

    version: str = Field(pattern=NAME_PATTERN)
    action: Literal["deploy", "rollback"] = "deploy"
    reason: str = Field(min_length=1, max_length=2000)
    effective_at: datetime | None = Field(default=None, description="when it took effect; now if omitted")


@router.post("/deployments", status_code=status.HTTP_201_CREATED, response_model=DeploymentRecorded)
def create_deployment(
    services: ServicesDep, name: str, body: DeploymentCreate, response: Response
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
async def timeline(services: ServicesDep, name: str) -> Timeline:
    """Deployments merged with each version's first and last decision; decisions made by a version that was
    not live at the time are counted and the first few named."""
    return await run_in_threadpool(build_timeline, services, name)


__all__ = ["Query", "router"]
