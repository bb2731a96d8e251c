"""Reviewer sign-in: an API key becomes a signed, expiring session cookie; forms that write carry a CSRF token.

The cookie is ``<base64url JSON>.<base64url HMAC-SHA256>`` over {key id, issued, expires, nonce, purpose}: it
holds no secret, cannot be altered without the server's key, and is HttpOnly, SameSite=Strict, scoped to
/review and Secure when the request came over https. Every page re-reads the key, so revoking or expiring a
key ends its sessions at once. The CSRF token of a session is HMAC(secret, "csrf" ‖ nonce): forms carry it
in a hidden field and a write without it (or with another session's) is refused with 403. The sign-in form,
made before any session exists, uses a double-submit token (a random cookie echoed in the form).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, Request, Response

from api.container import Services
from api.deps import ServicesDep
from api.services.access import Principal, authorize, clean_purpose, principal_for_key
from api.services.access_errors import NotAuthenticatedError, PermissionDeniedError

COOKIE = "rationale_session"
SIGNIN_COOKIE = "rationale_signin"
COOKIE_PATH = "/review"
_secrets: dict[Path, bytes] = {}


def session_secret(services: Services) -> bytes:
    """The configured secret, or a random one kept (0600) beside the signing keys and reused on restart."""
    configured = services.settings.session_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    path = services.settings.key_dir / "session.secret"
    if path not in _secrets:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        _secrets[path] = path.read_bytes()
    return _secrets[path]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, label: str, data: bytes) -> bytes:
    return hmac.new(secret, label.encode() + b"\x00" + data, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PageSession:
    """A signed-in reviewer: the principal (purpose included) and the CSRF token its forms carry."""

    principal: Principal
    csrf: str
    expires_at: datetime


def issue(services: Services, principal: Principal) -> tuple[str, int]:
    """A session cookie value for ``principal`` and its lifetime in seconds."""
    now = services.clock()
    lifetime = services.settings.session_minutes * 60
    body = {
        "k": principal.key_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
        "n": secrets.token_hex(16),
        "p": principal.purpose,
    }
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(raw)}.{_b64(_mac(session_secret(services), 'session', raw))}", lifetime


def read(services: Services, value: str | None) -> PageSession:
    """The session a cookie proves, or NotAuthenticatedError (missing, forged, expired, key no longer valid)."""
    if not value or "." not in value:
        raise NotAuthenticatedError("sign in to use the reviewer pages")
    body_text, _, mac_text = value.partition(".")
    try:
        raw, mac = _unb64(body_text), _unb64(mac_text)
        good = hmac.compare_digest(mac, _mac(session_secret(services), "session", raw))
        body: dict[str, Any] = json.loads(raw) if good else {}
    except (ValueError, UnicodeDecodeError):
        good, body = False, {}
    if not good or not isinstance(body.get("k"), str) or not isinstance(body.get("exp"), int):
        raise NotAuthenticatedError("sign in to use the reviewer pages")
    now = services.clock()
    if now.timestamp() >= body["exp"]:
        raise NotAuthenticatedError("your session has expired: sign in again")
    principal = principal_for_key(services, body["k"]).with_purpose(clean_purpose(body.get("p")))
    csrf = _b64(_mac(session_secret(services), "csrf", str(body.get("n")).encode()))[:32]
    expires = datetime.fromtimestamp(body["exp"], tz=now.tzinfo)
    return PageSession(principal=principal, csrf=csrf, expires_at=expires)


def set_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def signin_token(request: Request) -> tuple[str, bool]:
    """The double-submit token of the sign-in form: the cookie's, or a new one (True: set the cookie)."""
    current = request.cookies.get(SIGNIN_COOKIE)
    if current and len(current) == 32:
        return current, False
    return secrets.token_hex(16), True


def set_signin_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check_signin_token(request: Request, submitted: str | None) -> None:
    expected = request.cookies.get(SIGNIN_COOKIE) or ""
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise PermissionDeniedError("the sign-in form expired or did not come from this site: reload it")


class PageRequirement:
    """The dependency behind ``Page``: a valid session whose role holds ``action`` (any role when None),
    and for a form that writes, the session's CSRF token in the form's ``csrf`` field."""

    def __init__(self, action: str | None, *, write: bool) -> None:
        self.action = action
        self.write = write

    async def __call__(self, request: Request, services: ServicesDep) -> PageSession:
        from starlette.concurrency import run_in_threadpool

        session = await run_in_threadpool(read, services, request.cookies.get(COOKIE))
        if self.action is not None:
            authorize(session.principal, self.action)
        if self.write:
            form = await request.form()
            submitted = form.get("csrf")
            if not isinstance(submitted, str) or not hmac.compare_digest(submitted, session.csrf):
                raise PermissionDeniedError("this form is missing its CSRF token (or it belongs to another session)")
        return session


def Page(action: str | None, *, write: bool = False) -> Any:
    """``Annotated[PageSession, Page("decisions.read")]``: the page admits signed-in roles holding ``action``."""
    return Depends(PageRequirement(action, write=write))
