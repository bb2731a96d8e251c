"""Regulator exports: select decisions, publish a checkpoint, write a verifiable bundle, record the export."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from api.container import Services
from api.reports import MAX_PDF_DECISIONS, DecisionPage, ReportData, iter_html, render_pdf
from api.services.checkpoints import publish_now
from audit.bundle.writer import write_bundle
from audit.entry import EntryDraft, format_timestamp
from explain.reasons import reasons_for
from explain.results import ExplanationResult
from explain.schema import ModelSpec
from storage.errors import NotFoundError
from storage.records import DecisionRecord, ModelVersionRecord


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
        found: dict[str, int] = {}  # decision id -> storage sequence
        subjects: list[str | None] = list(flt.subject_refs) if flt.subject_refs else [None]
        # named decisions are looked up by id (in slices), not found by reading every decision
        named = list(dict.fromkeys(flt.decision_ids)) if flt.decision_ids is not None else None
        slices = [named[i : i + 500] for i in range(0, len(named), 500)] if named is not None else [None]
        for subject in subjects:
            for wanted in slices:
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
                        decision_ids=wanted,
                    )
                    found.update((d.decision_id, d.seq) for d in page)
                    if cursor is None:
                        break
    return sorted(found, key=found.__getitem__)


def create_export(
    services: Services,
    *,
    flt: ExportFilter,
    requested_by: str = "api",
    progress: Callable[[int], None] | None = None,
) -> ExportRecord:
    """Build the bundle for ``flt``; the export itself becomes a ledger entry naming the bundle's hash.

    Memory stays bounded: decisions are read in chunks and the JSONL, Parquet and HTML files are streamed
    to disk; only the pages the PDF shows (at most MAX_PDF_DECISIONS) are held.
    """
    decision_ids = _select(services, flt)
    if not decision_ids:
        raise NotFoundError("no recorded decision matches the export filter")
    checkpoint = publish_now(services)
    assert checkpoint is not None
    export_id = uuid.uuid4().hex
    path = export_dir(services) / f"{export_id}.zip"
    work = Path(tempfile.mkdtemp(dir=export_dir(services), prefix=f".{export_id}-"))
    indexes: set[int] = set()
    models: dict[int, ModelVersionRecord] = {}
    pdf_pages: list[DecisionPage] = []
    created_at = format_timestamp(services.clock())
    try:
        with services.db.unit_of_work(write=False) as uow:
            keys = uow.ledger.keys()
            prove = services.ledger.inclusion_prover(uow.ledger, tree_size=checkpoint.tree_size)
            for start in range(0, len(decision_ids), CHUNK):  # the models first: the report opens with them
                for decision in uow.decisions.get_many(decision_ids[start : start + CHUNK]):
                    if decision.model_version_id not in models:
                        found = uow.models.get_by_id(decision.model_version_id)
                        assert found is not None
                        models[decision.model_version_id] = found
            cards = [_card(m) for m in models.values()]

            def pages() -> Iterator[DecisionPage]:
                for start in range(0, len(decision_ids), CHUNK):
                    chunk = decision_ids[start : start + CHUNK]
                    for record in sorted(uow.decisions.get_many(chunk), key=lambda r: r.seq):
                        yield _page(uow, record, models, indexes, prove)

            report = ReportData(
                title="Rationale decision export",
                origin=services.settings.origin,
                created_at=created_at,
                filter=flt.to_dict(),
                tree_size=checkpoint.tree_size,
                root_hex=checkpoint.root_hash.hex(),
                key_id=checkpoint.key_id,
                models=cards,
                decision_count=len(decision_ids),
            )
            decisions_path, explanations_path, html_path = (work / n for n in ("d.jsonl", "e.jsonl", "r.html"))
            parquet = _ParquetRows(work / "d.parquet")
            with open(decisions_path, "wb") as dj, open(explanations_path, "wb") as ej, open(html_path, "wb") as hf:
                html_chunks = iter_html(report, _tee(pages(), dj, ej, parquet, pdf_pages))
                for chunk in html_chunks:
                    hf.write(chunk)
            parquet.close()
            report = replace(report, pages=pdf_pages)
            extra: dict[str, bytes | Path] = {
                "data/decisions.jsonl": decisions_path,
                "data/explanations.jsonl": explanations_path,
                "data/decisions.parquet": parquet.path,
                "report/report.html": html_path,
                "report/report.pdf": render_pdf(report),
            }
            for card in cards:
                extra[f"models/{card['model']}.json"] = json.dumps(card, indent=2, sort_keys=True).encode()
            summary = write_bundle(
                path,
                entries=(uow.ledger.read(i) for i in sorted(indexes)),
                proof_for=prove,
                checkpoint=checkpoint,
                keys=keys,
                origin=services.settings.origin,
                extra_files=extra,
                metadata={"created_at": created_at, "filter": flt.to_dict(), "export_id": export_id},
                progress=progress,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
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
        created_at=created_at,
        filter=flt.to_dict(),
    )
    (export_dir(services) / f"{export_id}.json").write_text(json.dumps(asdict(export), indent=2))
    return export


CHUNK = 500


def _page(
    uow: Any,
    record: DecisionRecord,
    models: dict[int, ModelVersionRecord],
    indexes: set[int],
    prove: Callable[[int], list[bytes]],
) -> DecisionPage:
    model = models.get(record.model_version_id) or uow.models.get_by_id(record.model_version_id)
    assert model is not None
    models[record.model_version_id] = model
    entry = uow.ledger.read(record.ledger_index)
    indexes.update({record.ledger_index, model.ledger_index})
    explanations = []
    for explanation in uow.explanations.for_decision(record.decision_id):
        explanation_entry = uow.ledger.read(explanation.ledger_index)
        indexes.add(explanation_entry.index)
        explanations.append((explanation.id, explanation_entry.index, explanation_entry.payload))
    outcome = uow.outcomes.get(record.decision_id)
    if outcome is not None:
        indexes.add(outcome["ledger_index"])
    proof = prove(record.ledger_index)
    payloads = [p for _, _, p in explanations]
    return DecisionPage(
        decision=entry.payload,
        ledger_index=record.ledger_index,
        leaf_hash=entry.leaf_hash.hex(),
        proof_length=len(proof),
        explanations=payloads,
        outcome=outcome["body"] if outcome else None,
        reasons=_reasons(model.manifest, entry.payload, payloads),
        explanation_refs=[(i, idx) for i, idx, _ in explanations],
    )


def _tee(
    pages: Iterator[DecisionPage], decisions: Any, explanations: Any, parquet: _ParquetRows, pdf: list[DecisionPage]
) -> Iterator[DecisionPage]:
    """Write each page's data files as the HTML report consumes it; keep only the PDF's pages."""
    for page in pages:
        decision_id = page.decision["decision_id"]
        decisions.write(
            _line({"decision_id": decision_id, "ledger_index": page.ledger_index, "payload": page.decision})
        )
        for (explanation_id, index), payload in zip(page.explanation_refs, page.explanations, strict=True):
            explanations.write(_line({"explanation_id": explanation_id, "ledger_index": index, "payload": payload}))
        parquet.add(page)
        if len(pdf) < MAX_PDF_DECISIONS:
            pdf.append(page)
        yield page


def _card(m: ModelVersionRecord) -> dict[str, Any]:
    return {
        "model": m.ref,
        "artifact_sha256": m.artifact_sha256,
        "artifact_format": m.artifact_format,
        "background_sha256": m.background_sha256,
        "registered_at": format_timestamp(m.registered_at),
        "ledger_index": m.ledger_index,
        "manifest": m.manifest,
    }


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


class _ParquetRows:
    """Decisions flattened for analysis, written in row groups of CHUNK rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None

    def add(self, page: DecisionPage) -> None:
        d = page.decision
        self.rows.append(
            {
                "decision_id": d["decision_id"],
                "model": d["model"],
                "occurred_at": d.get("occurred_at"),
                "subject_ref": d.get("subject_ref"),
                "label": d["output"].get("label"),
                "value": d["output"].get("value"),
                "inputs": json.dumps(d["inputs"], sort_keys=True),
                "output": json.dumps(d["output"], sort_keys=True),
                "outcome": json.dumps(page.outcome, sort_keys=True) if page.outcome else None,
                "ledger_index": page.ledger_index,
            }
        )
        if len(self.rows) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        schema = pa.schema(
            [
                (k, pa.int64() if k == "ledger_index" else pa.float64() if k == "value" else pa.string())
                for k in self.rows[0]
            ]
        )
        table = pa.Table.from_pylist(self.rows, schema=schema)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, schema)
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
