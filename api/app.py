"""The FastAPI application factory. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.container import Services, build_services
from api.edge import RequestEdge
from api.errors import install_error_handlers
from api.heap import freeze_long_lived
from api.openapi_errors import install_openapi_errors
from api.review import model_page
from api.review import pages as review_pages
from api.routes import access as access_routes
from api.routes import analytics, decisions, exports, health, jobs, ledger, models
from api.settings import Settings
from api.workers.local_pool import LocalWorkerPool

log = logging.getLogger("rationale.api")


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    start_workers: bool | None = None,
    publish_checkpoints: bool = True,
    push_to_witnesses: bool = True,
) -> FastAPI:
    """Build the app; ``services`` may be injected (tests), otherwise built from ``settings`` at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        svc = services or build_services(settings or Settings())
        app.state.services = svc
        pool = None
        run_pool = start_workers if start_workers is not None else svc.settings.executor == "local"
        if run_pool and svc.settings.workers > 0:
            pool = LocalWorkerPool(svc, threads=svc.settings.workers)
            pool.start()
            app.state.pool = pool
        publisher = None
        if publish_checkpoints:
            from api.services.checkpoints import CheckpointPublisher

            publisher = CheckpointPublisher(svc)
            publisher.start()
        witness_pusher = None
        if push_to_witnesses and svc.settings.witnesses.strip():
            from api.services.witnessing import WitnessPusher

            witness_pusher = WitnessPusher(svc)
            witness_pusher.start()
        app.state.witness_pusher = witness_pusher
        dispatcher = None
        if svc.settings.executor == "celery":
            from api.workers.celery_app import CeleryDispatcher

            dispatcher = CeleryDispatcher(svc.settings, svc)
            dispatcher.start(sweep_seconds=max(1.0, svc.settings.lease_seconds / 4))
        from api.services.intake import Intake

        intake = Intake(svc, max_group=svc.settings.intake_max_group, window_ms=svc.settings.intake_window_ms)
        intake.start()
        app.state.intake = intake
        if svc.settings.gc_freeze:
            freeze_long_lived()
        try:
            yield
        finally:
            intake.stop()
            if dispatcher is not None:
                dispatcher.stop()
            if publisher is not None:
                publisher.stop()
            if witness_pusher is not None:
                witness_pusher.stop()
            if pool is not None:
                pool.stop()
            if owned:
                svc.close()

    app = FastAPI(
        title="Rationale",
        version="0.1.0",
        summary="Explanations and a tamper-evident audit trail for machine-learning decisions",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (health.router, models.router, decisions.router, jobs.router, ledger.router, exports.router):
        app.include_router(router)
    app.include_router(access_routes.router)
    app.include_router(review_pages.router)
    app.include_router(analytics.router)  # data-scientist toolkit (issue #18)
    app.include_router(analytics.decisions_router)
    app.include_router(model_page.router)
    app.add_middleware(RequestEdge)  # body limits, strict JSON, query parameters (issue #15)
    install_openapi_errors(app, default_batch_limit=Settings.model_fields["max_batch_decisions"].default)
    return app
