"""Regulator exports: select decisions, publish a checkpoint, write a verifiable bundle, record the export."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from api.container import Services
from api.reports import DecisionPage, ReportData, render_html, render_pdf
from api.services.checkpoints import publish_now
from audit.bundle.writer import write_bundle
from audit.entry import EntryDraft, format_timestamp
from explain.reasons import reasons_for
from explain.results import ExplanationResult
from explain.schema import ModelSpec
from storage.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class ExportFilter:
    model: str | None = None
    subject_refs: list[str] | None = None
    decision_ids: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "until"):
            if data[key] is not None:
                data[key] = format_timestamp(data[key])
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ExportRecord:
    export_id: str
    bundle_path: str
    bundle_sha256: str
    size: int
    entries: int
    decisions: int
    tree_size: int
    ledger_index: int
    created_at: str
    filter: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("bundle_path")
        return data


def export_dir(services: Services) -> Path:
    path = services.settings.data_dir / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _select(services: Services, flt: ExportFilter) -> list[str]:
    with services.db.unit_of_work(write=False) as uow:
        model_ids = None
        if flt.model:
            name, _, version = flt.model.partition("@")
            model_ids = [r.id for r in uow.models.list(name=name) if not version or r.version == version]
        ids: list[str] = []
        subjects: list[str | None] = list(flt.subject_refs) if flt.subject_refs else [None]
        for subject in subjects:
            cursor = None
            while True:
                page, cursor = uow.decisions.search(
                    model_version_ids=model_ids,
                    subject_ref=subject,
                    outcome=flt.outcome,
                    since=flt.since,
                    until=flt.until,
                    cursor=cursor,
                    limit=1000,
                )
                ids += [d.decision_id for d in page]
                if cursor is None:
                    break
    if flt.decision_ids is not None:
        wanted = set(flt.decision_ids)
        ids = [i for i in ids if i in wanted]
    return list(dict.fromkeys(ids))


def create_export(
    services: Services,
    *,
    flt: ExportFilter,
    requested_by: str = "api",
    progress: Callable[[int], None] | None = None,
) -> ExportRecord:
    """Build the bundle for ``flt``; the export itself becomes a ledger entry naming the bundle's hash."""
    decision_ids = _select(services, flt)
    if not decision_ids:
        raise NotFoundError("no recorded decision matches the export filter")
    checkpoint = publish_now(services)
    assert checkpoint is not None
    export_id = uuid.uuid4().hex
    path = export_dir(services) / f"{export_id}.zip"
    pages: list[DecisionPage] = []
    decisions_jsonl: list[bytes] = []
    explanations_jsonl: list[bytes] = []
    indexes: set[int] = set()
    models: dict[int, Any] = {}
    with services.db.unit_of_work(write=False) as uow:
        for decision_id in decision_ids:
            record = uow.decisions.get(decision_id)
            assert record is not None
            model = models.get(record.model_version_id) or uow.models.get_by_id(record.model_version_id)
            assert model is not None
            models[record.model_version_id] = model
            decision_entry = uow.ledger.read(record.ledger_index)
            indexes.update({record.ledger_index, model.ledger_index})
            decisions_jsonl.append(
                _line(
                    {"decision_id": decision_id, "ledger_index": record.ledger_index, "payload": decision_entry.payload}
                )
            )
            explanation_payloads = []
            for explanation in uow.explanations.for_decision(decision_id):
                entry = uow.ledger.read(explanation.ledger_index)
                indexes.add(entry.index)
                explanation_payloads.append(entry.payload)
                explanations_jsonl.append(
                    _line({"explanation_id": explanation.id, "ledger_index": entry.index, "payload": entry.payload})
                )
            outcome = uow.outcomes.get(decision_id)
            if outcome is not None:
                indexes.add(outcome["ledger_index"])
            proof = services.ledger.inclusion_proof(
                uow.ledger, index=record.ledger_index, tree_size=checkpoint.tree_size
            )
            pages.append(
                DecisionPage(
                    decision=decision_entry.payload,
                    ledger_index=record.ledger_index,
                    leaf_hash=decision_entry.leaf_hash.hex(),
                    proof_length=len(proof),
                    explanations=explanation_payloads,
                    outcome=outcome["body"] if outcome else None,
                    reasons=_reasons(model.manifest, decision_entry.payload, explanation_payloads),
                )
            )
        keys = uow.ledger.keys()
        report = ReportData(
            title="Rationale decision export",
            origin=services.settings.origin,
            created_at=format_timestamp(services.clock()),
            filter=flt.to_dict(),
            tree_size=checkpoint.tree_size,
            root_hex=checkpoint.root_hash.hex(),
            key_id=checkpoint.key_id,
            models=[
                {"model": m.ref, "artifact_sha256": m.artifact_sha256, "manifest": m.manifest} for m in models.values()
            ],
            pages=pages,
        )
        extra = {
            "data/decisions.jsonl": b"".join(decisions_jsonl),
            "data/explanations.jsonl": b"".join(explanations_jsonl),
            "data/decisions.parquet": _parquet(pages),
            "report/report.html": render_html(report),
            "report/report.pdf": render_pdf(report),
        }
        for m in models.values():
            card = {
                "model": m.ref,
                "artifact_sha256": m.artifact_sha256,
                "artifact_format": m.artifact_format,
                "background_sha256": m.background_sha256,
                "registered_at": format_timestamp(m.registered_at),
                "ledger_index": m.ledger_index,
                "manifest": m.manifest,
            }
            extra[f"models/{m.ref}.json"] = json.dumps(card, indent=2, sort_keys=True).encode()
        summary = write_bundle(
            path,
            entries=(uow.ledger.read(i) for i in sorted(indexes)),
            proof_for=lambda i: services.ledger.inclusion_proof(uow.ledger, index=i, tree_size=checkpoint.tree_size),
            checkpoint=checkpoint,
            keys=keys,
            origin=services.settings.origin,
            extra_files=extra,
            metadata={"created_at": report.created_at, "filter": flt.to_dict(), "export_id": export_id},
            progress=progress,
        )
    payload = {
        "export_id": export_id,
        "filter": flt.to_dict(),
        "bundle_sha256": summary.sha256,
        "entries": summary.entries,
        "decisions": len(decision_ids),
        "tree_size": checkpoint.tree_size,
        "requested_by": requested_by,
    }
    with services.db.unit_of_work() as uow:
        [entry] = services.ledger.append(uow.ledger, [EntryDraft("export.created", payload)])
    export = ExportRecord(
        export_id=export_id,
        bundle_path=str(path),
        bundle_sha256=summary.sha256,
        size=summary.size,
        entries=summary.entries,
        decisions=len(decision_ids),
        tree_size=checkpoint.tree_size,
        ledger_index=entry.index,
        created_at=report.created_at,
        filter=flt.to_dict(),
    )
    (export_dir(services) / f"{export_id}.json").write_text(json.dumps(asdict(export), indent=2))
    return export


