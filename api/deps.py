"""Annotated dependencies. Access control (PRODUCT.md §8) will add one ``CurrentPrincipal`` alias here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.container import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
