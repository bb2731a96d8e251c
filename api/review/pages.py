"""Reviewer pages (PRODUCT.md §8): search, the decision dossier, and exporting a decision's bundle.

Server-rendered HTML over the same services as the JSON API, so a page never shows something the API would
not; access control will add its one ``Annotated`` dependency to these routes as to the API's.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import ServicesDep
from api.errors import InvalidRequestError
from api.review.dossier import build_dossier, show
from api.review.render import PageRoute, dossier_url, error_page, render
from api.review.search import parse_form
from api.services.exports import ExportFilter, create_export, read_export
from api.services.searching import search_decisions
from storage.errors import NotFoundError

router = APIRouter(prefix="/review", tags=["review"], route_class=PageRoute, include_in_schema=False)


def _no_decision(decision_id: str) -> HTMLResponse:
    return error_page(404, "Decision not found", f"No decision with id “{decision_id}” is recorded.")


@router.get("", response_class=HTMLResponse)
def search_page(
    services: ServicesDep,
    decision_id: str | None = None,
    subject_ref: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: str | None = None,
) -> Response:
    """Find decisions; an exact decision id goes straight to its dossier."""
    raw = {"decision_id": decision_id, "subject_ref": subject_ref, "model": model, "outcome": outcome}
    form = parse_form({**raw, "since": since, "until": until}, cursor=cursor, limit=limit)
    wanted = form.values["decision_id"]
    if wanted:
        with services.db.unit_of_work(write=False) as uow:
            found = uow.decisions.get(wanted) is not None
        if found:
            return RedirectResponse(dossier_url(wanted), status_code=303)
        message = f"No decision with id “{wanted}” is recorded."
        return render("search.html", status=404, form=form, items=None, next_link=None, message=message)
    if form.errors:
        return render("search.html", status=422, form=form, items=None, next_link=None, message=None)
    try:
        items, next_cursor = search_decisions(services, form.query())
    except InvalidRequestError as exc:
        form = replace(form, errors={exc.field or "form": str(exc)})
        return render("search.html", status=422, form=form, items=None, next_link=None, message=None)
    next_link = form.page_link(next_cursor) if next_cursor else None
    return render("search.html", form=form, items=items, next_link=next_link, message=None)


@router.get("/decisions/{decision_id:path}", response_class=HTMLResponse)
def dossier_page(services: ServicesDep, decision_id: str) -> Response:
    """Why the decision was made, by which model version, and whether the ledger proves the record."""
    try:
        dossier = build_dossier(services, decision_id)
    except NotFoundError:
        return _no_decision(decision_id)
    return render("dossier.html", d=dossier, show=show)


@router.post("/decisions/{decision_id:path}/export", response_class=HTMLResponse)
def export_decision(services: ServicesDep, decision_id: str) -> Response:
    """A bundle of this one decision, made as ``POST /v1/exports`` makes it; then the page to download it."""
    with services.db.unit_of_work(write=False) as uow:
        if uow.decisions.get(decision_id) is None:
            return _no_decision(decision_id)
    record = create_export(services, flt=ExportFilter(decision_ids=[decision_id]), requested_by="review")
    return RedirectResponse(f"/review/exports/{record.export_id}", status_code=303)


@router.get("/exports/{export_id}", response_class=HTMLResponse)
def export_page(services: ServicesDep, export_id: str) -> Response:
    record = read_export(services, export_id)
    decision_ids = record.filter.get("decision_ids") or []
    return render("export.html", export=record, decision_ids=decision_ids)
