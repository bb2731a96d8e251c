"""The human report of an export: HTML (self-contained) and PDF, with attribution charts.

Everything shown comes from the verified entries. Client data is escaped; charts are PNGs made with
matplotlib (Agg) and embedded, so the HTML needs no network and the PDF no fonts beyond the built-ins.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from explain.agreement import agreement
from explain.describe import anchor_note, attribution_note
from explain.results import ExplanationResult

MAX_PDF_DECISIONS = 200
MAX_HTML_CHARTS = 500


@dataclass(frozen=True, slots=True)
class DecisionPage:
    decision: Mapping[str, Any]  # the decision.recorded payload
    ledger_index: int
    leaf_hash: str
    proof_length: int
    explanations: Sequence[Mapping[str, Any]] = ()  # explanation.* payloads
    outcome: Mapping[str, Any] | None = None
    reasons: Sequence[str] = ()
    explanation_refs: Sequence[tuple[str, int]] = ()  # (explanation id, ledger index) per explanation


@dataclass(frozen=True, slots=True)
class ReportData:
    title: str
    origin: str
    created_at: str
    filter: Mapping[str, Any]
    tree_size: int
    root_hex: str
    key_id: str
    models: Sequence[Mapping[str, Any]]
    pages: Sequence[DecisionPage] = field(default_factory=list)  # the PDF's pages (bounded)
    decision_count: int = 0


def attribution_chart(values: Mapping[str, float], title: str, *, top: int = 10) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(values.items(), key=lambda kv: abs(kv[1]))[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(items) + 0.9), dpi=90)
    ax.barh([k for k, _ in items], [v for _, v in items], color=["#2a9d8f" if v >= 0 else "#e76f51" for _, v in items])
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _attributions(page: DecisionPage) -> Mapping[str, Any] | None:
    for e in page.explanations:
        result = e.get("result") or {}
        if result.get("kind") == "attributions" and e.get("method") == "shap":
            return e
    for e in page.explanations:
        if (e.get("result") or {}).get("kind") == "attributions":
            return e
    return None


def _agreement_note(page: DecisionPage) -> str | None:
    """Whether the decision's explanations agree (explain/agreement.py), for the report."""
    latest: dict[str, ExplanationResult] = {}
    for e in page.explanations:
        try:
            latest[str(e["method"])] = ExplanationResult.from_dict(e)
        except (KeyError, TypeError, ValueError):
            continue
    found = agreement(latest)
    if found.agrees is None:
        return None
    if found.agrees:
        return "The explanations agree with each other."
    return "The explanations DISAGREE: " + "; ".join(found.disagreements) + "."


def _of_kind(page: DecisionPage, kind: str) -> Mapping[str, Any] | None:
    return next((e["result"] for e in page.explanations if (e.get("result") or {}).get("kind") == kind), None)


def render_html(data: ReportData) -> bytes:
    return b"".join(iter_html(data, data.pages))


