"""HTML rendering for the reviewer pages: Jinja2 with autoescaping on, and errors shown as pages, not JSON.

Every value reaching a template is escaped unless a template says otherwise (none does): decision ids,
subject references and inputs come from clients and must never become markup in a reviewer's browser.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.errors import classify
from api.services.access_errors import NotAuthenticatedError

log = logging.getLogger("rationale.review")
TEMPLATES = Path(__file__).with_name("templates")


def dossier_url(decision_id: str) -> str:
    return "/review/decisions/" + quote(decision_id, safe="")


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _moment(value: datetime) -> str:
    """Times in UTC, the zone the ledger records (naive values from SQLite are UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


@functools.cache
def environment() -> Environment:
    """Built on first use, not at import (the app factory builds nothing at import time)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(number=_number, percent=_percent, moment=_moment, dossier_url=dossier_url)
    return env


def render(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("session", None)  # the signed-in reviewer (api/review/session.py), shown on every page
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


def error_page(status: int, title: str, message: str) -> HTMLResponse:
    return render("error.html", status=status, title=title, message=message)


def _to_sign_in(request: Request, message: str) -> Response:
    """No valid session: back to the sign-in form, which returns here afterwards (GET pages only)."""
    from fastapi.responses import RedirectResponse

    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = (
        urlencode({"next": target, "message": message}) if request.method == "GET" else urlencode({"message": message})
    )
    return RedirectResponse(f"/review/sign-in?{query}", status_code=303)


class PageRoute(APIRoute):
    """A route whose errors become HTML pages with the status the JSON API would give (api/errors.py).

    Unmapped errors are logged with their trace and shown as a generic page without one.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except NotAuthenticatedError as exc:
                return _to_sign_in(request, str(exc))
            except RequestValidationError as exc:
                problems = "; ".join(str(e.get("msg", "invalid")) for e in exc.errors())
                return error_page(422, "Request refused", problems or "invalid request")
            except Exception as exc:
                status, _, _ = classify(exc)
                if status >= 500 and status != 503:
                    log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
                    return error_page(500, "Something went wrong", "An internal error occurred; it has been logged.")
                return error_page(status, "Request refused" if status < 500 else "Unavailable", str(exc))

        return handle
