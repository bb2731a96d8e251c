"""Reading a decision with everything a reviewer needs about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.container import Services
from audit.errors import AuditError
from explain.reasons import reasons_for
from explain.results import ExplanationResult
from explain.schema import ModelSpec
from storage.errors import NotFoundError
from storage.ledger_store import SqlLedgerStore
from storage.records import DecisionRecord, ExplanationRecord, JobRecord


@dataclass(frozen=True, slots=True)
class DecisionView:
    record: DecisionRecord
    leaf_hash: str
    explanations: list[tuple[ExplanationRecord, str]]
    jobs: list[JobRecord]
    reasons: dict[str, Any] | None


def read_decision(services: Services, decision_id: str) -> DecisionView:
    with services.db.unit_of_work(write=False) as uow:
        record = uow.decisions.get(decision_id)
        if record is None:
            raise NotFoundError(f"decision {decision_id!r} is not recorded")
        leaf = _leaf_hex(uow.ledger, record.ledger_index)
        explanations = [(e, _leaf_hex(uow.ledger, e.ledger_index)) for e in uow.explanations.for_decision(decision_id)]
        jobs = uow.jobs.for_decision(decision_id)
        model = uow.models.get_by_id(record.model_version_id)
    reasons = None
    if model is not None:
        reasons = build_reasons(services, model.manifest, record, [e for e, _ in explanations])
    return DecisionView(record=record, leaf_hash=leaf, explanations=explanations, jobs=jobs, reasons=reasons)


def _leaf_hex(ledger: SqlLedgerStore, index: int) -> str:
    """The entry's stored leaf hash; "unreadable" when the row is missing or corrupt (the integrity check
    then names what is wrong), so that a damaged ledger row never turns a read into an error."""
    try:
        return ledger.read(index).leaf_hash.hex()
    except AuditError:
        return "unreadable"


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
            latest[e.method] = ExplanationResult.from_dict(e.body)
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
