"""Explanation job status."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep
from api.errors import ResourceNotFoundError
from api.params import OpaqueIdPath
from api.presenters import job_public
from api.schemas import JobPublic

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(services: ServicesDep, job_id: OpaqueIdPath) -> JobPublic:
    with services.db.unit_of_work(write=False) as uow:
        job = uow.jobs.get(job_id)
    if job is None:
        raise ResourceNotFoundError(f"job {job_id!r} does not exist")
    return job_public(job)