def read_export(services: Services, export_id: str) -> ExportRecord:
    if not export_id.isalnum():
        raise NotFoundError(f"export {export_id!r} does not exist")
    path = export_dir(services) / f"{export_id}.json"
    if not path.exists():
        raise NotFoundError(f"export {export_id!r} does not exist")
    return ExportRecord(**json.loads(path.read_text()))


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _reasons(manifest: dict[str, Any], decision: dict[str, Any], explanations: list[dict[str, Any]]) -> list[str]:
    latest: dict[str, ExplanationResult] = {}
    for payload in explanations:
        if "result" in payload:
            latest[payload["method"]] = ExplanationResult.from_dict(payload)
    if not latest:
        return []
    reasons = reasons_for(
        ModelSpec.from_dict(manifest),
        decision["inputs"],
        attributions=latest.get("shap") or latest.get("lime"),
        anchor=latest.get("anchors"),
        counterfactuals=latest.get("counterfactuals"),
        templates=manifest.get("templates") or None,
    )
    return list(reasons.sentences)


def _parquet(pages: list[DecisionPage]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for page in pages:
        d = page.decision
        row = {
            "decision_id": d["decision_id"],
            "model": d["model"],
            "occurred_at": d.get("occurred_at"),
            "subject_ref": d.get("subject_ref"),
            "label": d["output"].get("label"),
            "value": d["output"].get("value"),
            "ledger_index": page.ledger_index,
            "outcome": json.dumps(page.outcome) if page.outcome else None,
        }
        row.update({f"input_{k}": json.dumps(v) for k, v in d["inputs"].items()})
        rows.append(row)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()
