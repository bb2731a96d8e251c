"""Exports for regulators: create, describe, download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from api.deps import ServicesDep
from api.errors import InvalidRequestError
from api.params import Moment, OpaqueIdPath, ordered
from api.services.exports import ExportFilter, create_export, read_export

router = APIRouter(prefix="/v1/exports", tags=["exports"])


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    subject_refs: list[str] | None = None
    decision_ids: list[str] | None = None
    since: Moment | None = None
    until: Moment | None = None
    outcome: str | None = None


@router.post("", status_code=status.HTTP_201_CREATED)
def create(services: ServicesDep, body: ExportCreate) -> dict[str, Any]:
    """Build a bundle for the filter (a signed checkpoint is published for it); the export is a ledger entry."""
    for name in ("since", "until"):
        value = getattr(body, name)
        if value is not None and value.tzinfo is None:
            raise InvalidRequestError(f"{name} must include a timezone", field=name)
    ordered(body.since, body.until)
    record = create_export(services, flt=ExportFilter(**body.model_dump()), requested_by="api")
    return record.to_dict()


@router.get("/{export_id}")
def describe(services: ServicesDep, export_id: OpaqueIdPath) -> dict[str, Any]:
    return read_export(services, export_id).to_dict()


@router.get("/{export_id}/bundle", response_class=FileResponse)
def bundle(services: ServicesDep, export_id: OpaqueIdPath) -> FileResponse:
    record = read_export(services, export_id)
    return FileResponse(record.bundle_path, media_type="application/zip", filename=f"rationale-{export_id}.zip")
