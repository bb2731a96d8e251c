"""Which version of a model was live when: deployment entries, and what the decisions themselves show.

A deployment (``POST /v1/models/{name}/deployments``) is a ``model.deployment`` ledger entry
(audit/deployment_payload.py) saying that a version serves from ``effective_at`` on, until the next one.
One version of a model is live at a time. The timeline merges those events with the first and last
decision of each version, and flags decisions logged against a version that was not live when they
occurred. Until the first deployment is recorded nothing is known to be live, so nothing is flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.scope import load_scope
from audit.deployment_payload import DeploymentPayload, DeploymentPayloadError
from audit.entry import EntryDraft, format_timestamp, parse_timestamp
from audit.errors import EntryNotFoundError
from storage.analytics import AnalyticsQueries, DeploymentRecord, Interval
from storage.errors import ConflictError

EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class DeploymentRecorded:
    model: str
    version: str
    action: str
    reason: str
    effective_at: datetime
    previous_version: str | None
    ledger_index: int
    leaf_hash: str


@dataclass(frozen=True, slots=True)
class LivePeriod:
    start: datetime
    end: datetime | None = None  # None: live now


@dataclass(frozen=True, slots=True)
class OffLiveDecision:
    decision_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class VersionActivity:
    version: str
    decisions: int
    first_decision_at: datetime | None
    first_decision_id: str | None
    last_decision_at: datetime | None
    last_decision_id: str | None
    live_periods: list[LivePeriod]
    live_now: bool
    decisions_while_not_live: int
    examples_while_not_live: list[OffLiveDecision] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: datetime
    kind: Literal["deploy", "rollback", "first_decision", "last_decision"]
    version: str
    detail: str
    ledger_index: int | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    model: str
    live_version: str | None
    events: list[TimelineEvent]
    versions: list[VersionActivity]
    decisions_while_not_live: int
    integrity_problems: list[str] = field(default_factory=list)  # deployment rows that disagree with entries


def record_deployment(
    services: Services,
    *,
    name: str,
    version: str,
    action: Literal["deploy", "rollback"],
    reason: str,
    effective_at: datetime | None,
) -> DeploymentRecorded:
    """Append a ``model.deployment`` entry. Deployments are recorded in the order they took effect.

    Raises InvalidRequestError (422) for an unknown version, a rollback to a version never live before, or a
    naive ``effective_at``; ConflictError (409) when the version is live already or the moment is earlier
    than the last recorded deployment's."""
    scope = load_scope(services, name)
    record = scope.pick([version], field="version")[0]
    if effective_at is not None and effective_at.tzinfo is None:
        raise InvalidRequestError("must include a timezone", field="effective_at")
    moment = (effective_at or services.clock()).astimezone(UTC)
    with services.db.unit_of_work() as uow:
        uow.ledger.lock_and_size()  # one deployment of any model at a time: the checks below stay true
        queries = AnalyticsQueries(uow.session)
        history, _ = verified_history(uow, name)  # the checks below rest on the entries, not the rows
        last = history[-1] if history else None
        if last is not None and moment < last.effective_at:
            raise ConflictError(
                f"deployments are recorded in order: the last one took effect at {format_timestamp(last.effective_at)}"
            )
        if last is not None and last.version == version:
            raise ConflictError(f"{name}@{version} is live already")
        if action == "rollback" and version not in {d.version for d in history}:
            raise InvalidRequestError(
                f"{name}@{version} was never live: a rollback returns to one that was", field="version"
            )
        payload = DeploymentPayload(
            model=name,
            version=version,
            action=action,
            reason=reason,
            effective_at=format_timestamp(moment),
            model_ledger_index=record.ledger_index,
            artifact_sha256=record.artifact_sha256,
            previous_version=last.version if last else None,
        )
        [entry] = services.ledger.append(uow.ledger, [EntryDraft(DeploymentPayload.ENTRY_TYPE, payload.to_dict())])
        queries.add_deployment(
            model_name=name,
            version=version,
            model_version_id=record.id,
            action=action,
            reason=reason,
            effective_at=moment,
            ledger_index=entry.index,
            recorded_at=parse_timestamp(entry.recorded_at),
        )
    return DeploymentRecorded(
        model=name,
        version=version,
        action=action,
        reason=reason,
        effective_at=moment,
        previous_version=payload.previous_version,
        ledger_index=entry.index,
        leaf_hash=entry.leaf_hash.hex(),
    )


