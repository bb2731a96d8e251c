"""``rationale report model NAME``: the model page's content as a file, HTML (self-contained, the page's
own template with inline SVG charts) or PDF (reportlab tables, matplotlib charts)."""

from __future__ import annotations

import html
import io
from datetime import datetime
from typing import Any

from api.review.model_page import model_view
from api.review.render import environment
from api.services.analytics.overview import ModelOverview


def render_model_html(overview: ModelOverview, *, now: datetime) -> bytes:
    view = model_view(overview, form={}, report=True, now=now)
    return environment().get_template("model.html").render(v=view, session=None).encode()


def _chart(draw: Any, height: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, height), dpi=90)
    draw(ax)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def render_model_pdf(overview: ModelOverview, *, now: datetime) -> bytes:
    from reportlab import rl_config

    rl_config.invariant = 1
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table

    styles = getSampleStyleSheet()
    e = html.escape

    def fmt(x: float | None, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    def table(rows: list[list[Any]]) -> Table:
        return Table([[e(str(c)) for c in row] for row in rows], hAlign="LEFT", repeatRows=1)

    def image(png: bytes) -> Image:
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        return Image(io.BytesIO(png), width=16 * cm, height=16 * cm * height / max(1, width))

    o, t = overview, overview.timeline
    window = " ".join(
        part
        for part in (f"from {o.since:%Y-%m-%d}" if o.since else "", f"until {o.until:%Y-%m-%d}" if o.until else "")
        if part
    )
    story: list[Any] = [
        Paragraph(f"Model {e(o.model)}", styles["Title"]),
        Paragraph(
            f"Versions {e(', '.join(o.versions))}; task {e(o.task)}; decisions {e(window or 'of all time')}; "
            f"report made {now:%Y-%m-%d %H:%M} UTC.",
            styles["Normal"],
        ),
        Paragraph("Which version was live when", styles["Heading2"]),
        *[
            Paragraph(f"Integrity check failed: {e(problem)}. Shown: what the ledger entries say.", styles["Normal"])
            for problem in t.integrity_problems
        ],
        Paragraph(
            f"Live now: {e(t.live_version or 'no deployment recorded')}. Decisions made by a version that was not "
            f"live at the time: {t.decisions_while_not_live}.",
            styles["Normal"],
        ),
        table(
            [["when", "event", "version", "detail", "ledger index"]]
            + [
                [
                    f"{ev.at:%Y-%m-%d %H:%M}",
                    ev.kind.replace("_", " "),
                    ev.version,
                    ev.detail[:60],
                    ev.ledger_index or "",
                ]
                for ev in t.events
            ]
        ),
        Spacer(1, 0.4 * cm),
        Paragraph("Importance by version (mean |SHAP|)", styles["Heading2"]),
    ]
    imp = o.importance
    if imp.rows:
        features = imp.features[:12][::-1]

        def draw_importance(ax: Any) -> None:
            height = 0.8 / max(1, len(imp.rows))
            for k, row in enumerate(imp.rows):
                ax.barh(
                    [i + k * height for i in range(len(features))],
                    [row.mean_abs[f] or 0 for f in features],
                    height=height,
                    label=f"v{row.version}",
                )
            ax.set_yticks(range(len(features)), features)
            ax.legend(fontsize=8)

        story.append(image(_chart(draw_importance, 0.3 * len(features) + 1)))
    else:
        story.append(Paragraph("No SHAP explanation recorded yet.", styles["Normal"]))
    story.append(Paragraph("Drift", styles["Heading2"]))
    if o.drift is not None:
        d = o.drift
        story.append(
            Paragraph(
                f"Reference v{e(', v'.join(d.reference.versions))} ({d.reference.decisions} decisions), current "
                f"v{e(', v'.join(d.current.versions))} ({d.current.decisions} decisions).",
                styles["Normal"],
            )
        )
        story.append(
            table(
                [["input", "test", "statistic", "p-value", "PSI", "JS distance"]]
                + [
                    [
                        i.feature,
                        i.test,
                        fmt(i.statistic),
                        "-" if i.p_value is None else f"{i.p_value:.2e}",
                        fmt(i.psi),
                        fmt(i.js_distance),
                    ]
                    for i in d.inputs
                ]
            )
        )
        story.append(Spacer(1, 0.3 * cm))
        story.append(
            table(
                [["attribution", "mean |SHAP| before", "after", "change", "rank", "KS"]]
                + [
                    [
                        a.feature,
                        fmt(a.reference_mean_abs, 4),
                        fmt(a.current_mean_abs, 4),
                        fmt(a.change, 4),
                        f"{a.reference_rank or '-'} -> {a.current_rank or '-'}",
                        fmt(a.ks_statistic),
                    ]
                    for a in d.attributions
                ]
            )
        )
    else:
        story.append(Paragraph("One version only.", styles["Normal"]))
    story.append(Paragraph("Performance by week", styles["Heading2"]))
    p = o.performance
    if p.rows and p.task != "regression":

        def draw_performance(ax: Any) -> None:
            for version in o.versions:
                rows = [r for r in p.rows if r.version == version]
                if not rows:
                    continue
                buckets = [r.bucket for r in rows]
                ax.plot(
                    buckets,
                    [r.realised.accuracy if r.realised else None for r in rows],
                    marker="o",
                    label=f"v{version} realised",
                )
                ax.plot(
                    buckets,
                    [r.estimated.accuracy if r.estimated else None for r in rows],
                    linestyle="--",
                    label=f"v{version} estimated (CBPE)",
                )
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8)

        story.append(image(_chart(draw_performance, 2.8)))
    header = ["version", "week of", "decisions", "missing outcomes"]
    if p.task == "regression":
        story.append(
            table(
                [[*header, "MAE", "RMSE"]]
                + [
                    [
                        r.version,
                        r.bucket,
                        r.decisions,
                        r.missing_outcomes,
                        fmt(r.realised.mae if r.realised else None),
                        fmt(r.realised.rmse if r.realised else None),
                    ]
                    for r in p.rows
                ]
            )
        )
    else:
        story.append(
            table(
                [[*header, "accuracy", "estimated", "ROC AUC"]]
                + [
                    [
                        r.version,
                        r.bucket,
                        r.decisions,
                        r.missing_outcomes,
                        fmt(r.realised.accuracy if r.realised else None),
                        fmt(r.estimated.accuracy if r.estimated else None),
                        fmt(r.realised.roc_auc if r.realised else None),
                    ]
                    for r in p.rows
                ]
            )
        )
    story.append(Paragraph("Fairness by group", styles["Heading2"]))
    f = o.fairness
    if f is not None:
        story.append(
            Paragraph(
                f"Grouped by {e(f.group_by)}; selection = predicting {e(f.positive_class)}. Demographic parity "
                f"difference {fmt(f.demographic_parity_difference)}, ratio {fmt(f.demographic_parity_ratio)}, "
                f"equalised-odds difference {fmt(f.equalized_odds_difference)}.",
                styles["Normal"],
            )
        )
        story.append(
            table(
                [["group", "decisions", "selection rate", "with outcome", "TPR", "FPR"]]
                + [
                    [
                        g.group,
                        g.decisions,
                        fmt(g.selection_rate),
                        g.with_outcome,
                        fmt(g.true_positive_rate),
                        fmt(g.false_positive_rate),
                    ]
                    for g in f.groups
                ]
            )
        )
    else:
        story.append(Paragraph(e(o.fairness_problem or "No group to compare."), styles["Normal"]))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title=f"Model {o.model}", author="Rationale").build(story)
    return buffer.getvalue()
