"""Annotated dependencies, and the one access requirement every route declares (PRODUCT.md §8).

A route states who may call it with ONE dependency: ``Annotated[Principal, Allow("decisions.read")]`` (the
roles come from ``api.services.access.RIGHTS``) or ``Annotated[None, Public("why")]``. The route-by-role test
(tests/api/test_access_matrix.py) walks ``app.routes`` and fails on any route that declares neither.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.container import Services
from api.services.access import RIGHTS, Principal, authenticate, clean_purpose, local_principal
from api.services.access_errors import PURPOSE_HEADER


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="rk_<key id>_<secret>",
    description="An API key from `rationale access create` or POST /v1/access/keys, as "
    "`Authorization: Bearer rk_...`. Reads of personal records also take the header "
    f"`{PURPOSE_HEADER}` (required for the compliance and regulator roles).",
)


class Requirement:
    """The dependency behind ``Allow``: authenticates the bearer key and checks the action's roles."""

    def __init__(self, action: str) -> None:
        if action not in RIGHTS:
            raise KeyError(f"unknown action {action!r}: add it to api.services.access.RIGHTS")
        self.action = action
        self.roles = RIGHTS[action]

    def __call__(self, request: Request, services: ServicesDep) -> Principal:
        from api.services.access import authorize

        if services.settings.auth == "off":
            principal = local_principal(auth_off=True)
        else:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            principal = authenticate(services, token if scheme.lower() == "bearer" else None)
        principal = principal.with_purpose(clean_purpose(request.headers.get(PURPOSE_HEADER)))
        authorize(principal, self.action)
        return principal


class PublicRoute:
    """The dependency behind ``Public``: admits anyone; ``reason`` says why the route may be open."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __call__(self) -> None:
        return None


def Allow(action: str) -> Any:
    """``Annotated[Principal, Allow("decisions.read")]``: the route admits the roles holding ``action``.

    The bearer scheme is a sub-dependency so that the OpenAPI document declares it on the route; the
    requirement reads the header itself, so a missing, malformed or unknown key get the same 401."""
    requirement = Requirement(action)

    def dependency(
        request: Request,
        services: ServicesDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Principal:
        return requirement(request, services)

    dependency.requirement = requirement  # type: ignore[attr-defined]
    return Depends(dependency)


def Public(reason: str) -> Any:
    """``Annotated[None, Public("why")]``: the route is open to anyone, for the stated reason."""
    return Depends(PublicRoute(reason))