def live_periods(history: list[DeploymentRecord]) -> dict[str, list[LivePeriod]]:
    """Each version's live periods: from its deployment until the next deployment of the model."""
    periods: dict[str, list[LivePeriod]] = {}
    for position, current in enumerate(history):
        end = history[position + 1].effective_at if position + 1 < len(history) else None
        periods.setdefault(current.version, []).append(LivePeriod(current.effective_at, end))
    return periods


def verified_history(uow: Any, name: str) -> tuple[list[DeploymentRecord], list[str]]:
    """The model's deployments as their ledger entries say (rows are an index, the entry is the record),
    and a sentence for every row that disagrees with its entry. A row whose entry cannot be read as a
    deployment of this model is left out of the history and named."""
    history: list[DeploymentRecord] = []
    problems: list[str] = []
    for row in AnalyticsQueries(uow.session).deployments(name):
        where = f"deployment row at ledger index {row.ledger_index}"
        try:
            document = json.loads(uow.ledger.read(row.ledger_index).canonical)
        except (EntryNotFoundError, ValueError):
            problems.append(f"{where}: no readable entry at that index")
            continue
        if document.get("type") != DeploymentPayload.ENTRY_TYPE:
            problems.append(f"{where}: the entry there is not a {DeploymentPayload.ENTRY_TYPE} entry")
            continue
        try:
            payload = DeploymentPayload.from_dict(document["payload"])
        except (DeploymentPayloadError, TypeError, KeyError):
            problems.append(f"{where}: the entry's payload is not a deployment payload")
            continue
        if payload.model != name:
            problems.append(f"{where}: the entry deploys model {payload.model!r}")
            continue
        record = DeploymentRecord(
            model_name=payload.model,
            version=payload.version,
            model_version_id=row.model_version_id,
            action=payload.action,
            reason=payload.reason,
            effective_at=parse_timestamp(payload.effective_at),
            ledger_index=row.ledger_index,
            recorded_at=parse_timestamp(str(document["recorded_at"])),
        )
        differs = [
            f"{field} is {getattr(row, field)!r} in the row, {getattr(record, field)!r} in the entry"
            for field in ("version", "action", "reason", "effective_at")
            if getattr(row, field) != getattr(record, field)
        ]
        if differs:
            problems.append(f"{where} does not match its entry: " + "; ".join(differs))
        history.append(record)
    history.sort(key=lambda d: (d.effective_at, d.ledger_index))
    return history, problems


def build_timeline(services: Services, name: str) -> Timeline:
    scope = load_scope(services, name)
    with services.db.unit_of_work(write=False) as uow:
        queries = AnalyticsQueries(uow.session)
        history, problems = verified_history(uow, name)
        periods = live_periods(history)
        activity: list[VersionActivity] = []
        for record in scope.versions:
            span = queries.version_span(record.id)
            mine = periods.get(record.version, [])
            off, examples = 0, list[tuple[str, datetime]]()
            if history and span.decisions:
                off, examples = queries.outside_intervals(
                    record.id, [Interval(p.start, p.end) for p in mine], examples=EXAMPLES
                )
            activity.append(
                VersionActivity(
                    version=record.version,
                    decisions=span.decisions,
                    first_decision_at=span.first_at,
                    first_decision_id=span.first_decision_id,
                    last_decision_at=span.last_at,
                    last_decision_id=span.last_decision_id,
                    live_periods=mine,
                    live_now=bool(history) and history[-1].version == record.version,
                    decisions_while_not_live=off,
                    examples_while_not_live=[OffLiveDecision(i, t) for i, t in examples],
                )
            )
    events: list[TimelineEvent] = [
        TimelineEvent(
            at=d.effective_at,
            kind="rollback" if d.action == "rollback" else "deploy",
            version=d.version,
            detail=d.reason,
            ledger_index=d.ledger_index,
        )
        for d in history
    ]
    for a in activity:
        if a.first_decision_at is not None:
            events.append(TimelineEvent(a.first_decision_at, "first_decision", a.version, a.first_decision_id or ""))
        if a.last_decision_at is not None and a.decisions > 1:
            events.append(TimelineEvent(a.last_decision_at, "last_decision", a.version, a.last_decision_id or ""))
    order = {"deploy": 0, "rollback": 0, "first_decision": 1, "last_decision": 2}
    events.sort(key=lambda e: (e.at, order[e.kind]))
    return Timeline(
        model=name,
        live_version=history[-1].version if history else None,
        events=events,
        versions=activity,
        decisions_while_not_live=sum(a.decisions_while_not_live for a in activity),
        integrity_problems=problems,
    )
