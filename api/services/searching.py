"""Finding decisions by model, subject, outcome and time: one query shared by the API and the reviewer pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.container import Services
from api.errors import InvalidRequestError
from storage.records import DecisionRecord


@dataclass(frozen=True, slots=True)
class DecisionQuery:
    """Filters as a client gives them; ``model`` is ``name`` or ``name@version``, ``cursor`` a ``next_cursor``."""

    model: str | None = None
    subject_ref: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = 100
    agreement: bool | None = None  # True: explanations agree, False: they disagree (explain/agreement.py)


def search_decisions(services: Services, query: DecisionQuery) -> tuple[list[DecisionRecord], str | None]:
    """One page of matching decisions in storage order and the cursor of the next page (None on the last).

    Raises InvalidRequestError naming the field for a foreign cursor or a time without a timezone.
    """
    after: int | None = None
    if query.cursor is not None:
        if not query.cursor.isdigit():
            raise InvalidRequestError("cursor must be a value returned as next_cursor", field="cursor")
        after = int(query.cursor)
    for name, moment in (("since", query.since), ("until", query.until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequestError(f"{name} must include a timezone, e.g. 2026-03-01T00:00:00Z", field=name)
    with services.db.unit_of_work(write=False) as uow:
        model_ids = None
        if query.model is not None:
            name, _, version = query.model.partition("@")
            model_ids = [r.id for r in uow.models.list(name=name) if not version or r.version == version]
        items, next_seq = uow.decisions.search(
            model_version_ids=model_ids,
            subject_ref=query.subject_ref,
            outcome=query.outcome,
            since=query.since,
            until=query.until,
            cursor=after,
            limit=query.limit,
            agreement=query.agreement,
        )
    return items, str(next_seq) if next_seq is not None else None
