"""Errors the client raises. Each carries the API's error ``code``, ``message`` and the ``field`` at fault."""

from __future__ import annotations

from typing import Any


class RationaleError(Exception):
    """Base of every error the client raises for an answer of the API (or no answer at all)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.details = details or {}

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        code = f"[{self.code}] " if self.code else ""
        return f"{code}{self.message}{where}"


class InvalidRequestError(RationaleError):
    """400/422: the request was refused; ``field`` names what to fix. Nothing was written."""


class AuthenticationError(RationaleError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(RationaleError):
    """403: the API key's role may not do this."""


class NotFoundError(RationaleError):
    """404: no such model, decision or version."""


class ConflictError(RationaleError):
    """409: the same id with a different body, a version live already, an out-of-order deployment..."""


class UnavailableError(RationaleError):
    """503 after every retry, or the server could not be reached."""


class ServerError(RationaleError):
    """500: the server failed; its log has the details."""


_BY_STATUS: dict[int, type[RationaleError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    503: UnavailableError,
}


def error_for(status: int, body: Any) -> RationaleError:
    """The typed error for an HTTP error answer with the API's ``{"error": {...}}`` body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "http_error", "message": f"HTTP {status}"}
    raw_details = error.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else RationaleError)
    return cls(
        str(error.get("message") or f"HTTP {status}"),
        status=status,
        code=error.get("code"),
        field=details.get("field"),
        details=details,
    )
