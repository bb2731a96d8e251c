"""Backfill: queue explanations for decisions already recorded (a new method, or after an outage)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from api.container import Services
from api.services.decisions import request_explanations
from storage.records import JobRecord


def queue_backfill(
    services: Services,
    *,
    model: str,
    since: datetime | None,
    until: datetime | None,
    methods: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> list[JobRecord]:
    """Queue ``methods`` for every decision of ``model`` (name or name@version) in the window.

    Jobs are idempotent per (decision, method, parameters), so running a backfill twice queues nothing new.
    """
    name, _, version = model.partition("@")
    with services.db.unit_of_work(write=False) as uow:
        model_ids = [r.id for r in uow.models.list(name=name) if not version or r.version == version]
    jobs: list[JobRecord] = []
    cursor: int | None = None
    while model_ids:
        with services.db.unit_of_work(write=False) as uow:
            page, cursor = uow.decisions.search(
                model_version_ids=model_ids, since=since, until=until, cursor=cursor, limit=500
            )
        for decision in page:
            jobs.extend(
                request_explanations(
                    services, decision_id=decision.decision_id, methods=methods, params={}, target=None
                )
            )
        if progress is not None:
            progress(len(page))
        if cursor is None:
            break
    return jobs
