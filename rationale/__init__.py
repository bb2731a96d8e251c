"""Rationale's Python client for data scientists: the HTTP API as pandas DataFrames.

    >>> import rationale
    >>> rc = rationale.Client("http://127.0.0.1:8000")
    >>> help(rc.log)

It talks HTTP only (httpx) and imports none of the server's packages, so a notebook needs only httpx and
pandas. Errors: rationale.errors (each carries the API's ``code`` and ``field``).
"""

from rationale.client import Client, DriftReport
from rationale.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RationaleError,
    ServerError,
    UnavailableError,
)

__all__ = [
    "AuthenticationError",
    "Client",
    "ConflictError",
    "DriftReport",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RationaleError",
    "ServerError",
    "UnavailableError",
]
