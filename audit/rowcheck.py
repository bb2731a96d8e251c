"""Rows are an index; the ledger is the record: compare a database row with the entry it points at.

Pure code over plain mappings (a row is ``{column: value}`` as the database returns it; an entry is its
stored canonical bytes), shared by ``rationale verify`` (every row) and the read path (the rows served).
Each ``check_*`` returns the names of the row's fields that say something other than the entry, so a
reader can name them; an entry of the wrong type, or bytes that do not parse, is a mismatch of the field
``ledger_index`` (the row points at the wrong place).

Fields that are not facts are deliberately not compared: a decision's ``seq`` (storage order, the search
cursor) and a job's operational state (lease, attempts, timestamps). A job that finished is bound to the
explanation entry that records its result (see ``check_job``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit.canonical import canonical_bytes
from audit.entry import format_timestamp
from audit.errors import NonCanonicalValueError
from audit.payloads import (
    DecisionRecorded,
    ExplanationRecorded,
    ModelRegistered,
    OutcomeRecorded,
    PayloadError,
)

TABLE_ENTRY_TYPES: dict[str, tuple[str, ...]] = {
    "model_versions": ModelRegistered.TYPES,
    "decisions": DecisionRecorded.TYPES,
    "explanations": ExplanationRecorded.TYPES,
    "outcomes": OutcomeRecorded.TYPES,
}
ENTRY_TABLES: dict[str, str] = {t: table for table, types in TABLE_ENTRY_TYPES.items() for t in types}
JOB_ERROR_LIMIT = 4000  # the jobs table keeps this much of a failure's message

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """An entry's document read from its stored bytes (index, type, recorded_at, payload)."""

    index: int
    type: str
    recorded_at: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowMismatch:
    """A row that does not say what its entry says: the table, the row's key, the entry, the fields."""

    table: str
    key: str
    index: int | None  # the entry the row points at (None: it points nowhere)
    fields: tuple[str, ...]
    message: str


def parse_entry(index: int, canonical: bytes | None) -> ParsedEntry | None:
    """The document of stored entry bytes, or None when they are absent or are not an entry document."""
    if canonical is None:
        return None
    try:
        doc = json.loads(canonical)
    except (ValueError, TypeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("payload"), dict):
        return None
    kind, stamp = doc.get("type"), doc.get("recorded_at")
    if doc.get("index") != index or not isinstance(kind, str) or not isinstance(stamp, str):
        return None
    return ParsedEntry(index, kind, stamp, doc["payload"])


def entry_columns_match(canonical: bytes, entry_type: Any, recorded_at: Any) -> bool:
    """Do the ledger row's ``entry_type`` and ``recorded_at`` columns say what its bytes say?

    RFC 8785 orders the top-level members index < payload < recorded_at < type, so in an entry's bytes
    those two are the document's last members: comparing the suffix is exact and needs no parse.
    """
    if not isinstance(entry_type, str) or not isinstance(recorded_at, str) or not isinstance(canonical, bytes):
        return False
    try:
        suffix = b',"recorded_at":' + canonical_bytes(recorded_at) + b',"type":' + canonical_bytes(entry_type) + b"}"
    except NonCanonicalValueError:
        return False
    return canonical.endswith(suffix)


def same_json(a: Any, b: Any) -> bool:
    """JSON equality as the ledger means it: numbers by value (2 == 2.0, as RFC 8785 spells both "2"),
    but true is not 1, a string is not a number, and objects compare member by member."""
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is str and type(b) is str and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return False


def _stamp(value: Any) -> str | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return format_timestamp(value)
    return None


def _differing(pairs: Mapping[str, tuple[Any, Any]]) -> tuple[str, ...]:
    return tuple(name for name, (row_value, entry_value) in pairs.items() if not same_json(row_value, entry_value))


def _typed(entry: ParsedEntry | None, table: str) -> ParsedEntry | None:
    return entry if entry is not None and entry.type in TABLE_ENTRY_TYPES[table] else None


def check_model(row: Row, entry: ParsedEntry | None) -> tuple[str, ...]:
    """A ``model_versions`` row against its ``model.registered`` entry."""
    entry = _typed(entry, "model_versions")
    if entry is None:
        return ("ledger_index",)
    try:
        p = ModelRegistered.from_payload(entry.payload)
    except PayloadError:
        return ("ledger_index",)
    return _differing(
        {
            "name": (row.get("name"), p.name),
            "version": (row.get("version"), p.model_version),
            "task": (row.get("task"), p.task),
            "manifest": (row.get("manifest"), p.manifest),
            "artifact_sha256": (row.get("artifact_sha256"), p.artifact_sha256),
            "artifact_format": (row.get("artifact_format"), p.artifact_format),
            "background_sha256": (row.get("background_sha256"), p.background_sha256),
            "trusted_pickle": (row.get("trusted_pickle"), p.trusted_pickle),
            "registered_at": (_stamp(row.get("registered_at")), entry.recorded_at),
        }
    )


