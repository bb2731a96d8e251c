"""Outcomes: the real result of a decision, appended when it becomes known."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from api.container import Services
from api.errors import InvalidRequestError
from api.schemas import OutcomeCreate
from audit.canonical import check_json_value
from audit.entry import format_timestamp, parse_timestamp
from audit.payloads import OutcomeRecorded
from explain.errors import InvalidInputError
from storage.errors import ConflictError, NotFoundError


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    outcome: dict[str, Any]
    index: int
    leaf_hash: str
    created: bool


def record_outcome(services: Services, *, decision_id: str, body: OutcomeCreate) -> OutcomeResult:
    """Append the outcome once; the same outcome again is a no-op, a different one a 409."""
    if (body.label is None) == (body.value is None):
        raise InvalidRequestError("give exactly one of label (classification) or value (regression)", field="label")
    if body.value is not None and not math.isfinite(body.value):
        raise InvalidInputError("value", "NaN and infinity are not allowed")
    if body.observed_at is not None and body.observed_at.tzinfo is None:
        raise InvalidInputError("observed_at", "must include a timezone")
    check_json_value(body.context, "context")
    with services.db.unit_of_work(write=False) as uow:
        decision = uow.decisions.get(decision_id)
        if decision is None:
            raise NotFoundError(f"decision {decision_id!r} is not recorded")
        model = uow.models.get_by_id(decision.model_version_id)
    assert model is not None
    labels = model.manifest.get("class_labels") or []
    if body.label is not None and body.label not in labels:
        raise InvalidInputError("label", f"{body.label!r} is not one of {labels}")
    if body.value is not None and labels:
        raise InvalidInputError("value", "this model is a classifier: send label")
    outcome: dict[str, Any] = {"label": body.label} if body.label is not None else {"value": body.value}
    observed = (body.observed_at or services.clock()).astimezone(UTC)
    outcome["observed_at"] = format_timestamp(observed)
    if body.context:
        outcome["context"] = body.context
    with services.db.unit_of_work() as uow:
        existing = uow.outcomes.get(decision_id)
        if existing is not None:
            same = {k: v for k, v in existing["body"].items() if k != "observed_at"} == {
                k: v for k, v in outcome.items() if k != "observed_at"
            }
            if same and (body.observed_at is None or existing["body"].get("observed_at") == outcome["observed_at"]):
                leaf = uow.ledger.read(existing["ledger_index"]).leaf_hash.hex()
                return OutcomeResult(existing["body"], existing["ledger_index"], leaf, False)
            raise ConflictError(f"decision {decision_id!r} already has a different outcome")
        payload = OutcomeRecorded(decision_id=decision_id, outcome=outcome, decision_ledger_index=decision.ledger_index)
        [entry] = services.ledger.append(uow.ledger, [payload.draft()])
        recorded = parse_timestamp(entry.recorded_at)  # the entry's time, so the row can be checked
        uow.outcomes.add(decision_id=decision_id, body=outcome, ledger_index=entry.index, recorded_at=recorded)
    return OutcomeResult(outcome, entry.index, entry.leaf_hash.hex(), True)
