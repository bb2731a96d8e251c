"""Every route by every role, generated from the app's own route table (PRODUCT.md §8, issue #14 item 2).

Each route must declare exactly one requirement: ``Allow(action)`` (API key), ``Page(action)`` (reviewer
session) or ``Public(reason)``. A route added without one fails ``test_every_route_declares_one_requirement``;
a route whose roles are not what ``RIGHTS`` says fails the matrix. Nothing here lists routes by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Route

from api.app import create_app
from api.container import Services
from api.deps import PublicRoute, Requirement
from api.review.session import COOKIE, PageRequirement, issue
from api.review.session import read as read_session
from api.services.access import RIGHTS, ROLES, Principal, Role
from tests.api.helpers import issue_key

# FastAPI's own documentation routes (plain Starlette routes): the OpenAPI document holds no personal data
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@dataclass(frozen=True)
class Declared:
    kind: str  # "api", "page" or "public"
    action: str | None = None
    write: bool = False


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def declared(route: APIRoute) -> list[Declared]:
    found = []
    for call in _calls(route.dependant):
        requirement = getattr(call, "requirement", None)
        if isinstance(requirement, Requirement):
            found.append(Declared("api", requirement.action))
        elif isinstance(call, PageRequirement):
            found.append(Declared("page", call.action, call.write))
        elif isinstance(call, PublicRoute):
            found.append(Declared("public"))
    return found


@pytest.fixture
def app(services: Services) -> Any:
    return create_app(services=services, start_workers=False, publish_checkpoints=False)


@dataclass(frozen=True)
class Endpoint:
    path: str
    methods: frozenset[str]
    route: APIRoute


def api_routes(app: Any) -> list[Endpoint]:
    """Every FastAPI route with its full path (routers are included lazily by this FastAPI version)."""
    found = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            found.append(Endpoint(str(context.path), frozenset(context.methods or ()), context.original_route))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0", path)


def test_every_route_declares_one_requirement(app: Any) -> None:
    missing = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            if len(declared(route)) != 1:
                missing.append(f"{sorted(context.methods or ())} {context.path}: {declared(route)}")
        else:
            assert isinstance(route, Route) and context.path in FRAMEWORK_ROUTES, context.path
    assert not missing, "routes without exactly one access requirement:\n" + "\n".join(missing)
    assert len(api_routes(app)) >= 25  # the table really was walked


def test_the_openapi_document_declares_the_security_scheme(app: Any) -> None:
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "rk_<key id>_<secret>",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for endpoint in api_routes(app):
        [requirement] = declared(endpoint.route)
        if requirement.kind != "api":
            continue
        for method in endpoint.methods:
            operation = doc["paths"][endpoint.path][method.lower()]
            assert operation.get("security") == [{"ApiKey": []}], (method, endpoint.path)


def test_route_by_role_matrix(services: Services, app: Any) -> None:
    keys = {role: issue_key(services, role.value, owner=f"matrix {role.value}") for role in ROLES}
    checked = 0
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        for endpoint in api_routes(app):
            [requirement] = declared(endpoint.route)
            path = concrete(endpoint.path)
            for method in sorted(endpoint.methods):
                if requirement.kind == "public":
                    status = client.request(method, path).status_code
                    assert status != 401, (method, path, status)
                    checked += 1
                    continue
                if requirement.kind == "api":
                    anonymous = client.request(method, path, json={})
                    assert anonymous.status_code == 401, (method, path, anonymous.text)
                    assert anonymous.json()["error"]["code"] == "unauthenticated"
                    assert anonymous.headers["www-authenticate"].startswith("Bearer")
                    wrong = client.request(method, path, json={}, headers={"Authorization": "Bearer rk_nope"})
                    assert wrong.status_code == 401, (method, path)
                else:
                    client.cookies.clear()
                    anonymous = client.request(method, path, data={})
                    assert anonymous.status_code == 303, (method, path, anonymous.status_code)
                    assert anonymous.headers["location"].startswith("/review/sign-in")
                for role in ROLES:
                    allowed = requirement.action is None or role in RIGHTS[requirement.action]
                    response = _as(client, services, requirement, role, keys[role], method, path)
                    if allowed:
                        assert response.status_code not in (401, 403), (role, method, path, response.text[:300])
                        location = response.headers.get("location", "")
                        assert not location.startswith("/review/sign-in") or "Signed+out" in location
                    else:
                        assert response.status_code == 403, (role, method, path, response.status_code)
                        if requirement.kind == "api":
                            assert response.json()["error"]["code"] == "forbidden"
                    checked += 1
    assert checked >= 25 * len(ROLES)


def _as(
    client: TestClient, services: Services, requirement: Declared, role: Role, key: str, method: str, path: str
) -> Any:
    if requirement.kind == "api":
        headers = {"Authorization": f"Bearer {key}", "X-Rationale-Purpose": "matrix test"}
        return client.request(method, path, json={}, headers=headers)
    principal = Principal(key_id=key.split("_")[1], owner="matrix", role=role, purpose="matrix test")
    cookie, _ = issue(services, principal)
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie, path="/review")
    data = {"csrf": read_session(services, cookie).csrf} if requirement.write else {}
    return client.request(method, path, data=data)


def test_page_forms_that_write_refuse_a_missing_or_foreign_csrf_token(services: Services, app: Any) -> None:
    key = issue_key(services, "compliance")
    principal = Principal(key_id=key.split("_")[1], owner="csrf", role=Role.COMPLIANCE, purpose="csrf test")
    mine, _ = issue(services, principal)
    theirs, _ = issue(services, principal)  # another session of the same key has another token
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        writes = [e for e in api_routes(app) if declared(e.route)[0].kind == "page" and declared(e.route)[0].write]
        assert writes
        for endpoint in writes:
            path = concrete(endpoint.path)
            for data in ({}, {"csrf": ""}, {"csrf": read_session(services, theirs).csrf}):
                client.cookies.clear()
                client.cookies.set(COOKIE, mine, path="/review")
                response = client.post(path, data=data)
                assert response.status_code == 403, (path, data, response.status_code)
                assert "CSRF" in response.text
