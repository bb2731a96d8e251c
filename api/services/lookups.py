"""Reads that hold no personal data (job states, model versions, queue depth, whether an id exists), so that
routes and pages never open a unit of work themselves. Domain arguments in, records or NotFoundError out."""

from __future__ import annotations

from api.container import Services
from storage.errors import NotFoundError
from storage.records import JobRecord, ModelVersionRecord


def get_job(services: Services, job_id: str) -> JobRecord:
    with services.db.unit_of_work(write=False) as uow:
        job = uow.jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"job {job_id!r} does not exist")
    return job


def list_models(services: Services, *, name: str | None = None) -> list[ModelVersionRecord]:
    with services.db.unit_of_work(write=False) as uow:
        return uow.models.list(name=name)


def get_model(services: Services, name: str, version: str) -> tuple[ModelVersionRecord, str]:
    """The version and the hex leaf hash of its registration entry."""
    with services.db.unit_of_work(write=False) as uow:
        record = uow.models.get(name, version)
        if record is None:
            raise NotFoundError(f"model {name}@{version} is not registered")
        return record, uow.ledger.read(record.ledger_index).leaf_hash.hex()


def queue_depth(services: Services) -> int:
    with services.db.unit_of_work(write=False) as uow:
        return uow.jobs.depth()


def decision_exists(services: Services, decision_id: str) -> bool:
    with services.db.unit_of_work(write=False) as uow:
        return uow.decisions.get(decision_id) is not None
