"""Liveness and readiness: /healthz answers 503 while the database is unreachable, 200 when it is back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, Any]:
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        depth = uow.jobs.depth()
    return {"status": "ok", "ledger_size": size, "queue_depth": depth, "executor": services.settings.executor}
