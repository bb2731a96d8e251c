"""HTTP request and response shapes. Requests forbid unknown fields so a typo is a 422, not silence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.moments import Moment

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$"
METHODS = ("shap", "lime", "anchors", "counterfactuals")
Method = Literal["shap", "lime", "anchors", "counterfactuals"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    type: Literal["number", "integer", "category", "boolean"]
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    immutable: bool = False
    monotone: Literal["increasing", "decreasing"] | None = None
    label: str | None = None
    personal: bool = False


class BudgetIn(Strict):
    max_model_calls: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


class ExplainersIn(Strict):
    """Which methods run for every decision of this model, and their parameters."""

    default_methods: list[Method] = Field(default=["shap"])
    params: dict[Method, dict[str, Any]] = Field(default_factory=dict)
    budgets: dict[Method, BudgetIn] = Field(default_factory=dict)


ArtifactFormat = Literal["skops", "xgboost-json", "xgboost-ubj", "lightgbm-text", "onnx", "pickle", "joblib"]


class ManifestIn(Strict):
    """Everything about a model version besides the artifact bytes."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=NAME_PATTERN)
    task: Literal["binary", "multiclass", "regression"]
    class_labels: list[str] = Field(default_factory=list)
    positive_class: str | None = None
    features: list[FeatureIn] = Field(min_length=1)
    format: ArtifactFormat | None = Field(default=None, description="detected from the bytes when omitted")
    background: list[dict[str, Any]] | None = Field(
        default=None, description="background sample rows (raw features); or send a `background` file part"
    )
    explainers: ExplainersIn = Field(default_factory=ExplainersIn)
    templates: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class LedgerRef(BaseModel):
    index: int
    leaf_hash: str


class RowMismatchPublic(BaseModel):
    table: str
    key: str = Field(description="the row's key, e.g. decision_id='d-1'")
    index: int | None = Field(description="the ledger entry the row points at")
    fields: list[str] = Field(description="the row's fields that differ from the entry")
    message: str


class IntegrityPublic(BaseModel):
    """Whether every row served agrees with the ledger entry it indexes. On "mismatch" the values served
    are the entry's (the record), and each differing row is named."""

    status: Literal["ok", "mismatch"]
    mismatches: list[RowMismatchPublic] = Field(default_factory=list)


class ModelVersionPublic(BaseModel):
    name: str
    version: str
    ref: str
    task: str
    class_labels: list[str]
    features: list[dict[str, Any]]
    artifact_sha256: str
    artifact_format: str
    background_sha256: str
    trusted_pickle: bool
    explainers: dict[str, Any]
    metadata: dict[str, Any]
    registered_at: datetime
    ledger: LedgerRef | None = None
    created: bool | None = None
    integrity: IntegrityPublic | None = None


class ModelList(BaseModel):
    items: list[ModelVersionPublic]


class DecisionCreate(Strict):
    decision_id: str = Field(pattern=ID_PATTERN)
    model: str = Field(description="name@version", min_length=3)
    inputs: dict[str, Any]
    output: dict[str, Any] | None = Field(default=None, description="the client's own output, checked for skew")
    subject_ref: str | None = Field(default=None, max_length=200)
    occurred_at: Moment | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    explain: list[Method] | None = Field(default=None, description="methods to run; model defaults if omitted")


class DecisionBatch(Strict):
    decisions: list[DecisionCreate] = Field(min_length=1)


class JobPublic(BaseModel):
    job_id: str
    decision_id: str
    method: str
    state: str
    attempts: int
    error: str | None = None
    explanation_id: str | None = None
    created_at: datetime
    updated_at: datetime


class DecisionRecorded(BaseModel):
    decision_id: str
    created: bool
    model: str
    output: dict[str, Any]
    output_mismatch: bool
    ledger: LedgerRef
    jobs: list[JobPublic]


class DecisionsRecorded(BaseModel):
    decisions: list[DecisionRecorded]
    queue_depth: int
    backpressure: bool


class ExplanationPublic(BaseModel):
    explanation_id: str
    method: str
    status: str
    body: dict[str, Any]
    ledger: LedgerRef
    created_at: datetime


class DecisionPublic(BaseModel):
    decision_id: str
    model: str
    inputs: dict[str, Any]
    output: dict[str, Any]
    client_output: dict[str, Any] | None
    output_mismatch: bool
    subject_ref: str | None
    occurred_at: datetime
    recorded_at: datetime
    context: dict[str, Any]
    ledger: LedgerRef
    outcome: dict[str, Any] | None = None
    explanations: list[ExplanationPublic] = Field(default_factory=list)
    jobs: list[JobPublic] = Field(default_factory=list)
    reasons: dict[str, Any] | None = None
    outcome_ledger: LedgerRef | None = None
    integrity: IntegrityPublic | None = None


class DecisionSummary(BaseModel):
    decision_id: str
    model: str
    output: dict[str, Any]
    subject_ref: str | None
    occurred_at: datetime
    ledger_index: int
    outcome: dict[str, Any] | None = None
    ledger: LedgerRef | None = None
    outcome_ledger: LedgerRef | None = None
    integrity: IntegrityPublic | None = None


class DecisionPage(BaseModel):
    items: list[DecisionSummary]
    next_cursor: str | None


class ExplanationRequest(Strict):
    methods: list[Method] = Field(min_length=1)
    params: dict[Method, dict[str, Any]] = Field(default_factory=dict)
    target: str | None = Field(default=None, description="class label to explain; the predicted one if omitted")


class JobsCreated(BaseModel):
    jobs: list[JobPublic]


class OutcomeCreate(Strict):
    label: str | None = None
    value: float | None = None
    observed_at: Moment | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class OutcomeRecorded(BaseModel):
    decision_id: str
    outcome: dict[str, Any]
    ledger: LedgerRef
