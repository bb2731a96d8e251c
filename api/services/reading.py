"""Reading what the API and pages serve, bound to the ledger: rows are an index, entries are the record.

Every row served (model version, decision, explanation, outcome, and a finished job) is compared with the
entry it points at (``audit.rowcheck``). When they differ the client gets the entry's values (the record,
never the edit), and the mismatch is not silent: it is listed in the response's ``integrity`` (table, row
key, entry index, fields), counted in ``rationale_row_mismatches_total`` and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from api.container import Services
from audit.entry import StoredEntry, parse_timestamp
from audit.errors import AuditError
from audit.payloads import DecisionRecorded, ExplanationRecorded, ModelRegistered, OutcomeRecorded, PayloadError
from audit.rowcheck import (
    ParsedEntry,
    RowMismatch,
    check_decision,
    check_explanation,
    check_job,
    check_model,
    check_outcome,
    describe,
    parse_entry,
)
from explain.reasons import reasons_for
from explain.results import ExplanationResult
from explain.schema import ModelSpec
from storage.db import UnitOfWork
from storage.errors import NotFoundError
from storage.records import DecisionRecord, ExplanationRecord, JobRecord, ModelVersionRecord

log = logging.getLogger("rationale.integrity")


@dataclass(frozen=True, slots=True)
class LedgerPlace:
    index: int
    leaf_hash: str


@dataclass(frozen=True, slots=True)
class DecisionView:
    record: DecisionRecord  # the entry's values wherever the row differs from them
    leaf_hash: str
    explanations: list[tuple[ExplanationRecord, str]]
    jobs: list[JobRecord]
    reasons: dict[str, Any] | None
    mismatches: tuple[RowMismatch, ...] = ()
    outcome_ledger: LedgerPlace | None = None
    model: ModelVersionRecord | None = None


@dataclass(frozen=True, slots=True)
class ModelView:
    record: ModelVersionRecord
    leaf_hash: str | None
    mismatches: tuple[RowMismatch, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: the decision as its entry records it, where it sits, and any row mismatch."""

    record: DecisionRecord
    leaf_hash: str | None
    mismatches: tuple[RowMismatch, ...] = ()
    outcome_ledger: LedgerPlace | None = None

    # the attributes the search page reads, as the record has them
    @property
    def decision_id(self) -> str:
        return self.record.decision_id

    @property
    def model_ref(self) -> str:
        return self.record.model_ref

    @property
    def occurred_at(self) -> Any:
        return self.record.occurred_at

    @property
    def output(self) -> dict[str, Any]:
        return self.record.output

    @property
    def subject_ref(self) -> str | None:
        return self.record.subject_ref

    @property
    def ledger_index(self) -> int:
        return self.record.ledger_index


def report_mismatches(services: Services, mismatches: Iterable[RowMismatch]) -> None:
    """Make a mismatch loud: a metric per table and a log line naming row and entry."""
    for mismatch in mismatches:
        services.metrics.row_mismatches.labels(mismatch.table).inc()
        log.warning("integrity: %s", mismatch.message)


def _entry(uow: UnitOfWork, index: int) -> StoredEntry | None:
    try:
        return uow.ledger.read(index)
    except AuditError:  # missing, or a corrupt row (CorruptRowError): the mismatch names it, never a 500
        return None


def _parsed(entry: StoredEntry | None, index: int) -> ParsedEntry | None:
    return parse_entry(index, entry.canonical) if entry is not None else None


def _mismatch(
    table: str, key: str, index: int, fields: tuple[str, ...], parsed: ParsedEntry | None
) -> tuple[RowMismatch, ...]:
    return (RowMismatch(table, key, index, fields, describe(table, key, index, fields, parsed)),) if fields else ()


def _model_row(record: ModelVersionRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "task": record.task,
        "manifest": record.manifest,
        "artifact_sha256": record.artifact_sha256,
        "artifact_format": record.artifact_format,
        "background_sha256": record.background_sha256,
        "trusted_pickle": record.trusted_pickle,
        "registered_at": record.registered_at,
    }


def bind_model(
    record: ModelVersionRecord, entry: StoredEntry | None
) -> tuple[ModelVersionRecord, tuple[RowMismatch, ...]]:
    """The model version as its entry records it, and the row's mismatches."""
    parsed = _parsed(entry, record.ledger_index)
    fields = check_model(_model_row(record), parsed)
    found = _mismatch("model_versions", f"id={record.id!r}", record.ledger_index, fields, parsed)
    if not fields or fields == ("ledger_index",) or parsed is None:
        return record, found
    p = ModelRegistered.from_payload(parsed.payload)
    fixed = replace(
        record,
        name=p.name,
        version=p.model_version,
        task=p.task,
        manifest=p.manifest,
        artifact_sha256=p.artifact_sha256,
        artifact_format=p.artifact_format,
        background_sha256=p.background_sha256,
        trusted_pickle=p.trusted_pickle,
        registered_at=parse_timestamp(parsed.recorded_at),
    )
    return fixed, found


