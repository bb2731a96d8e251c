"""Streaming every row that indexes a ledger entry, with that entry's bytes, for ``rationale verify``.

Rows come out as plain dicts keyed by column name, in primary-key batches, each joined to its entry by the
entry's primary key (one index lookup per row, done by the database). JSON and (on SQLite) timestamp columns
are read as text and parsed here, so a value an attacker wrote that no longer parses is reported as a
mismatch instead of stopping the scan; such a value comes out as ``UNREADABLE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Column, DateTime, Select, String, Table, Text, and_, exists, select, type_coerce
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from audit.entry import StoredEntry
from storage.tables import DecisionRow, ExplanationRow, JobRow, LedgerEntryRow, ModelVersionRow, OutcomeRow

BATCH = 5_000
UNREADABLE = object()  # a stored value that cannot be read as its column's type

_TABLES: dict[str, Table] = {
    "model_versions": cast(Table, ModelVersionRow.__table__),
    "decisions": cast(Table, DecisionRow.__table__),
    "explanations": cast(Table, ExplanationRow.__table__),
    "outcomes": cast(Table, OutcomeRow.__table__),
}
_KEYS = {"model_versions": "id", "decisions": "seq", "explanations": "id", "outcomes": "decision_id"}
_ENTRIES = cast(Table, LedgerEntryRow.__table__)
_JOBS = cast(Table, JobRow.__table__)


def _json(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return UNREADABLE


def _sqlite_time(text: Any) -> Any:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    except ValueError:
        return UNREADABLE


def _columns(table: Table, sqlite: bool, prefix: str = "") -> tuple[list[Any], dict[str, Any]]:
    """Selectable columns (JSON as text; SQLite timestamps as text) and a parser per column label."""
    selected: list[Any] = []
    parsers: dict[str, Any] = {}
    for column in table.columns:
        label = f"{prefix}{column.name}"
        col: Column[Any] = column
        if isinstance(column.type, JSON):
            selected.append(sql_cast(col, Text).label(label))
            parsers[label] = _json
        elif sqlite and isinstance(getattr(column.type, "impl", None), DateTime):
            selected.append(type_coerce(col, String).label(label))
            parsers[label] = _sqlite_time
        else:
            selected.append(col.label(label))
    return selected, parsers


def _stream(session: Session, query: Select[Any], key: Any, parsers: dict[str, Any]) -> Iterator[dict[str, Any]]:
    last: Any = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = session.execute(page.order_by(key).limit(BATCH)).mappings().all()
        for row in rows:
            item = dict(row)
            for label, parse in parsers.items():
                item[label] = parse(item[label])
            yield item
        if len(rows) < BATCH:
            return
        last = rows[-1]["__key"]


def iter_rows_with_entries(session: Session, table_name: str) -> Iterator[dict[str, Any]]:
    """Every row of ``table_name`` with ``entry.canonical`` (None when no entry has its ledger_index);
    explanation rows also carry their job's columns as ``job.<column>`` (all None when there is no job)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    table = _TABLES[table_name]
    columns, parsers = _columns(table, sqlite)
    key = table.c[_KEYS[table_name]]
    query = select(*columns, key.label("__key"), _ENTRIES.c.canonical.label("entry.canonical")).select_from(
        table.outerjoin(_ENTRIES, _ENTRIES.c.idx == table.c.ledger_index)
    )
    if table_name == "explanations":
        job_columns, job_parsers = _columns(_JOBS, sqlite, prefix="job.")
        parsers.update(job_parsers)
        query = query.add_columns(*job_columns).outerjoin(_JOBS, _JOBS.c.id == table.c.job_id)
    for item in _stream(session, query, key, parsers):
        canonical = item["entry.canonical"]
        item["entry.canonical"] = bytes(canonical) if canonical is not None else None
        yield item


def iter_entry_heads(session: Session) -> Iterator[tuple[int, Any, Any, bytes]]:
    """Every ledger row's (idx, entry_type, recorded_at, canonical), in index order."""
    query = select(_ENTRIES.c.idx, _ENTRIES.c.entry_type, _ENTRIES.c.recorded_at, _ENTRIES.c.canonical)
    last = -1
    while True:
        rows = session.execute(query.where(_ENTRIES.c.idx > last).order_by(_ENTRIES.c.idx).limit(BATCH * 4)).all()
        for idx, entry_type, recorded_at, canonical in rows:
            yield int(idx), entry_type, recorded_at, bytes(canonical) if canonical is not None else b""
        if len(rows) < BATCH * 4:
            return
        last = int(rows[-1][0])


def finished_jobs_without_explanation(session: Session) -> list[tuple[str, str]]:
    """(job id, state) of jobs marked succeeded or failed that no explanation row records."""
    explanations = _TABLES["explanations"]
    recorded = exists().where(
        and_(explanations.c.decision_id == _JOBS.c.decision_id, explanations.c.job_id == _JOBS.c.id)
    )
    query = select(_JOBS.c.id, _JOBS.c.state).where(_JOBS.c.state.in_(("succeeded", "failed")), ~recorded)
    return [(str(job_id), str(state)) for job_id, state in session.execute(query.order_by(_JOBS.c.id))]


def read_entries(session: Session, indexes: Sequence[int]) -> dict[int, StoredEntry]:
    """The entries at ``indexes`` in one primary-key read per 500 (a search page's decisions and outcomes)."""
    wanted = sorted(set(indexes))
    found: dict[int, StoredEntry] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(
                _ENTRIES.c.idx,
                _ENTRIES.c.entry_type,
                _ENTRIES.c.recorded_at,
                _ENTRIES.c.canonical,
                _ENTRIES.c.leaf_hash,
            ).where(_ENTRIES.c.idx.in_(wanted[start : start + 500]))
        )
        for idx, entry_type, recorded_at, canonical, leaf in rows:
            found[int(idx)] = StoredEntry(int(idx), entry_type, recorded_at, bytes(canonical), bytes(leaf))
    return found


def outcome_rows(session: Session, decision_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The outcome rows of these decisions (body, label, ledger_index, recorded_at), by decision id."""
    outcomes = _TABLES["outcomes"]
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(decision_ids))
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(
                outcomes.c.decision_id,
                outcomes.c.body,
                outcomes.c.label,
                outcomes.c.ledger_index,
                outcomes.c.recorded_at,
            ).where(outcomes.c.decision_id.in_(ids[start : start + 500]))
        ).mappings()
        for row in rows:
            found[str(row["decision_id"])] = {k: row[k] for k in ("body", "label", "ledger_index", "recorded_at")}
    return found