def check_decision(row: Row, entry: ParsedEntry | None, *, model_ref: str | None) -> tuple[str, ...]:
    """A ``decisions`` row against its ``decision.recorded`` entry; ``model_ref`` is the name@version of
    the model row that ``model_version_id`` names (None when there is none)."""
    entry = _typed(entry, "decisions")
    if entry is None:
        return ("ledger_index",)
    try:
        p = DecisionRecorded.from_payload(entry.payload)
    except PayloadError:
        return ("ledger_index",)
    return _differing(
        {
            "decision_id": (row.get("decision_id"), p.decision_id),
            "model_ref": (row.get("model_ref"), p.model),
            "model_version_id": (model_ref, p.model),
            "inputs": (row.get("inputs"), p.inputs),
            "output": (row.get("output"), p.output),
            "client_output": (row.get("client_output"), p.client_output),
            "output_mismatch": (row.get("output_mismatch"), p.output_mismatch is not None),
            "subject_ref": (row.get("subject_ref"), p.subject_ref),
            "occurred_at": (_stamp(row.get("occurred_at")), p.occurred_at),
            "recorded_at": (_stamp(row.get("recorded_at")), entry.recorded_at),
            "context": (row.get("context"), p.context),
            "body_sha256": (row.get("body_sha256"), p.body_sha256),
        }
    )


def check_explanation(row: Row, entry: ParsedEntry | None) -> tuple[str, ...]:
    """An ``explanations`` row (whose ``body`` is the entry's whole payload) against its entry."""
    entry = _typed(entry, "explanations")
    if entry is None:
        return ("ledger_index",)
    try:
        p = ExplanationRecorded.from_payload(entry.payload, entry_type=entry.type)
    except PayloadError:
        return ("ledger_index",)
    return _differing(
        {
            "id": (row.get("id"), p.explanation_id),
            "decision_id": (row.get("decision_id"), p.decision_id),
            "method": (row.get("method"), p.method),
            "params_hash": (row.get("params_hash"), p.params_hash),
            "status": (row.get("status"), p.status),
            "body": (row.get("body"), entry.payload),
            "created_at": (_stamp(row.get("created_at")), entry.recorded_at),
            "job_id": (row.get("job_id"), p.job_id),
        }
    )


def check_outcome(row: Row, entry: ParsedEntry | None) -> tuple[str, ...]:
    """An ``outcomes`` row against its ``outcome.recorded`` entry."""
    entry = _typed(entry, "outcomes")
    if entry is None:
        return ("ledger_index",)
    try:
        p = OutcomeRecorded.from_payload(entry.payload)
    except PayloadError:
        return ("ledger_index",)
    return _differing(
        {
            "decision_id": (row.get("decision_id"), p.decision_id),
            "label": (row.get("label"), p.label),
            "body": (row.get("body"), p.outcome),
            "recorded_at": (_stamp(row.get("recorded_at")), entry.recorded_at),
        }
    )


def check_job(row: Row | None, entry: ParsedEntry) -> tuple[str, ...]:
    """The job an explanation entry names, against that entry.

    A job is operational state: while queued or running it is a request, not a fact, and its lease,
    attempts and timestamps are bookkeeping. Once its result is in the ledger the job must agree with it:
    finished in the same way, for the same decision, method and parameters, pointing at the explanation.
    Returns ``("id",)`` when the job is missing.
    """
    try:
        p = ExplanationRecorded.from_payload(entry.payload, entry_type=entry.type)
    except PayloadError:
        return ()  # the explanation's own check names the entry
    if row is None:
        return ("id",)
    pairs: dict[str, tuple[Any, Any]] = {
        "state": (row.get("state"), p.status),
        "decision_id": (row.get("decision_id"), p.decision_id),
        "method": (row.get("method"), p.method),
        "params_hash": (row.get("params_hash"), p.params_hash),
        "params": (row.get("params"), p.requested_params),
        "target": (row.get("target"), p.requested_target),
    }
    if p.succeeded:
        pairs["explanation_id"] = (row.get("explanation_id"), p.explanation_id)
    else:
        pairs["error"] = (row.get("error"), (p.error or "")[:JOB_ERROR_LIMIT])
    return _differing(pairs)


def describe(table: str, key: str, index: int | None, fields: tuple[str, ...], entry: ParsedEntry | None) -> str:
    """One line naming the row and the entry, for logs, pages and ``rationale verify``."""
    if index is None:
        return f"{table} row {key} points at no ledger entry"
    if fields == ("ledger_index",):
        what = f"of type {entry.type}" if entry is not None else "that is missing or unreadable"
        return f"{table} row {key} points at ledger entry {index}, {what}, not its own record"
    return f"{table} row {key} differs from ledger entry {index} in: {', '.join(fields)}"
