"""Everything the dossier page shows about one decision, gathered from the same services the API uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from api.container import Services
from api.review.chart import Chart, attribution_chart
from api.services.integrity import EntryCheck, IntegrityReport, check_decision
from api.services.reading import DecisionView, LedgerPlace, read_decision
from explain.agreement import Agreement, agreement
from explain.describe import anchor_note, attribution_note
from explain.errors import ExplainError
from explain.results import AnchorRule, Attributions, Counterfactuals, ExplanationResult
from explain.schema import ModelSpec
from storage.records import DecisionRecord, ExplanationRecord, ModelVersionRecord

ATTRIBUTION_METHODS = ("shap", "lime")
Labeller = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class InputRow:
    name: str
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Attribution:
    method: str
    target: str
    output_space: str
    base_value: float
    output_value: float
    chart: Chart
    note: str  # units, and exact or approximation (why)
    exact: bool | None


@dataclass(frozen=True, slots=True)
class Anchor:
    rule: str
    precision: float
    coverage: float
    note: str  # re-measured precision and whether the rule holds
    holds: bool | None


@dataclass(frozen=True, slots=True)
class Change:
    feature: str
    label: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Counterfactual:
    desired: str
    changes: tuple[Change, ...]  # empty: none was found
    predicted: str | None
    distance: float | None


@dataclass(frozen=True, slots=True)
class MethodStatus:
    method: str
    state: str  # queued, running, succeeded, failed
    detail: str | None


@dataclass(frozen=True, slots=True)
class Dossier:
    record: DecisionRecord
    model: ModelVersionRecord | None
    leaf_hash: str
    inputs: tuple[InputRow, ...]
    reasons: tuple[str, ...]
    attribution: Attribution | None
    anchor: Anchor | None
    counterfactual: Counterfactual | None
    statuses: tuple[MethodStatus, ...]
    integrity: IntegrityReport
    outcome_ledger: LedgerPlace | None = None
    agreement: Agreement | None = None  # None: fewer than two methods to compare


def show(value: Any) -> str:
    """A value as the reviewer should read it: exact, with JSON spelling for booleans and null."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def build_dossier(services: Services, decision_id: str, *, view: DecisionView | None = None) -> Dossier:
    """Raises storage's NotFoundError when the decision is not recorded. Pages pass the ``view`` they read
    through api/services/access_reads.py (which checks the role and records the read)."""
    if view is None:
        view = read_decision(services, decision_id)
    model = view.model  # as its entry records it
    spec = _spec(model)

    def label(feature: str) -> str:
        try:
            return spec.feature(feature).display_name if spec is not None else feature
        except KeyError:
            return feature

    latest = _latest(view.explanations)
    return Dossier(
        record=view.record,
        model=model,
        leaf_hash=view.leaf_hash,
        inputs=tuple(InputRow(k, label(k), show(v)) for k, v in view.record.inputs.items()),
        reasons=tuple((view.reasons or {}).get("sentences", ())),
        attribution=_attribution(latest, label),
        anchor=_anchor(latest),
        counterfactual=_counterfactual(latest, label),
        statuses=_statuses(view),
        integrity=with_row_checks(check_decision(services, view), view),
        outcome_ledger=view.outcome_ledger,
        agreement=_agreement(latest),
    )


def with_row_checks(report: IntegrityReport, view: DecisionView) -> IntegrityReport:
    """The entry checks, failed when any row shown differs from its entry (what the page shows is then
    the entry's values; the rows that were altered are listed)."""
    if not view.mismatches:
        return report
    rows = tuple(
        EntryCheck(f"{m.table} row", m.index if m.index is not None else -1, "failed", m.message)
        for m in view.mismatches
    )
    summary = f"Integrity check failed: {view.mismatches[0].message} (the ledger's record is shown)"
    return replace(report, status="failed", summary=summary, entries=report.entries + rows)


def _spec(model: ModelVersionRecord | None) -> ModelSpec | None:
    if model is None:
        return None
    try:
        return ModelSpec.from_dict(model.manifest)
    except ExplainError:
        return None


def _latest(explanations: list[tuple[ExplanationRecord, str]]) -> dict[str, ExplanationResult]:
    """The newest successful result of each method (later entries supersede earlier ones)."""
    latest: dict[str, ExplanationResult] = {}
    for record, _ in sorted(explanations, key=lambda pair: pair[0].ledger_index):
        if record.status == "succeeded":
            latest[record.method] = ExplanationResult.from_dict(record.body)
    return latest


def _attribution(latest: dict[str, ExplanationResult], label: Labeller) -> Attribution | None:
    for method in ATTRIBUTION_METHODS:
        result = latest.get(method)
        if result is not None and isinstance(result.body, Attributions):
            body = result.body
            return Attribution(
                method=method,
                target=result.target,
                output_space=body.output_space,
                base_value=body.base_value,
                output_value=body.output_value,
                chart=attribution_chart(body.values, label=label),
                note=attribution_note(body.to_dict()),
                exact=body.exact,
            )
    return None


def _agreement(latest: dict[str, ExplanationResult]) -> Agreement | None:
    found = agreement(latest)
    return found if found.agrees is not None else None


def _anchor(latest: dict[str, ExplanationResult]) -> Anchor | None:
    result = latest.get("anchors")
    if result is None or not isinstance(result.body, AnchorRule):
        return None
    body = result.body
    return Anchor(
        rule=body.rule,
        precision=body.checked_precision if body.checked_precision is not None else body.precision,
        coverage=body.coverage,
        note=anchor_note(body.to_dict()),
        holds=body.holds,
    )


def _counterfactual(latest: dict[str, ExplanationResult], label: Labeller) -> Counterfactual | None:
    result = latest.get("counterfactuals")
    if result is None or not isinstance(result.body, Counterfactuals):
        return None
    body = result.body
    if not body.items:
        return Counterfactual(desired=body.desired, changes=(), predicted=None, distance=None)
    best = body.items[0]  # stored smallest first
    changes = tuple(Change(c.feature, label(c.feature), show(c.from_value), show(c.to_value)) for c in best.changes)
    return Counterfactual(desired=body.desired, changes=changes, predicted=best.predicted, distance=best.distance)


def _statuses(view: DecisionView) -> tuple[MethodStatus, ...]:
    """Per method, the newest job's state and why it failed; explanations recorded without a job count too."""
    statuses: dict[str, MethodStatus] = {}
    for job in view.jobs:
        detail = job.error if job.state == "failed" else None
        if job.state in ("queued", "running") and job.attempts:
            detail = f"attempt {job.attempts}"
        statuses[job.method] = MethodStatus(job.method, job.state, detail)
    for record, _ in sorted(view.explanations, key=lambda pair: pair[0].ledger_index):
        if record.method not in statuses or statuses[record.method].state in ("succeeded", "failed"):
            error = record.body.get("error") if record.status == "failed" else None
            statuses[record.method] = MethodStatus(record.method, record.status, show(error) if error else None)
    return tuple(statuses.values())
