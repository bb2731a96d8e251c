"""Plain records the storage layer returns. They know nothing of SQLAlchemy; ORM rows never leave storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JOB_STATES = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True, slots=True)
class EncodedJson:
    """A JSON column's value with its RFC 8785 text already made (a ledger entry's payload bytes, which
    the row must spell the same anyway): written as that text, not encoded a second time."""

    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    id: int
    name: str
    version: str
    task: str
    manifest: dict[str, Any]  # features, class_labels, explainers, templates, metadata
    artifact_sha256: str
    artifact_format: str
    background_sha256: str
    trusted_pickle: bool
    ledger_index: int
    registered_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    model_version_id: int
    model_ref: str  # name@version
    inputs: dict[str, Any]
    output: dict[str, Any]  # {"label": ..., "scores": {...}} or {"value": ...}
    client_output: dict[str, Any] | None
    output_mismatch: bool
    subject_ref: str | None
    occurred_at: datetime
    recorded_at: datetime
    context: dict[str, Any]
    body_sha256: str  # idempotency: same decision_id and body -> same record
    ledger_index: int
    seq: int = 0  # storage order; the search cursor
    outcome: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    decision_id: str
    model_version_id: int
    method: str
    params: dict[str, Any]
    params_hash: str
    target: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    decision_id: str
    model_version_id: int
    method: str
    params: dict[str, Any]
    params_hash: str
    target: str | None
    state: str
    attempts: int
    max_attempts: int
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    explanation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExplanationRecord:
    id: str
    decision_id: str
    method: str
    params_hash: str
    status: str  # "succeeded" or "failed"
    body: dict[str, Any]  # ExplanationResult.to_dict(), or {"error": ..., ...} when failed
    ledger_index: int
    created_at: datetime
    job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
