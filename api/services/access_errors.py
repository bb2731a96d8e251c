"""Domain errors of access control; api/errors.py maps them to 401, 403 and 400."""

from __future__ import annotations

PURPOSE_HEADER = "X-Rationale-Purpose"


class AccessError(Exception):
    """Base of access-control refusals. Messages are safe to show a client and never echo a key."""


class NotAuthenticatedError(AccessError):
    """No credentials, or a key that is unknown, malformed, expired or revoked (one message for all)."""


class PermissionDeniedError(AccessError):
    """The caller is authenticated but its role does not admit this action."""


class PurposeRequiredError(AccessError):
    """A compliance or regulator read without a stated purpose."""

    path = PURPOSE_HEADER


class InvalidAccessRequestError(AccessError):
    """A key or grant request that cannot be honoured (unknown role, audience key that is not a regulator)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
