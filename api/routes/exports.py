"""Exports for regulators: create (owned by the caller, shared with an audience of regulator keys), list,
describe, download. Every describe and download is recorded (api/services/access_reads.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Allow, ServicesDep
from api.errors import InvalidRequestError
from api.params import Moment, OpaqueIdPath, ordered
from api.services import access_reads
from api.services.access import Principal
from api.services.exports import ExportFilter

router = APIRouter(prefix="/v1/exports", tags=["exports"])


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    subject_refs: list[str] | None = None
    decision_ids: list[str] | None = None
    since: Moment | None = None
    until: Moment | None = None
    outcome: str | None = None
    audience: list[str] = Field(
        default_factory=list, max_length=100, description="key ids of the regulator keys that may download it"
    )


def _public(shared: access_reads.SharedExport) -> dict[str, Any]:
    data = shared.record.to_dict()
    grant = shared.grant
    data["owner"] = {"key_id": grant.owner_key_id, "name": grant.owner} if grant else None
    data["audience"] = list(grant.audience) if grant else []
    return data


@router.post("", status_code=status.HTTP_201_CREATED)
def create(
    services: ServicesDep, principal: Annotated[Principal, Allow("exports.create")], body: ExportCreate
) -> dict[str, Any]:
    """Build a bundle for the filter (a signed checkpoint is published for it); the export is a ledger entry."""
    for name in ("since", "until"):
        value = getattr(body, name)
        if value is not None and value.tzinfo is None:
            raise InvalidRequestError(f"{name} must include a timezone", field=name)
    ordered(body.since, body.until)
    flt = ExportFilter(**body.model_dump(exclude={"audience"}))
    shared = access_reads.create_export(services, principal, flt, audience=body.audience)
    return _public(shared)


@router.get("")
def list_exports(services: ServicesDep, principal: Annotated[Principal, Allow("exports.read")]) -> dict[str, Any]:
    """Exports with their owner and audience, newest first; a regulator sees only those shared with it."""
    grants = access_reads.list_exports(services, principal)
    return {
        "items": [
            {
                "export_id": g.export_id,
                "owner": {"key_id": g.owner_key_id, "name": g.owner},
                "audience": list(g.audience),
                "created_at": g.created_at,
            }
            for g in grants
        ]
    }


@router.get("/{export_id}")
def describe(
    services: ServicesDep, principal: Annotated[Principal, Allow("exports.read")], export_id: OpaqueIdPath
) -> dict[str, Any]:
    return _public(access_reads.read_export(services, principal, export_id))


@router.get("/{export_id}/bundle", response_class=FileResponse)
def bundle(
    services: ServicesDep, principal: Annotated[Principal, Allow("exports.read")], export_id: OpaqueIdPath
) -> FileResponse:
    record = access_reads.read_export(services, principal, export_id, download=True).record
    return FileResponse(record.bundle_path, media_type="application/zip", filename=f"rationale-{export_id}.zip")
