"""Finding decisions by model, subject, outcome and time: one query shared by the API and the reviewer pages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from api.container import Services
from api.errors import InvalidRequestError
from api.params import decode_cursor, encode_cursor, ordered
from api.services.reading import LedgerPlace, SearchHit, bind_decision, bind_outcome, report_mismatches
from audit.payloads import ModelRegistered, PayloadError
from audit.rowcheck import RowMismatch, parse_entry
from storage.db import UnitOfWork
from storage.records import DecisionRecord
from storage.rowscan import leaf_hashes, outcome_rows, page_candidates, read_entries


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


def search_decisions(services: Services, query: DecisionQuery) -> tuple[list[SearchHit], str | None]:
    """One page of matching decisions in storage order and the cursor of the next page (None on the last).

    Rows are found by their (indexed) columns, then each is checked against its entry with one batched
    primary-key read per page: a row that no longer says what its entry says is served as the entry
    records it and flagged (so an edited subject_ref or outcome label that made it match is visible).

    Raises InvalidRequestError naming the field for a foreign cursor or a time without a timezone.
    """
    after = decode_cursor(query.cursor) if query.cursor is not None else None  # opaque, checksummed
    for name, moment in (("since", query.since), ("until", query.until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequestError(f"{name} must include a timezone, e.g. 2026-03-01T00:00:00Z", field=name)
    ordered(query.since, query.until)
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
        hits = _bind_page(uow, items)
    report_mismatches(services, [m for hit in hits for m in hit.mismatches])
    return hits, encode_cursor(next_seq) if next_seq is not None else None


def _bind_page(uow: UnitOfWork, items: list[DecisionRecord]) -> list[SearchHit]:
    """Check a page's rows against their entries. On SQLite the database compares the decision rows with their
    entries first (the prefilter `verify` uses) and only the rows it cannot vouch for are read back and
    compared in Python; on PostgreSQL every row of the page is (storage.rowscan.page_candidates)."""
    if not items:
        return []
    outcomes = outcome_rows(uow.session, [r.decision_id for r in items])
    model_refs: dict[int, str | None] = {}
    model_indexes: dict[int, int] = {}
    for model_id in {r.model_version_id for r in items}:
        model = uow.models.get_by_id(model_id)
        if model is not None:
            model_indexes[model_id] = model.ledger_index
    models = read_entries(uow.session, list(model_indexes.values()))
    for model_id, index in model_indexes.items():
        entry = models.get(index)
        parsed = parse_entry(index, entry.canonical) if entry is not None else None
        try:
            model_refs[model_id] = ModelRegistered.from_payload(parsed.payload).ref if parsed else None
        except PayloadError:
            model_refs[model_id] = None
    known = {k: v for k, v in model_refs.items() if v is not None}
    suspects = page_candidates(uow.session, known, [r.seq for r in items])
    doubtful = [r.ledger_index for r in items if suspects is None or r.seq in suspects]
    entries = read_entries(uow.session, doubtful + [int(o["ledger_index"]) for o in outcomes.values()])
    leaves = leaf_hashes(uow.session, [r.ledger_index for r in items])
    hits: list[SearchHit] = []
    for row in items:
        record: DecisionRecord = row
        found: tuple[RowMismatch, ...] = ()
        if suspects is None or row.seq in suspects:
            record, found = bind_decision(
                row, entries.get(row.ledger_index), model_ref=model_refs.get(row.model_version_id)
            )
        outcome_row = outcomes.get(row.decision_id)
        outcome_place: LedgerPlace | None = None
        if outcome_row is not None:
            outcome_entry = entries.get(int(outcome_row["ledger_index"]))
            outcome, outcome_found = bind_outcome(row.decision_id, outcome_row, outcome_entry)
            found += outcome_found
            record = replace(record, outcome=outcome)
            if outcome_entry is not None:
                outcome_place = LedgerPlace(outcome_entry.index, outcome_entry.leaf_hash.hex())
        leaf = leaves.get(row.ledger_index)
        hits.append(SearchHit(record, leaf.hex() if leaf is not None else None, found, outcome_place))
    return hits
