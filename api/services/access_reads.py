"""Reads of personal records as a principal: the one home of "may this caller read it" and "it is recorded".

Routes and pages call these with the principal their one dependency produced; each function checks the
rights table, reads through the existing services (reading, searching, exports: wrapped, not rewritten),
then appends an ``access.read`` entry through the group-committing recorder and returns only once that
entry is committed. A read that finds nothing (404) reads no record and is not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.container import Services
from api.services import exports as export_service
from api.services import reading, searching
from api.services.access import Principal, Role, authorize, require_purpose
from api.services.access_errors import InvalidAccessRequestError
from api.services.access_recorder import recorder
from audit.access_payload import AccessPayloadError, AccessRead
from audit.entry import StoredEntry, parse_timestamp
from storage.access_store import ExportGrant
from storage.errors import NotFoundError

MAX_LOG = 1000


def record_read(
    services: Services,
    principal: Principal,
    action: str,
    *,
    target: dict[str, Any],
    decisions: Iterable[tuple[str, str | None]] = (),
    subjects: Iterable[str] = (),
) -> int:
    """Append the access entry of one read and wait for its commit; returns its ledger index."""
    pairs = list(dict.fromkeys(decisions))
    subject_refs = list(dict.fromkeys([*(s for _, s in pairs if s), *subjects]))
    read = AccessRead(
        key_id=principal.key_id,
        owner=principal.owner,
        role=principal.role.value,
        action=action,
        purpose=principal.purpose,
        target=target,
        decision_ids=tuple(d for d, _ in pairs),
        subject_refs=tuple(subject_refs),
    )
    index: list[tuple[str | None, str | None]] = [(s, d) for d, s in pairs] + [(s, None) for s in subjects]
    if not index:
        index = [(None, None)]
    return recorder(services).record(read, index=index)


def _guard(principal: Principal, action: str) -> None:
    authorize(principal, action)
    require_purpose(principal)


def read_decision(
    services: Services, principal: Principal, decision_id: str, *, via: str = "api"
) -> reading.DecisionView:
    """A decision with its explanations (``decisions.read``); recorded as ``decision.read`` or ``dossier.read``."""
    _guard(principal, "decisions.read")
    view = reading.read_decision(services, decision_id)
    record_read(
        services,
        principal,
        "dossier.read" if via == "review" else "decision.read",
        target={"decision_id": decision_id, "explanations": [e.id for e, _ in view.explanations]},
        decisions=[(view.record.decision_id, view.record.subject_ref)],
    )
    return view


def search_decisions(
    services: Services, principal: Principal, query: searching.DecisionQuery, *, via: str = "api"
) -> tuple[list[reading.SearchHit], str | None]:
    """One page of a search; the entry names the filter and every decision and subject on the page."""
    _guard(principal, "decisions.search")
    items, next_cursor = searching.search_decisions(services, query)
    filters = {
        "model": query.model,
        "subject_ref": query.subject_ref,
        "outcome": query.outcome,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "cursor": query.cursor,
        "limit": query.limit,
    }
    record_read(
        services,
        principal,
        "search.review" if via == "review" else "search.api",
        target={"query": {k: v for k, v in filters.items() if v is not None}},
        decisions=[(r.record.decision_id, r.record.subject_ref) for r in items],
        subjects=[query.subject_ref] if query.subject_ref else [],
    )
    return items, next_cursor


def read_ledger_entry(services: Services, principal: Principal, index: int) -> StoredEntry:
    """An entry's bytes hold personal data (inputs, subject): readable by compliance, and recorded."""
    _guard(principal, "ledger.entries.read")
    with services.db.unit_of_work(write=False) as uow:
        stored = uow.ledger.read(index)
    payload = stored.payload
    decision_id = payload.get("decision_id") if isinstance(payload.get("decision_id"), str) else None
    subject = payload.get("subject_ref") if isinstance(payload.get("subject_ref"), str) else None
    record_read(
        services,
        principal,
        "ledger.entry",
        target={"index": index, "type": stored.type},
        decisions=[(decision_id, subject)] if decision_id else [],
        subjects=[subject] if subject and not decision_id else [],
    )
    return stored


# exports: owner and audience


@dataclass(frozen=True, slots=True)
class SharedExport:
    record: export_service.ExportRecord
    grant: ExportGrant | None  # None: made before access control (or by the CLI): no owner, no audience


def _check_audience(services: Services, audience: list[str]) -> tuple[str, ...]:
    with services.db.unit_of_work(write=False) as uow:
        for position, key_id in enumerate(audience):
            record = uow.access.get_key(key_id)
            if record is None or record.role != Role.REGULATOR.value:
                raise InvalidAccessRequestError(
                    f"audience key {key_id!r} is not a regulator key", path=f"audience[{position}]"
                )
    return tuple(dict.fromkeys(audience))


