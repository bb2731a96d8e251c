"""Decisions: record (one or a batch), read one with its explanations, search, add methods, add outcomes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import ServicesDep
from api.errors import InvalidRequestError, ResourceNotFoundError
from api.presenters import decision_public, decision_summary, explanation_public, job_public
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
from api.services import searching
from api.services.decisions import record_decisions, request_explanations
from api.services.outcomes import record_outcome
from api.services.reading import read_decision

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])

_create_schema = DecisionCreate.model_json_schema()
_BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _create_schema,
        {
            "type": "object",
            "properties": {"decisions": {"type": "array", "items": _create_schema, "minItems": 1}},
            "required": ["decisions"],
            "additionalProperties": False,
        },
    ]
}


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}", field="body") from exc


def _validated(model: type[DecisionCreate] | type[DecisionBatch], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DecisionsRecorded,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
async def create_decisions(request: Request, response: Response, services: ServicesDep) -> DecisionsRecorded:
    """Record one decision (an object) or a batch (``{"decisions": [...]}``) atomically."""
    data = await _json_body(request)
    if isinstance(data, dict) and "decisions" in data:
        batch: DecisionBatch = _validated(DecisionBatch, data)
        items, path = batch.decisions, "decisions"
        if len(items) > services.settings.max_batch_decisions:
            raise InvalidRequestError(
                f"at most {services.settings.max_batch_decisions} decisions per request", field="decisions"
            )
    else:
        items, path = [_validated(DecisionCreate, data)], ""
    from starlette.concurrency import run_in_threadpool

    recorded = await run_in_threadpool(record_decisions, services, items, path=path)
    with services.db.unit_of_work(write=False) as uow:
        depth = uow.jobs.depth()
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
    model: str | None = None,
    subject_ref: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    agreement: Annotated[
        Literal["agree", "disagree"] | None, Query(description="whether the decision's explanations agree")
    ] = None,
) -> DecisionPage:
    """Filtered search with keyset pagination: pass ``next_cursor`` back as ``cursor``."""
    query = searching.DecisionQuery(
        model=model, subject_ref=subject_ref, outcome=outcome, since=since, until=until, cursor=cursor, limit=limit
    )
    if agreement is not None:
        query = replace(query, agreement=agreement == "agree")
    items, next_cursor = searching.search_decisions(services, query)
    return DecisionPage(items=[decision_summary(r) for r in items], next_cursor=next_cursor)


@router.get("/{decision_id}", response_model=DecisionPublic)
def get_decision(services: ServicesDep, decision_id: str) -> DecisionPublic:
    """The decision, its explanations and jobs, and where it sits in the ledger."""
    view = read_decision(services, decision_id)
    return decision_public(
        view.record,
        leaf_hash=view.leaf_hash,
        explanations=[explanation_public(e, leaf) for e, leaf in view.explanations],
        jobs=view.jobs,
        reasons=view.reasons,
    )


@router.post("/{decision_id}/explanations", status_code=status.HTTP_202_ACCEPTED, response_model=JobsCreated)
def add_explanations(services: ServicesDep, decision_id: str, body: ExplanationRequest) -> JobsCreated:
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
def add_outcome(services: ServicesDep, decision_id: str, body: OutcomeCreate, response: Response) -> OutcomeRecorded:
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
