"""The request edge: size limits per route, the strict JSON reader for every JSON body, and query parameters
checked before any route (or the database) sees them.

One pure ASGI middleware, so a refused request costs no routing, no dependency and no database work:

- **Body size** (413 ``body_too_large``): ``RATIONALE_MAX_UPLOAD_BYTES`` for the upload routes in
  ``UPLOAD_ROUTES`` (``POST /v1/models``), ``RATIONALE_MAX_BODY_BYTES`` for every other route. A declared
  ``Content-Length`` over the limit is refused before a byte is read; a streamed body is counted as it
  arrives and refused when it passes the limit.
- **JSON bodies** (``application/json``, ``*+json`` or no content type) are read once, parsed by
  ``api.json_body.parse_json`` (duplicate keys, depth, integer size, NaN, U+0000, invalid UTF-8 → 422
  ``invalid_json`` naming the path), and handed on; the parsed value is left in the request state as
  ``json_body`` so a route that reads the body itself does not parse it twice.
- **Query strings and paths**: U+0000 and invalid UTF-8 in a parameter are a 422 naming the parameter, U+0000
  in the path a 422 naming ``path``, for every route present and future (PostgreSQL cannot compare text
  holding U+0000: the same lookup would be a 500 there and a 404 on SQLite).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.json_body import JsonBodyError, parse_json

UPLOAD_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", "/v1/models")})
"""Routes taking artifacts as multipart uploads: they get ``max_upload_bytes``; every other route
``max_body_bytes``."""

JSON_STATE_KEY = "json_body"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _TooLarge(Exception):
    pass


def _error(code: str, message: str, details: dict[str, Any]) -> bytes:
    import json

    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def limit_for(settings: Any, method: str, path: str) -> int:
    """The body size limit of one route, from the settings."""
    if (method, path.rstrip("/") or "/") in UPLOAD_ROUTES:
        return int(settings.max_upload_bytes)
    return int(settings.max_body_bytes)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def query_problem(raw_query: bytes) -> tuple[str, str] | None:
    """The first query parameter that no route may see: ``(name, reason)``, or None."""
    if not raw_query:
        return None
    for pair in raw_query.split(b"&"):
        name_raw, _, value_raw = pair.partition(b"=")
        name_bytes = unquote_to_bytes(name_raw.replace(b"+", b" "))
        value_bytes = unquote_to_bytes(value_raw.replace(b"+", b" "))
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return "query", "a parameter name is not valid UTF-8"
        try:
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return name, "is not valid UTF-8"
        if "\x00" in name:
            return "query", "a parameter name contains U+0000"
        if "\x00" in value:
            return name, "contains U+0000, which no stored value holds"
    return None


class RequestEdge:
    """See the module docstring. Settings are read per request from ``app.state.services.settings``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        if services is None:
            await self.app(scope, receive, send)
            return
        problem = query_problem(scope.get("query_string", b""))
        if problem is None and "\x00" in scope.get("path", ""):
            problem = ("path", "contains U+0000, which no resource name holds")
        if problem is not None:
            name, reason = problem
            body = _error("invalid_request", f"{name}: {reason}", {"field": name})
            await _respond(send, 422, body)
            return

        method = scope["method"]
        limit = limit_for(services.settings, method, scope["path"])
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isascii() or not text.isdigit():
                await _respond(send, 400, _error("bad_request", "Content-Length is not a number", {}))
                return
            if int(text) > limit:
                await self._too_large(send, limit)
                return

        content_type = headers.get(b"content-type", b"").decode("latin-1") or None
        if method in _BODY_METHODS and _is_json(content_type):
            await self._json(scope, receive, send, limit)
            return
        await self._counted(scope, receive, send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        message = f"the request body is larger than this route's limit of {limit} bytes"
        await _respond(send, 413, _error("body_too_large", message, {"limit_bytes": limit}))

    async def _json(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if raw:
            try:
                parsed = parse_json(raw)
            except JsonBodyError as exc:
                details = {"field": exc.path}
                await _respond(send, 422, _error("invalid_json", str(exc), details))
                return
            scope.setdefault("state", {})[JSON_STATE_KEY] = parsed
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        size = 0
        exceeded = False
        started = False

        async def counting() -> Message:
            nonlocal size, exceeded
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app made of the cut-off body, the answer is the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._too_large(send, limit)
