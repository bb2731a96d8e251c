"""Reviewer pages (PRODUCT.md §8): sign-in, search, the decision dossier, exports, and the access log.

Server-rendered HTML over the same services as the JSON API, so a page never shows something the API would
not. Every page declares one ``Annotated`` requirement (``Page`` for a signed-in role, ``Public`` for the
sign-in form); reads go through api/services/access_reads.py, which checks the role and records the read
with the purpose the reviewer stated. Forms that write carry the session's CSRF token.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.deps import Public, ServicesDep
from api.errors import InvalidRequestError
from api.review.dossier import build_dossier, show
from api.review.render import PageRoute, dossier_url, error_page, render
from api.review.search import parse_form
from api.review.session import (
    COOKIE_PATH,
    Page,
    PageSession,
    check_signin_token,
    clear_cookie,
    issue,
    set_cookie,
    set_signin_cookie,
    signin_token,
)
from api.services import access_reads, lookups
from api.services.access import PURPOSE_REQUIRED, authenticate, clean_purpose
from api.services.access_errors import NotAuthenticatedError
from api.services.exports import ExportFilter
from storage.errors import NotFoundError

router = APIRouter(prefix="/review", tags=["review"], route_class=PageRoute, include_in_schema=False)
SIGN_IN = "the sign-in form: how a reviewer's API key becomes a session"


def _no_decision(decision_id: str, session: PageSession) -> HTMLResponse:
    return render(
        "error.html",
        status=404,
        title="Decision not found",
        message=f"No decision with id “{decision_id}” is recorded.",
        session=session,
    )


def _safe_next(target: str | None) -> str:
    """Only a path on these pages: never another site (open redirect) nor the sign-in form itself."""
    if not target or not target.startswith("/review") or target.startswith("//") or "\\" in target:
        return "/review"
    return target if not target.startswith("/review/sign-") else "/review"


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request,
    _: Annotated[None, Public(SIGN_IN)],
    next: str | None = None,
    message: str | None = None,
) -> Response:
    token, new = signin_token(request)
    response = render("signin.html", next=_safe_next(next), token=token, message=message, status=200)
    if new:
        set_signin_cookie(response, request, token)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    services: ServicesDep,
    _: Annotated[None, Public(SIGN_IN)],
    key: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Check the key; on success a session cookie and back to the page asked for. The key is never echoed."""
    check_signin_token(request, csrf)
    target = _safe_next(next)
    token, _new = signin_token(request)
    try:
        principal = authenticate(services, key)
    except NotAuthenticatedError:
        message = "That key is not valid (unknown, expired or revoked)."
        return render("signin.html", status=401, next=target, token=token, message=message)
    principal = principal.with_purpose(clean_purpose(purpose))
    if principal.role in PURPOSE_REQUIRED and not principal.purpose:
        message = f"A {principal.role.value} must state the purpose of this session."
        return render("signin.html", status=422, next=target, token=token, message=message)
    value, max_age = issue(services, principal)
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, value, max_age)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out(request: Request, _: Annotated[PageSession, Page(None, write=True)]) -> Response:
    response = RedirectResponse("/review/sign-in?" + urlencode({"message": "Signed out."}), status_code=303)
    clear_cookie(response, request)
    return response


@router.post("/purpose", response_class=HTMLResponse)
def change_purpose(
    request: Request,
    services: ServicesDep,
    session: Annotated[PageSession, Page(None, write=True)],
    purpose: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    """State a new purpose for the reads that follow (a new session cookie carries it)."""
    principal = session.principal.with_purpose(clean_purpose(purpose))
    if principal.role in PURPOSE_REQUIRED and not principal.purpose:
        return render("error.html", status=422, title="Purpose required", message="State a purpose.", session=session)
    value, max_age = issue(services, principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(response, request, value, max_age)
    return response


@router.get("", response_class=HTMLResponse)
def search_page(
    services: ServicesDep,
    session: Annotated[PageSession, Page("decisions.search")],
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
    page: dict[str, Any] = {"form": form, "session": session}
    wanted = form.values["decision_id"]
    if wanted:
        if lookups.decision_exists(services, wanted):
            return RedirectResponse(dossier_url(wanted), status_code=303)
        message = f"No decision with id “{wanted}” is recorded."
        return render("search.html", status=404, items=None, next_link=None, message=message, **page)
    if form.errors:
        return render("search.html", status=422, items=None, next_link=None, message=None, **page)
    if not form.filtered and cursor is None and limit is None:  # the empty form reads nothing
        return render("search.html", items=None, next_link=None, message=None, **page)
    try:
        items, next_cursor = access_reads.search_decisions(services, session.principal, form.query(), via="review")
    except InvalidRequestError as exc:
        page["form"] = replace(form, errors={exc.field or "form": str(exc)})
        return render("search.html", status=422, items=None, next_link=None, message=None, **page)
    next_link = form.page_link(next_cursor) if next_cursor else None
    return render("search.html", items=items, next_link=next_link, message=None, **page)


@router.get("/decisions/{decision_id:path}", response_class=HTMLResponse)
def dossier_page(
    services: ServicesDep, session: Annotated[PageSession, Page("decisions.read")], decision_id: str
) -> Response:
    """Why the decision was made, by which model version, and whether the ledger proves the record."""
    try:
        view = access_reads.read_decision(services, session.principal, decision_id, via="review")
    except NotFoundError:
        return _no_decision(decision_id, session)
    dossier = build_dossier(services, decision_id, view=view)
    return render("dossier.html", d=dossier, show=show, session=session)


@router.post("/decisions/{decision_id:path}/export", response_class=HTMLResponse)
def export_decision(
    services: ServicesDep,
    session: Annotated[PageSession, Page("exports.create", write=True)],
    decision_id: str,
) -> Response:
    """A bundle of this one decision, made as ``POST /v1/exports`` makes it; then the page to download it."""
    if not lookups.decision_exists(services, decision_id):
        return _no_decision(decision_id, session)
    shared = access_reads.create_export(
        services, session.principal, ExportFilter(decision_ids=[decision_id]), via="review"
    )
    return RedirectResponse(f"/review/exports/{shared.record.export_id}", status_code=303)


@router.get("/exports/{export_id}", response_class=HTMLResponse)
def export_page(
    services: ServicesDep, session: Annotated[PageSession, Page("exports.read")], export_id: str
) -> Response:
    shared = access_reads.read_export(services, session.principal, export_id)
    decision_ids = shared.record.filter.get("decision_ids") or []
    return render("export.html", export=shared.record, grant=shared.grant, decision_ids=decision_ids, session=session)


@router.get("/exports/{export_id}/bundle", response_class=FileResponse)
def export_bundle(
    services: ServicesDep, session: Annotated[PageSession, Page("exports.read")], export_id: str
) -> Response:
    record = access_reads.read_export(services, session.principal, export_id, download=True).record
    return FileResponse(record.bundle_path, media_type="application/zip", filename=f"rationale-{export_id}.zip")


@router.get("/access", response_class=HTMLResponse)
def access_page(
    services: ServicesDep, session: Annotated[PageSession, Page("access.log")], subject_ref: str | None = None
) -> Response:
    """Who looked at this person's records, when and why: the ledger's access entries for a subject."""
    wanted = (subject_ref or "").strip()
    items = access_reads.access_log(services, session.principal, subject_ref=wanted) if wanted else None
    return render("access.html", subject_ref=wanted, items=items, session=session)


__all__ = ["COOKIE_PATH", "error_page", "router"]
