"""Decisions: record (one or a batch), read one with its explanations, search, add methods, add outcomes."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.container import Services
from api.deps import Allow, ServicesDep
from api.edge import JSON_STATE_KEY
from api.errors import InvalidRequestError, ResourceNotFoundError
from api.json_body import parse_json
from api.params import CURSOR_PATTERN, DecisionIdPath, MomentQuery, parse_moment
from api.presenters import decision_summary, decision_view_public, job_public
from api.schemas import (
    DecisionBatch,
    DecisionCreate,
    DecisionPage,
    DecisionPublic,
    DecisionRecorded,
    DecisionsRecorded,
    ExplanationRequest,
    JobsCreated,
    LedgerRef,
    OutcomeCreate,
    OutcomeRecorded,
)
from api.services import access_reads, searching
from api.services.access import Principal
from api.services.decisions import record_batch, request_explanations
from api.services.intake import Intake
from api.services.outcomes import record_outcome

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])

_create_schema = DecisionCreate.model_json_schema()
_BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _create_schema,
        {
            "type": "object",
            "properties": {
                # maxItems is RATIONALE_MAX_BATCH_DECISIONS, set when the OpenAPI document is made
                "decisions": {"type": "array", "items": _create_schema, "minItems": 1, "maxItems": 1000}
            },
            "required": ["decisions"],
            "additionalProperties": False,
        },
    ]
}


async def _json_body(request: Request) -> Any:
    """The body as the strict reader parsed it at the edge (api/edge.py), or parsed here when the edge left
    it alone (a body sent under another content type)."""
    state = request.scope.get("state") or {}
    if JSON_STATE_KEY in state:
        return state[JSON_STATE_KEY]
    raw = await request.body()
    if not raw:
        raise InvalidRequestError('the request body is empty: send a decision or {"decisions": [...]}', field="body")
    return parse_json(raw)


def _validated(model: type[DecisionCreate] | type[DecisionBatch], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def _intake(request: Request, services: Services) -> Intake:
    """The app's intake (started by its lifespan); an app without one gets one on first use."""
    intake: Intake | None = getattr(request.app.state, "intake", None)
    if intake is None:
        intake = request.app.state.intake = Intake(services)
        intake.start()
    return intake


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DecisionsRecorded,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
async def create_decisions(
    request: Request,
    response: Response,
    services: ServicesDep,
    _: Annotated[Principal, Allow("decisions.record")],
) -> DecisionsRecorded:
    """Record one decision (an object) or a batch (``{"decisions": [...]}``) atomically."""
    data = await _json_body(request)
    if isinstance(data, dict) and "decisions" in data:
        batch: DecisionBatch = _validated(DecisionBatch, data)
        items, path = batch.decisions, "decisions"
        if len(items) > services.settings.max_batch_decisions:
            raise InvalidRequestError(
                f"at most {services.settings.max_batch_decisions} decisions per request", field="decisions"
            )
        recorded, depth = await run_in_threadpool(record_batch, services, items, path=path)
    else:  # one decision: coalesced with concurrent ones into one transaction (api/services/intake.py)
        one = await _intake(request, services).submit(_validated(DecisionCreate, data))
        recorded, depth = [one.decision], one.queue_depth
    if not any(r.created for r in recorded):
        response.status_code = status.HTTP_200_OK
    return DecisionsRecorded(
        decisions=[
            DecisionRecorded(
                decision_id=r.record.decision_id,
                created=r.created,
                model=r.record.model_ref,
                output=r.record.output,
                output_mismatch=r.record.output_mismatch,
                ledger=LedgerRef(index=r.record.ledger_index, leaf_hash=r.leaf_hash),
                jobs=[job_public(j) for j in r.jobs],
            )
            for r in recorded
        ],
        queue_depth=depth,
        backpressure=depth > services.settings.max_queue_depth,
    )


@router.get("", response_model=DecisionPage)
def search_decisions(
    services: ServicesDep,
    principal: Annotated[Principal, Allow("decisions.search")],
    model: Annotated[str | None, Query(max_length=300, description="name or name@version")] = None,
    subject_ref: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(max_length=200, description="the real outcome's label")] = None,
    since: MomentQuery = None,
    until: MomentQuery = None,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="a next_cursor from this API")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    agreement: Annotated[
        Literal["agree", "disagree"] | None, Query(description="whether the decision's explanations agree")
    ] = None,
) -> DecisionPage:
    """Filtered search with keyset pagination: pass ``next_cursor`` back as ``cursor``."""
    query = searching.DecisionQuery(
        model=model,
        subject_ref=subject_ref,
        outcome=outcome,
        since=parse_moment(since, field="since") if since is not None else None,
        until=parse_moment(until, field="until") if until is not None else None,
        cursor=cursor,
        limit=limit,
    )
    if agreement is not None:
        query = replace(query, agreement=agreement == "agree")
    items, next_cursor = access_reads.search_decisions(services, principal, query)
    return DecisionPage(items=[decision_summary(r) for r in items], next_cursor=next_cursor)


@router.get("/{decision_id}", response_model=DecisionPublic)
def get_decision(
    services: ServicesDep, principal: Annotated[Principal, Allow("decisions.read")], decision_id: DecisionIdPath
) -> DecisionPublic:
    """The decision, its explanations and jobs, and where it sits in the ledger."""
    return decision_view_public(access_reads.read_decision(services, principal, decision_id))


@router.post("/{decision_id}/explanations", status_code=status.HTTP_202_ACCEPTED, response_model=JobsCreated)
def add_explanations(
    services: ServicesDep,
    _: Annotated[Principal, Allow("explanations.request")],
    decision_id: DecisionIdPath,
    body: ExplanationRequest,
) -> JobsCreated:
    """Queue more methods for a recorded decision; asking again for the same returns the same jobs."""
    jobs = request_explanations(
        services,
        decision_id=decision_id,
        methods=list(body.methods),
        params={k: v for k, v in body.params.items()},
        target=body.target,
    )
    return JobsCreated(jobs=[job_public(j) for j in jobs])


@router.post("/{decision_id}/outcome", status_code=status.HTTP_201_CREATED, response_model=OutcomeRecorded)
def add_outcome(
    services: ServicesDep,
    _: Annotated[Principal, Allow("outcomes.record")],
    decision_id: DecisionIdPath,
    body: OutcomeCreate,
    response: Response,
) -> OutcomeRecorded:
    """Append the real outcome of a decision once it is known (delayed labels)."""
    result = record_outcome(services, decision_id=decision_id, body=body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return OutcomeRecorded(
        decision_id=decision_id,
        outcome=result.outcome,
        ledger=LedgerRef(index=result.index, leaf_hash=result.leaf_hash),
    )


__all__ = ["ResourceNotFoundError", "router"]
