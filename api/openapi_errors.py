"""The OpenAPI document declares every refusal the API can answer, in the one error shape, and its limits.

FastAPI declares only the 2xx and its own 422 (with a body shape we never send). Clients and fuzzers that
hold the API to its document (schemathesis in ``tests/api/test_fuzz_openapi.py``) need the truth: each
operation lists the 4xx/5xx it may answer with ``ErrorResponse``, and the batch limit is the configured one
(``maxItems`` = ``RATIONALE_MAX_BATCH_DECISIONS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable machine-readable cause"},
                "message": {"type": "string", "description": "what is wrong, safe to show"},
                "details": {
                    "type": "object",
                    "description": "``field``: the path at fault (``decisions[3].inputs.income``, "
                    "``manifest.features[2].name``, ``artifact``); more keys by cause",
                },
            },
        }
    },
}

DESCRIPTIONS = {
    "400": "Malformed request (e.g. a Content-Length that is not a number, a proof that cannot be made)",
    "404": "No such resource",
    "409": "Conflicts with what is recorded (same id, other content)",
    "413": "The body is larger than this route's limit (RATIONALE_MAX_BODY_BYTES / RATIONALE_MAX_UPLOAD_BYTES)",
    "401": "No API key, or a malformed, unknown, expired or revoked one (Authorization: Bearer rk_...)",
    "403": "The key's role may not do this (or a regulator asks for an export not shared with it)",
    "422": "Invalid input; details.field names the path at fault",
    "503": "The database is unavailable; retry after Retry-After seconds",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400", "422", "503"]
    if path.startswith("/v1/"):
        statuses.append("404")
    if method in ("post", "put", "patch"):
        statuses += ["409", "413"]
    if operation.get("security"):  # routes behind Allow(...) (api/deps.py)
        statuses += ["401", "403"]
    return statuses


def install_openapi_errors(app: FastAPI, *, default_batch_limit: int) -> None:
    """Wrap ``app.openapi`` so the generated document declares the error responses and the batch limit."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = ERROR_SCHEMA
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                for status in _statuses(path, method, operation):
                    responses[status] = {
                        "description": DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ref}},
                    }
        services = getattr(app.state, "services", None)
        limit = services.settings.max_batch_decisions if services is not None else default_batch_limit
        post = schema.get("paths", {}).get("/v1/decisions", {}).get("post")
        if post is not None:
            body = post["requestBody"]["content"]["application/json"]["schema"]
            for option in body.get("oneOf", []):
                decisions = option.get("properties", {}).get("decisions")
                if decisions is not None:
                    decisions["maxItems"] = limit
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
