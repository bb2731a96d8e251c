"""SQLAlchemy 2.0 typed mappings. These rows never leave the storage package: repositories convert them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")
# A decision's JSON columns keep their exact text on both databases (PostgreSQL's ``json``, not ``jsonb``):
# storage.db writes RFC 8785 text, the spelling of the ledger's entries, so `rationale verify` can compare a
# decision row with its entry's bytes as text instead of parsing each entry (storage/rowscan.py; 0007).
TextJson = JSON()


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out on both back-ends (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[dict[str, Any]] = mapped_column(JsonType)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_format: Mapped[str] = mapped_column(String(32))
    background_sha256: Mapped[str] = mapped_column(String(64))
    trusted_pickle: Mapped[bool] = mapped_column(Boolean, default=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_model_occurred", "model_version_id", "occurred_at"),
        Index("ix_decisions_subject", "subject_ref"),
        Index("ix_decisions_occurred", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(200), unique=True)
    model_version_id: Mapped[int] = mapped_column(Integer)
    model_ref: Mapped[str] = mapped_column(String(260))
    inputs: Mapped[dict[str, Any]] = mapped_column(TextJson)
    output: Mapped[dict[str, Any]] = mapped_column(TextJson)
    client_output: Mapped[dict[str, Any] | None] = mapped_column(TextJson, nullable=True)
    output_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    subject_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    context: Mapped[dict[str, Any]] = mapped_column(TextJson)
    body_sha256: Mapped[str] = mapped_column(String(64))
    ledger_index: Mapped[int] = mapped_column(BigInteger)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("decision_id", "method", "params_hash", name="uq_jobs_request"),
        Index("ix_jobs_claim", "state", "created_at"),
        Index("ix_jobs_decision", "decision_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    params_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    explanation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExplanationRow(Base):
    __tablename__ = "explanations"
    __table_args__ = (
        UniqueConstraint("decision_id", "method", "params_hash", name="uq_explanations_request"),
        Index("ix_explanations_decision", "decision_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(32))
    params_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OutcomeRow(Base):
    __tablename__ = "outcomes"

    decision_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    entry_type: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[str] = mapped_column(String(40))
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerNodeRow(Base):
    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CheckpointRow(Base):
    __tablename__ = "ledger_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[str] = mapped_column(String(40))


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[str] = mapped_column(String(40))


APPEND_ONLY_TABLES = ("ledger_entries", "ledger_nodes", "ledger_checkpoints", "signing_keys")


class DeploymentRow(Base):
    """Index of the ``model.deployment`` ledger entries (migration 0006_toolkit)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_model", "model_name", "effective_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    model_version_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