def _filter_subjects(flt: dict[str, Any]) -> tuple[list[tuple[str, str | None]], list[str]]:
    decisions: list[tuple[str, str | None]] = [(d, None) for d in flt.get("decision_ids") or [] if isinstance(d, str)]
    subjects = [s for s in flt.get("subject_refs") or [] if isinstance(s, str)]
    return decisions, subjects


def create_export(
    services: Services,
    principal: Principal,
    flt: export_service.ExportFilter,
    *,
    audience: list[str] | None = None,
    via: str = "api",
) -> SharedExport:
    """Build a bundle owned by the caller and downloadable by the ``audience`` regulator keys."""
    _guard(principal, "exports.create")
    shared = _check_audience(services, audience or [])
    record = export_service.create_export(services, flt=flt, requested_by=via)
    grant = ExportGrant(record.export_id, principal.key_id, principal.owner, services.clock(), shared)
    with services.db.unit_of_work() as uow:
        uow.access.add_grant(grant)
    decisions, subjects = _filter_subjects(record.filter)
    record_read(
        services,
        principal,
        "export.create",
        target={"export_id": record.export_id, "filter": record.filter, "audience": list(shared)},
        decisions=decisions,
        subjects=subjects,
    )
    return SharedExport(record, grant)


def _visible(services: Services, principal: Principal, export_id: str) -> SharedExport:
    record = export_service.read_export(services, export_id)
    with services.db.unit_of_work(write=False) as uow:
        grant = uow.access.get_grant(export_id)
    if principal.role == Role.REGULATOR and (grant is None or principal.key_id not in grant.audience):
        raise NotFoundError(f"export {export_id!r} does not exist")  # a regulator does not learn others exist
    return SharedExport(record, grant)


def read_export(services: Services, principal: Principal, export_id: str, *, download: bool = False) -> SharedExport:
    """Describe (or hand over) an export; a regulator sees only exports whose audience names its key."""
    _guard(principal, "exports.read")
    shared = _visible(services, principal, export_id)
    decisions, subjects = _filter_subjects(shared.record.filter)
    record_read(
        services,
        principal,
        "export.download" if download else "export.read",
        target={"export_id": export_id, "bundle_sha256": shared.record.bundle_sha256},
        decisions=decisions,
        subjects=subjects,
    )
    return shared


def list_exports(services: Services, principal: Principal) -> list[ExportGrant]:
    """Exports with an owner, newest first: a regulator's list holds only those shared with it. A list names
    exports and owners, no personal record, so it needs no purpose and is not recorded."""
    authorize(principal, "exports.read")
    with services.db.unit_of_work(write=False) as uow:
        if principal.role == Role.REGULATOR:
            return uow.access.grants(audience=principal.key_id)
        return uow.access.grants()


# the access log


@dataclass(frozen=True, slots=True)
class AccessLogItem:
    ledger_index: int
    recorded_at: datetime
    read: AccessRead


def access_log(
    services: Services,
    principal: Principal,
    *,
    subject_ref: str | None = None,
    decision_id: str | None = None,
    limit: int = 100,
) -> list[AccessLogItem]:
    """Who read this person's (or decision's) records, when and why: read from the ledger entries, which the
    access index only points at. An index row pointing at an entry that is not such a read is refused."""
    authorize(principal, "access.log")
    if subject_ref is None and decision_id is None:
        raise InvalidAccessRequestError("give subject_ref or decision_id", path="subject_ref")
    with services.db.unit_of_work(write=False) as uow:
        indexes = uow.access.entries_for(subject_ref=subject_ref, decision_id=decision_id, limit=min(limit, MAX_LOG))
        entries = [uow.ledger.read(i) for i in indexes]
    items = []
    for entry in entries:
        if entry.type != AccessRead.TYPE:
            raise AccessPayloadError(f"access index points at ledger entry {entry.index}, which is not an access read")
        read = AccessRead.from_dict(entry.payload)
        named = (subject_ref is None or subject_ref in read.subject_refs) and (
            decision_id is None or decision_id in read.decision_ids
        )
        if not named:
            raise AccessPayloadError(f"access index row for entry {entry.index} names what the entry does not")
        items.append(AccessLogItem(entry.index, parse_timestamp(entry.recorded_at), read))
    record_read(
        services,
        principal,
        "access.log",
        target={"subject_ref": subject_ref, "decision_id": decision_id, "entries": len(items)},
        decisions=[(decision_id, None)] if decision_id else [],
        subjects=[subject_ref] if subject_ref else [],
    )
    return items
