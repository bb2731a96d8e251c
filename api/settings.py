"""Configuration from the environment (``RATIONALE_*``). Read only by the composition root, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a deployment. Defaults give the embedded mode: SQLite file + in-process worker pool."""

    model_config = SettingsConfigDict(env_prefix="RATIONALE_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path(".rationale"), description="database file, blobs and signing keys")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    origin: str = Field(default="rationale.local/ledger", description="checkpoint origin naming this deployment")
    host: str = "127.0.0.1"
    port: int = 8000

    executor: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    workers: int = Field(default=2, ge=0, description="in-process explanation threads (local executor)")
    explain_processes: int = Field(
        default=1,
        ge=0,
        description="child processes computing the local pool's explanations, so the GIL-bound explainer "
        "libraries do not stall recording (0: compute in the worker threads)",
    )
    batch_size: int = Field(default=32, ge=1, description="jobs explained in one vectorised call")
    batch_window_ms: int = Field(default=20, ge=0, description="wait this long to fill a batch")
    lease_seconds: float = Field(default=120.0, gt=0, description="a claimed job returns to the queue after this")
    poll_seconds: float = Field(default=0.5, gt=0)
    max_queue_depth: int = Field(default=50_000, ge=1, description="above this, decisions report back-pressure")
    max_batch_decisions: int = Field(default=1000, ge=1, description="largest POST /v1/decisions batch")

    gc_freeze: bool = Field(
        default=True,
        description="after start-up and after loading a model, move long-lived objects out of the garbage "
        "collector's walks (api/heap.py); off in test processes that build many services",
    )

    budget_max_model_calls: int = Field(
        default=200_000, ge=1, description="rows the model may evaluate per explanation"
    )
    budget_max_seconds: float = Field(default=120.0, gt=0, description="wall time per explanation")

    checkpoint_every_entries: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: float = Field(default=60.0, gt=0)
    signing_key_file: Path | None = Field(default=None, description="operator-supplied Ed25519 PEM key")

    # access control (README "Access control"; PRODUCT.md §8)
    auth: Literal["on", "off"] = Field(
        default="on",
        description="API keys and roles on every route; 'off' only for local development: refused in "
        "production, and `rationale serve` then binds loopback only",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing reviewer-page sessions; default: a random key kept in data_dir/keys",
    )
    session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60, description="reviewer sign-in lifetime")

    @model_validator(mode="after")
    def _auth_off_only_in_development(self) -> Settings:
        if self.auth == "off" and self.environment == "production":
            raise ValueError("RATIONALE_AUTH=off is for local development only, never with environment=production")
        return self

    @field_validator("origin")
    @classmethod
    def _origin_is_one_line(cls, value: str) -> str:
        if not value or "\n" in value or value != value.strip():
            raise ValueError("origin must be a single non-empty line without surrounding spaces")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rationale.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"
