"""Explanation job status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from api.deps import Allow, ServicesDep
from api.params import OpaqueIdPath
from api.presenters import job_public
from api.schemas import JobPublic
from api.services import lookups
from api.services.access import Principal

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(services: ServicesDep, _: Annotated[Principal, Allow("jobs.read")], job_id: OpaqueIdPath) -> JobPublic:
    return job_public(lookups.get_job(services, job_id))
