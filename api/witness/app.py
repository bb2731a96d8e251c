"""The witness's HTTP interface (C2SP tlog-witness): add-checkpoint, the monitoring checkpoint, health.

A small app of its own: it shares no state, database or settings with the log it watches.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from audit.errors import (
    InconsistentCheckpointError,
    MalformedRequestError,
    SizeConflictError,
    UnknownLogError,
    UntrustedCheckpointError,
    WitnessError,
)
from audit.witness import SIZE_CONTENT_TYPE, Witness, format_size, origin_hash

log = logging.getLogger("rationale.witness")

MAX_BODY_BYTES = 64 * 1024  # 63 proof lines and a checkpoint with many signatures fit with room to spare

STATUS: tuple[tuple[type[WitnessError], int], ...] = (
    (MalformedRequestError, 400),
    (UntrustedCheckpointError, 403),
    (UnknownLogError, 404),
    (SizeConflictError, 409),
    (InconsistentCheckpointError, 422),
)


def status_for(exc: WitnessError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 400)


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="Rationale witness", version="0.1.0", summary="A C2SP tlog-witness")
    app.state.witness = witness

    @app.post("/add-checkpoint", response_class=PlainTextResponse)
    async def add_checkpoint(request: Request) -> Response:
        """Cosign a checkpoint that extends the last one cosigned (body: old size, proof, blank, checkpoint)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return PlainTextResponse("request too large\n", status_code=413)
        try:
            line = await run_in_threadpool(witness.add_checkpoint, body)
        except SizeConflictError as exc:
            return Response(format_size(exc.known_size), status_code=409, media_type=SIZE_CONTENT_TYPE)
        except WitnessError as exc:
            status = status_for(exc)
            log.info("add-checkpoint refused (%d): %s", status, exc)
            return PlainTextResponse(f"{exc}\n", status_code=status)
        return PlainTextResponse(line)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        logs = {}
        for origin in witness.logs:
            head = witness.store.latest(origin)
            logs[origin] = head.tree_size if head else None
        return {"status": "ok", "verifier_key": witness.verifier_key, "cosigned_sizes": logs}

    @app.get("/{hashed_origin}/checkpoint", response_class=PlainTextResponse)
    def latest(hashed_origin: str) -> Response:
        """The latest checkpoint cosigned for the log whose origin hashes to ``hashed_origin`` (monitors)."""
        for origin in witness.logs:
            if origin_hash(origin) == hashed_origin:
                head = witness.store.latest(origin)
                if head is not None:
                    return PlainTextResponse(head.note)
        return PlainTextResponse("no checkpoint cosigned for that log\n", status_code=404)

    return app