def _decision_row(record: DecisionRecord) -> dict[str, Any]:
    return {
        "decision_id": record.decision_id,
        "model_ref": record.model_ref,
        "inputs": record.inputs,
        "output": record.output,
        "client_output": record.client_output,
        "output_mismatch": record.output_mismatch,
        "subject_ref": record.subject_ref,
        "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at,
        "context": record.context,
        "body_sha256": record.body_sha256,
    }


def bind_decision(
    record: DecisionRecord, entry: StoredEntry | None, *, model_ref: str | None
) -> tuple[DecisionRecord, tuple[RowMismatch, ...]]:
    """The decision as its entry records it (outcome untouched), and the row's mismatches."""
    parsed = _parsed(entry, record.ledger_index)
    fields = check_decision(_decision_row(record), parsed, model_ref=model_ref)
    found = _mismatch("decisions", f"decision_id={record.decision_id!r}", record.ledger_index, fields, parsed)
    if not fields or fields == ("ledger_index",) or parsed is None:
        return record, found
    p = DecisionRecorded.from_payload(parsed.payload)
    fixed = replace(
        record,
        decision_id=p.decision_id,
        model_ref=p.model,
        inputs=p.inputs,
        output=p.output,
        client_output=p.client_output,
        output_mismatch=p.output_mismatch is not None,
        subject_ref=p.subject_ref,
        occurred_at=parse_timestamp(p.occurred_at),
        recorded_at=parse_timestamp(parsed.recorded_at),
        context=p.context,
        body_sha256=p.body_sha256,
    )
    return fixed, found


def _explanation_row(record: ExplanationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "decision_id": record.decision_id,
        "method": record.method,
        "params_hash": record.params_hash,
        "status": record.status,
        "body": record.body,
        "created_at": record.created_at,
        "job_id": record.job_id,
    }


def bind_explanation(
    record: ExplanationRecord, entry: StoredEntry | None
) -> tuple[ExplanationRecord, ParsedEntry | None, tuple[RowMismatch, ...]]:
    parsed = _parsed(entry, record.ledger_index)
    fields = check_explanation(_explanation_row(record), parsed)
    found = _mismatch("explanations", f"id={record.id!r}", record.ledger_index, fields, parsed)
    if not fields:
        return record, parsed, found
    if fields == ("ledger_index",) or parsed is None:
        return record, None, found
    p = ExplanationRecorded.from_payload(parsed.payload, entry_type=parsed.type)
    fixed = replace(
        record,
        id=p.explanation_id,
        decision_id=p.decision_id,
        method=p.method,
        params_hash=p.params_hash,
        status=p.status,
        body=dict(parsed.payload),
        created_at=parse_timestamp(parsed.recorded_at),
        job_id=p.job_id,
    )
    return fixed, parsed, found


def bind_outcome(
    decision_id: str, row: dict[str, Any] | None, entry: StoredEntry | None
) -> tuple[dict[str, Any] | None, tuple[RowMismatch, ...]]:
    """The outcome as its entry records it, and the row's mismatches."""
    if row is None:
        return None, ()
    index = int(row["ledger_index"])
    parsed = _parsed(entry, index)
    fields = check_outcome({**row, "decision_id": decision_id}, parsed)
    found = _mismatch("outcomes", f"decision_id={decision_id!r}", index, fields, parsed)
    if fields and fields != ("ledger_index",) and parsed is not None:
        try:
            return OutcomeRecorded.from_payload(parsed.payload).outcome, found
        except PayloadError:
            pass
    return row["body"], found


def _jobs_bound(jobs: Sequence[JobRecord], entries: Sequence[ParsedEntry]) -> tuple[RowMismatch, ...]:
    """Finished jobs against the explanation entries of the same decision that record them."""
    by_job = {e.payload.get("job_id"): e for e in entries}
    found: list[RowMismatch] = []
    for job in jobs:
        entry = by_job.get(job.id)
        key = f"id={job.id!r}"
        if entry is None:
            if job.state in ("succeeded", "failed"):
                message = f"jobs row {key} is marked {job.state} but no explanation entry records its result"
                found.append(RowMismatch("jobs", key, None, ("state",), message))
            continue
        row = {
            "id": job.id,
            "state": job.state,
            "decision_id": job.decision_id,
            "method": job.method,
            "params_hash": job.params_hash,
            "params": job.params,
            "target": job.target,
            "explanation_id": job.explanation_id,
            "error": job.error,
        }
        fields = check_job(row, entry)
        if fields:
            message = f"jobs row {key} differs from ledger entry {entry.index} in: {', '.join(fields)}"
            found.append(RowMismatch("jobs", key, entry.index, fields, message))
    present = {job.id for job in jobs}
    for job_id, entry in by_job.items():
        if isinstance(job_id, str) and job_id not in present:
            key = f"id={job_id!r}"
            message = f"jobs row {key} is missing; ledger entry {entry.index} records its result"
            found.append(RowMismatch("jobs", key, entry.index, ("id",), message))
    return tuple(found)


