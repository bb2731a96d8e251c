"""Records to response shapes. Kept apart from routes so the CLI and reviewer pages render the same way."""

from __future__ import annotations

from collections.abc import Sequence

from api.schemas import (
    DecisionPublic,
    DecisionSummary,
    ExplanationPublic,
    IntegrityPublic,
    JobPublic,
    LedgerRef,
    ModelVersionPublic,
    RowMismatchPublic,
)
from api.services.reading import DecisionView, LedgerPlace, ModelView, SearchHit
from audit.rowcheck import RowMismatch
from storage.records import DecisionRecord, ExplanationRecord, JobRecord, ModelVersionRecord


def integrity_public(mismatches: Sequence[RowMismatch]) -> IntegrityPublic:
    return IntegrityPublic(
        status="mismatch" if mismatches else "ok",
        mismatches=[
            RowMismatchPublic(table=m.table, key=m.key, index=m.index, fields=list(m.fields), message=m.message)
            for m in mismatches
        ],
    )


def _ref(place: LedgerPlace | None) -> LedgerRef | None:
    return LedgerRef(index=place.index, leaf_hash=place.leaf_hash) if place is not None else None


def job_public(job: JobRecord) -> JobPublic:
    return JobPublic(
        job_id=job.id,
        decision_id=job.decision_id,
        method=job.method,
        state=job.state,
        attempts=job.attempts,
        error=job.error,
        explanation_id=job.explanation_id,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def model_view_public(view: ModelView) -> ModelVersionPublic:
    """A model version as its entry records it, with where it sits and whether its row agrees."""
    public = model_public(view.record, leaf_hash=view.leaf_hash)
    return public.model_copy(update={"integrity": integrity_public(view.mismatches)})


def model_public(
    record: ModelVersionRecord, *, leaf_hash: str | None = None, created: bool | None = None
) -> ModelVersionPublic:
    manifest = record.manifest
    return ModelVersionPublic(
        name=record.name,
        version=record.version,
        ref=record.ref,
        task=record.task,
        class_labels=list(manifest.get("class_labels", [])),
        features=list(manifest.get("features", [])),
        artifact_sha256=record.artifact_sha256,
        artifact_format=record.artifact_format,
        background_sha256=record.background_sha256,
        trusted_pickle=record.trusted_pickle,
        explainers=dict(manifest.get("explainers", {})),
        metadata=dict(manifest.get("metadata", {})),
        registered_at=record.registered_at,
        ledger=LedgerRef(index=record.ledger_index, leaf_hash=leaf_hash) if leaf_hash else None,
        created=created,
    )


def explanation_public(record: ExplanationRecord, leaf_hash: str) -> ExplanationPublic:
    return ExplanationPublic(
        explanation_id=record.id,
        method=record.method,
        status=record.status,
        body=record.body,
        ledger=LedgerRef(index=record.ledger_index, leaf_hash=leaf_hash),
        created_at=record.created_at,
    )


def decision_summary(hit: SearchHit) -> DecisionSummary:
    record = hit.record
    return DecisionSummary(
        decision_id=record.decision_id,
        model=record.model_ref,
        output=record.output,
        subject_ref=record.subject_ref,
        occurred_at=record.occurred_at,
        ledger_index=record.ledger_index,
        outcome=record.outcome,
        ledger=LedgerRef(index=record.ledger_index, leaf_hash=hit.leaf_hash) if hit.leaf_hash else None,
        outcome_ledger=_ref(hit.outcome_ledger),
        integrity=integrity_public(hit.mismatches),
    )


def decision_view_public(view: DecisionView) -> DecisionPublic:
    """A decision as the ledger records it, each fact with its ledger place, and the rows' integrity."""
    public = decision_public(
        view.record,
        leaf_hash=view.leaf_hash,
        explanations=[explanation_public(e, leaf) for e, leaf in view.explanations],
        jobs=view.jobs,
        reasons=view.reasons,
    )
    return public.model_copy(
        update={"outcome_ledger": _ref(view.outcome_ledger), "integrity": integrity_public(view.mismatches)}
    )


def decision_public(
    record: DecisionRecord,
    *,
    leaf_hash: str,
    explanations: list[ExplanationPublic],
    jobs: list[JobRecord],
    reasons: dict | None = None,
) -> DecisionPublic:
    return DecisionPublic(
        decision_id=record.decision_id,
        model=record.model_ref,
        inputs=record.inputs,
        output=record.output,
        client_output=record.client_output,
        output_mismatch=record.output_mismatch,
        subject_ref=record.subject_ref,
        occurred_at=record.occurred_at,
        recorded_at=record.recorded_at,
        context=record.context,
        ledger=LedgerRef(index=record.ledger_index, leaf_hash=leaf_hash),
        outcome=record.outcome,
        explanations=explanations,
        jobs=[job_public(j) for j in jobs],
        reasons=reasons,
    )
