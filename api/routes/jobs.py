"""Explanation job status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from api.deps import Allow, ServicesDep
from api.errors import ResourceNotFoundError
from api.presenters import job_public
from api.schemas import JobPublic
from api.services.access import Principal

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(services: ServicesDep, _: Annotated[Principal, Allow("jobs.read")], job_id: str) -> JobPublic:
    with services.db.unit_of_work(write=False) as uow:
        job = uow.jobs.get(job_id)
    if job is None:
        raise ResourceNotFoundError(f"job {job_id!r} does not exist")
    return job_public(job)