def iter_html(data: ReportData, pages: Iterable[DecisionPage]) -> Iterator[bytes]:
    """The HTML report in chunks, so an export of any size is written without holding it whole."""
    e = html.escape
    count = data.decision_count or len(data.pages)
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        e(data.title),
        "</title><style>",
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "section{page-break-before:always;margin-top:2em}code{font-size:85%}",
        "</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
        f"<p>Deployment <code>{e(data.origin)}</code>, exported {e(data.created_at)}; filter "
        f"<code>{e(str(dict(data.filter)))}</code>; {count} decisions.</p>",
        "<h2>Integrity</h2>",
        f"<p>Every entry is included in the checkpoint of tree size {data.tree_size}, root <code>{data.root_hex}"
        f"</code>, signed by key <code>{e(data.key_id)}</code>. Check with <code>python3 verify.py bundle.zip"
        "</code>.</p><h2>Models</h2>",
    ]
    for model in data.models:
        out.append(
            f"<h3>{e(str(model.get('model')))}</h3><p>artifact SHA-256 <code>"
            f"{e(str(model.get('artifact_sha256')))}</code></p><table><tr><th>feature</th><th>type</th>"
            "<th>allowed</th></tr>"
        )
        for f in model.get("manifest", {}).get("features", []):
            allowed = f.get("categories") or [f.get("minimum"), f.get("maximum")]
            out.append(f"<tr><td>{e(f['name'])}</td><td>{e(f['type'])}</td><td>{e(str(allowed))}</td></tr>")
        out.append("</table>")
    if count > MAX_HTML_CHARTS:
        out.append(
            f"<p>Attribution charts are drawn for the first {MAX_HTML_CHARTS} decisions; the others list "
            "their reasons, and every attribution is in data/explanations.jsonl.</p>"
        )
    yield "".join(out).encode("utf-8")
    for number, page in enumerate(pages):
        out = []
        d = page.decision
        out.append(f"<section><h2>Decision {e(str(d['decision_id']))}</h2>")
        out.append(
            f"<p>Model {e(str(d['model']))}, occurred {e(str(d.get('occurred_at')))}, subject "
            f"{e(str(d.get('subject_ref')))}. Output <b>{e(str(d['output']))}</b>.</p>"
        )
        if page.outcome:
            out.append(f"<p>Real outcome: {e(str(page.outcome))}</p>")
        out.append("<table><tr><th>input</th><th>value</th></tr>")
        for k, v in d["inputs"].items():
            out.append(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>")
        out.append("</table>")
        if page.reasons:
            out.append("<h3>Why</h3><ul>" + "".join(f"<li>{e(s)}</li>" for s in page.reasons) + "</ul>")
        attribution = _attributions(page)
        if attribution and number < MAX_HTML_CHARTS:
            png = attribution_chart(attribution["result"]["values"], f"{attribution['backend']} attributions")
            out.append(f"<img alt='attributions' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        if attribution:
            out.append(f"<p class='attribution-note'>{e(attribution_note(attribution['result']))}</p>")
        agreement_note = _agreement_note(page)
        if agreement_note:
            out.append(f"<p class='agreement'>{e(agreement_note)}</p>")
        anchor = _of_kind(page, "anchor")
        if anchor:
            out.append(
                f"<p>Anchor: <code>{e(anchor['rule'])}</code> (precision {anchor['precision']:.0%}, "
                f"coverage {anchor['coverage']:.0%}). {e(anchor_note(anchor))}</p>"
            )
        cfs = _of_kind(page, "counterfactuals")
        if cfs and cfs["items"]:
            changes = ", ".join(
                f"{e(c['feature'])}: {e(str(c['from']))} → {e(str(c['to']))}" for c in cfs["items"][0]["changes"]
            )
            out.append(f"<p>Smallest change to get {e(cfs['desired'])}: {changes}</p>")
        for failed in (x for x in page.explanations if "error" in x):
            out.append(f"<p>{e(str(failed.get('method')))} explanation failed: {e(str(failed['error']))}</p>")
        out.append(
            f"<p><small>Ledger index {page.ledger_index}, leaf hash <code>{page.leaf_hash}</code>, "
            f"inclusion proof of {page.proof_length} hashes against checkpoint {data.tree_size}."
            "</small></p></section>"
        )
        yield "".join(out).encode("utf-8")
    yield b"</body></html>"


def render_pdf(data: ReportData) -> bytes:
    from reportlab import rl_config

    rl_config.invariant = 1  # the same data gives byte-identical PDFs
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table

    styles = getSampleStyleSheet()
    e = html.escape
    story: list[Any] = [
        Paragraph(e(data.title), styles["Title"]),
        Paragraph(
            f"Deployment {e(data.origin)}, exported {e(data.created_at)}. "
            f"{data.decision_count or len(data.pages)} decisions; "
            f"filter {e(str(dict(data.filter)))}.",
            styles["Normal"],
        ),
        Spacer(1, 0.4 * cm),
        Paragraph("Integrity", styles["Heading2"]),
        Paragraph(
            f"All entries are included in the checkpoint of tree size {data.tree_size}, root "
            f"{data.root_hex}, signed by key {e(data.key_id)}. Verify with python3 verify.py.",
            styles["Normal"],
        ),
    ]
    shown = data.pages[:MAX_PDF_DECISIONS]
    if (data.decision_count or len(data.pages)) > len(shown):
        story.append(
            Paragraph(
                f"This PDF shows the first {len(shown)} decisions; all are in the HTML report and the JSONL data.",
                styles["Normal"],
            )
        )
    for model in data.models:
        story.append(Paragraph(f"Model {e(str(model.get('model')))}", styles["Heading2"]))
        story.append(Paragraph(f"Artifact SHA-256 {e(str(model.get('artifact_sha256')))}", styles["Normal"]))
    for page in shown:
        d = page.decision
        story += [
            PageBreak(),
            Paragraph(f"Decision {e(str(d['decision_id']))}", styles["Heading1"]),
            Paragraph(
                f"Model {e(str(d['model']))}; output {e(str(d['output'].get('label', d['output'])))}"
                f"; occurred {e(str(d.get('occurred_at')))}",
                styles["Normal"],
            ),
            Spacer(1, 0.3 * cm),
        ]
        rows = [["input", "value"]] + [[e(k), e(str(v))] for k, v in d["inputs"].items()]
        story.append(Table(rows, hAlign="LEFT"))
        for sentence in page.reasons:
            story.append(Paragraph(e(sentence), styles["Normal"]))
        attribution = _attributions(page)
        if attribution:
            png = attribution_chart(attribution["result"]["values"], f"{attribution['backend']} attributions")
            story.append(Image(io.BytesIO(png), width=14 * cm, height=14 * cm * _aspect(png)))
            story.append(Paragraph(e(attribution_note(attribution["result"])), styles["Normal"]))
        agreement_note = _agreement_note(page)
        if agreement_note:
            story.append(Paragraph(e(agreement_note), styles["Normal"]))
        anchor = _of_kind(page, "anchor")
        if anchor:
            story.append(
                Paragraph(
                    f"Anchor: {e(anchor['rule'])} (precision {anchor['precision']:.0%}). {e(anchor_note(anchor))}",
                    styles["Normal"],
                )
            )
        story.append(Paragraph(f"Ledger index {page.ledger_index}, leaf hash {page.leaf_hash}", styles["Code"]))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title=data.title, author="Rationale").build(story)
    return buffer.getvalue()


def _aspect(png: bytes) -> float:
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    return height / width if width else 0.5
