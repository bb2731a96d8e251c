"""Liveness and readiness: /healthz answers 503 while the database is unreachable, 200 when it is back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import Public, ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(
    services: ServicesDep,
    request: Request,
    _: Annotated[None, Public("liveness for orchestrators: counts only, no personal data")],
) -> dict[str, Any]:
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        depth = uow.jobs.depth()
    body = {"status": "ok", "ledger_size": size, "queue_depth": depth, "executor": services.settings.executor}
    # A witness that is down makes the log "degraded", still 200: the log itself serves (docs/witnesses.md).
    pusher = getattr(request.app.state, "witness_pusher", None)
    if pusher is not None:
        body["witnesses"] = pusher.status()
        if pusher.degraded:
            body["status"] = "degraded"
    return body


@router.get("/metrics", response_class=Response)
def metrics(
    services: ServicesDep,
    _: Annotated[None, Public("Prometheus scrapers carry no key; gauges and counters only, no personal data")],
) -> Response:
    """Prometheus exposition; shared-state gauges are read from the database at scrape time."""
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        states = uow.jobs.counts_by_state()
    m = services.metrics
    m.ledger_size.set(size)
    for state in ("queued", "running", "succeeded", "failed"):
        m.jobs_by_state.labels(state).set(states.get(state, 0))
    m.queue_depth.set(states.get("queued", 0) + states.get("running", 0))
    m.configured_batch_size.set(services.settings.batch_size)
    m.configured_batch_window.set(services.settings.batch_window_ms / 1000)
    m.configured_explain_processes.set(services.settings.explain_processes)
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
