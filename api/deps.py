"""Annotated dependencies, and the one access requirement every route declares (PRODUCT.md §8).

A route states who may call it with ONE dependency: ``Annotated[Principal, Allow("decisions.read")]`` (the
roles come from ``api.services.access.RIGHTS``) or ``Annotated[None, Public("why")]``. The route-by-role test
(tests/api/test_access_matrix.py) walks ``app.routes`` and fails on any route that declares neither.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.container import Services
from api.services.access import (
    RIGHTS,
    Principal,
    authenticate,
    clean_purpose,
    local_principal,
    remembered_principal,
)
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
        if services.settings.auth == "off":
            return self._admit(request, local_principal(auth_off=True))
        return self._admit(request, authenticate(services, self._token(request)))

    async def resolve(self, request: Request, services: ServicesDep) -> Principal:
        """As calling it, but a key read a moment ago is answered on the event loop: no database read and
        no hop to a thread (api/services/key_cache.py)."""
        if services.settings.auth == "off":
            return self._admit(request, local_principal(auth_off=True))
        token = self._token(request)
        principal = remembered_principal(services, token)
        if principal is None:
            principal = await run_in_threadpool(authenticate, services, token)
        return self._admit(request, principal)

    @staticmethod
    def _token(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None

    def _admit(self, request: Request, principal: Principal) -> Principal:
        from api.services.access import authorize

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

    async def dependency(
        request: Request,
        services: ServicesDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Principal:
        return await requirement.resolve(request, services)

    dependency.requirement = requirement  # type: ignore[attr-defined]
    return Depends(dependency)


def Public(reason: str) -> Any:
    """``Annotated[None, Public("why")]``: the route is open to anyone, for the stated reason."""
    return Depends(PublicRoute(reason))
