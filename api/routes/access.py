"""Access control administration: API keys (admin), and the access log — who read whose records, when, why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Allow, ServicesDep
from api.services import access, access_reads
from api.services.access import Principal, Role
from storage.access_store import ApiKeyRecord

router = APIRouter(prefix="/v1/access", tags=["access"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=200, description="the person or system the key belongs to")
    role: Role
    expires_at: datetime | None = Field(default=None, description="optional; RFC 3339 with a timezone")


class KeyPublic(BaseModel):
    key_id: str
    owner: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyIssued(KeyPublic):
    key: str = Field(description="the secret key, shown this once and never stored")


def key_public(record: ApiKeyRecord) -> KeyPublic:
    return KeyPublic(
        key_id=record.key_id,
        owner=record.owner,
        role=record.role,
        created_at=record.created_at,
        created_by=record.created_by,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyIssued)
def create_key(
    services: ServicesDep, principal: Annotated[Principal, Allow("access.keys")], body: KeyCreate
) -> KeyIssued:
    """Mint a key. The response carries the secret once; only its SHA-256 is stored."""
    issued = access.create_key(
        services, owner=body.owner, role=body.role.value, by=principal, expires_at=body.expires_at
    )
    return KeyIssued(**key_public(issued.record).model_dump(), key=issued.secret)


@router.get("/keys")
def list_keys(services: ServicesDep, principal: Annotated[Principal, Allow("access.keys")]) -> dict[str, Any]:
    return {"items": [key_public(r) for r in access.list_keys(services, by=principal)]}


@router.delete("/keys/{key_id}", response_model=KeyPublic)
def revoke_key(services: ServicesDep, principal: Annotated[Principal, Allow("access.keys")], key_id: str) -> KeyPublic:
    """Revoke a key: its next request to this process is a 401 (other processes: within the key cache window)."""
    return key_public(access.revoke_key(services, key_id=key_id, by=principal))


@router.get("")
def access_log(
    services: ServicesDep,
    principal: Annotated[Principal, Allow("access.log")],
    subject_ref: str | None = None,
    decision_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=access_reads.MAX_LOG)] = 100,
) -> dict[str, Any]:
    """Who read this subject's (or decision's) records, when and why — read from the ledger's access entries."""
    items = access_reads.access_log(services, principal, subject_ref=subject_ref, decision_id=decision_id, limit=limit)
    return {
        "items": [
            {
                "ledger_index": item.ledger_index,
                "recorded_at": item.recorded_at,
                "key_id": item.read.key_id,
                "owner": item.read.owner,
                "role": item.read.role,
                "action": item.read.action,
                "purpose": item.read.purpose,
                "target": item.read.target,
                "decision_ids": list(item.read.decision_ids),
            }
            for item in items
        ]
    }
