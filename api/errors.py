"""The one table from error class to HTTP status, and the handlers that render ``{"error": {...}}``.

Routes never raise HTTPException for domain conditions: services raise domain errors and this module maps
them. Anything unmapped is logged with its trace and answered as a generic 500 without one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.json_body import JsonBodyError
from api.services.access_errors import (
    AccessError,
    InvalidAccessRequestError,
    NotAuthenticatedError,
    PermissionDeniedError,
    PurposeRequiredError,
)
from audit.errors import AuditError, EntryNotFoundError, NonCanonicalValueError, ProofError
from explain.errors import (
    ArtifactError,
    ExplainError,
    InvalidInputError,
    InvalidSchemaError,
    UnknownMethodError,
    UnsupportedModelError,
)
from storage.errors import ConflictError, NotFoundError, SchemaOutdatedError, StorageError, UnavailableError

log = logging.getLogger("rationale.api")


class ApiError(Exception):
    """An error raised by the API layer itself (request shapes that pydantic cannot express)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.details = details or {}


class InvalidRequestError(ApiError):
    status = 422
    code = "invalid_request"


class ResourceNotFoundError(ApiError):
    status = 404
    code = "not_found"


# Most specific first: the first matching class wins.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (JsonBodyError, 422, "invalid_json"),
    (NotAuthenticatedError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (PurposeRequiredError, 400, "purpose_required"),
    (InvalidAccessRequestError, 422, "invalid_request"),
    (InvalidInputError, 422, "invalid_input"),
    (InvalidSchemaError, 422, "invalid_manifest"),
    (NonCanonicalValueError, 422, "invalid_input"),
    (ArtifactError, 422, "invalid_artifact"),
    (UnknownMethodError, 422, "unknown_method"),
    (UnsupportedModelError, 422, "unsupported_model"),
    (ConflictError, 409, "conflict"),
    (NotFoundError, 404, "not_found"),
    (EntryNotFoundError, 404, "not_found"),
    (ProofError, 400, "invalid_proof_request"),
    (UnavailableError, 503, "unavailable"),
    (SchemaOutdatedError, 503, "schema_outdated"),
    (ExplainError, 422, "explain_error"),
    (StorageError, 500, "storage_error"),
    (AuditError, 500, "ledger_error"),
]


class ErrorJSONResponse(JSONResponse):
    """Error answers as ASCII JSON: a message quoting a client's bytes (a lone surrogate, say) still encodes."""

    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def classify(exc: BaseException) -> tuple[int, str, dict[str, Any]]:
    """Status, code and details for a domain error; (500, "internal", {}) when unmapped."""
    if isinstance(exc, ApiError):
        own = dict(exc.details)
        if exc.field:
            own["field"] = exc.field
        return exc.status, exc.code, own
    for cls, status, code in ERROR_TABLE:
        if isinstance(exc, cls):
            details: dict[str, Any] = {}
            extra = getattr(exc, "details", None)
            if isinstance(extra, dict):
                details.update(extra)
            path = getattr(exc, "path", None)
            if path:
                details["field"] = path
            return status, code, details
    return 500, "internal", {}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the first matching route's).

    Asks the app's own routing, method by method, so included routers are covered without their internals."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header"):
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or str(loc[0] if loc else "body")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            path = _loc_to_path(tuple(err.get("loc", ())))
            problems.append({"field": path, "message": str(err.get("msg", "invalid"))})
        first = problems[0] if problems else {"field": "body", "message": "invalid request"}
        details = {"field": first["field"], "problems": problems}
        return ErrorJSONResponse(
            status_code=422,
            content=error_body("invalid_request", f"{first['field']}: {first['message']}", details),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return ErrorJSONResponse(
            status_code=exc.status_code, content=error_body(code, str(exc.detail)), headers=headers
        )

    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        status, code, details = classify(exc)
        if status >= 500 and status != 503:
            log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
            return ErrorJSONResponse(status_code=500, content=error_body("internal", "internal server error"))
        headers = {"Retry-After": "5"} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="rationale"'}
        return ErrorJSONResponse(status_code=status, content=error_body(code, str(exc), details), headers=headers)

    for base in (ApiError, ExplainError, StorageError, AuditError, JsonBodyError, AccessError):
        app.add_exception_handler(base, _domain)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return ErrorJSONResponse(status_code=500, content=error_body("internal", "internal server error"))