def read_decision(services: Services, decision_id: str) -> DecisionView:
    """The decision, its explanations, outcome and jobs, each checked against its entry.

    Raises NotFoundError when no decision row has this id.
    """
    with services.db.unit_of_work(write=False) as uow:
        row = uow.decisions.get(decision_id)
        if row is None:
            raise NotFoundError(f"decision {decision_id!r} is not recorded")
        model_row = uow.models.get_by_id(row.model_version_id)
        mismatches: list[RowMismatch] = []
        model: ModelVersionRecord | None = None
        model_ref: str | None = None
        if model_row is not None:
            model, found = bind_model(model_row, _entry(uow, model_row.ledger_index))
            mismatches.extend(found)
            model_ref = model.ref if not found or found[0].fields != ("ledger_index",) else None
        decision_entry = _entry(uow, row.ledger_index)
        record, found = bind_decision(row, decision_entry, model_ref=model_ref)
        mismatches.extend(found)
        explanations: list[tuple[ExplanationRecord, str]] = []
        parsed_entries: list[ParsedEntry] = []
        for stored in uow.explanations.for_decision(decision_id):
            entry = _entry(uow, stored.ledger_index)
            bound, parsed, found = bind_explanation(stored, entry)
            mismatches.extend(found)
            if parsed is not None:
                parsed_entries.append(parsed)
            explanations.append((bound, entry.leaf_hash.hex() if entry is not None else ""))
        jobs = uow.jobs.for_decision(decision_id)
        mismatches.extend(_jobs_bound(jobs, parsed_entries))
        outcome_row = uow.outcomes.get(decision_id)
        outcome_ledger: LedgerPlace | None = None
        if outcome_row is not None:
            outcome_entry = _entry(uow, int(outcome_row["ledger_index"]))
            outcome, found = bind_outcome(decision_id, outcome_row, outcome_entry)
            mismatches.extend(found)
            record = replace(record, outcome=outcome)
            if outcome_entry is not None:
                outcome_ledger = LedgerPlace(outcome_entry.index, outcome_entry.leaf_hash.hex())
    report_mismatches(services, mismatches)
    reasons = None
    if model is not None:
        reasons = build_reasons(services, model.manifest, record, [e for e, _ in explanations])
    return DecisionView(
        record=record,
        leaf_hash=decision_entry.leaf_hash.hex() if decision_entry is not None else "",
        explanations=explanations,
        jobs=jobs,
        reasons=reasons,
        mismatches=tuple(mismatches),
        outcome_ledger=outcome_ledger,
        model=model,
    )


def read_model(services: Services, name: str, version: str) -> ModelView | None:
    """One model version checked against its entry; None when no row has that name and version."""
    with services.db.unit_of_work(write=False) as uow:
        row = uow.models.get(name, version)
        if row is None:
            return None
        entry = _entry(uow, row.ledger_index)
    record, found = bind_model(row, entry)
    report_mismatches(services, found)
    return ModelView(record, entry.leaf_hash.hex() if entry is not None else None, found)


def list_models(services: Services, *, name: str | None = None) -> list[ModelView]:
    """Every model version (optionally of one name), each checked against its entry."""
    views: list[ModelView] = []
    with services.db.unit_of_work(write=False) as uow:
        rows = uow.models.list(name=name)
        entries = {r.ledger_index: _entry(uow, r.ledger_index) for r in rows}
    for row in rows:
        entry = entries[row.ledger_index]
        record, found = bind_model(row, entry)
        report_mismatches(services, found)
        views.append(ModelView(record, entry.leaf_hash.hex() if entry is not None else None, found))
    return views


def build_reasons(
    services: Services,
    manifest: dict[str, Any],
    record: DecisionRecord,
    explanations: list[ExplanationRecord],
) -> dict[str, Any] | None:
    """Plain-language reasons from the newest successful explanation of each kind."""
    latest: dict[str, ExplanationResult] = {}
    for e in sorted(explanations, key=lambda e: e.ledger_index):
        if e.status == "succeeded":
            try:
                latest[e.method] = ExplanationResult.from_dict(e.body)
            except (KeyError, TypeError, ValueError):
                continue  # a body that is not a result (the integrity report names it)
    if not latest:
        return None
    spec = ModelSpec.from_dict(manifest)
    attribution = latest.get("shap") or latest.get("lime")
    reasons = reasons_for(
        spec,
        record.inputs,
        attributions=attribution,
        anchor=latest.get("anchors"),
        counterfactuals=latest.get("counterfactuals"),
        templates=manifest.get("templates") or None,
    )
    result: dict[str, Any] = reasons.to_dict()
    return result
