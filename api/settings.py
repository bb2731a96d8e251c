"""Configuration from the environment (``RATIONALE_*``). Read only by the composition root, never at import."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audit.trust import VerifierKey, parse_verifier_keys


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_explain_processes() -> int:
    """One explain process per core, up to four: KernelSHAP, LIME and anchors then use every core."""
    return min(4, available_cores())


class Settings(BaseSettings):
    """Every knob of a deployment. Defaults give the embedded mode: SQLite file + in-process worker pool."""

    model_config = SettingsConfigDict(env_prefix="RATIONALE_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path(".rationale"), description="database file, blobs and signing keys")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    origin: str = Field(default="rationale.local/ledger", description="checkpoint origin naming this deployment")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)

    executor: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    workers: int = Field(default=2, ge=0, description="in-process explanation threads (local executor)")
    explain_processes: int = Field(
        default_factory=lambda: default_explain_processes(),
        ge=0,
        description="child processes computing the local pool's explanations, so the GIL-bound explainer "
        "libraries do not stall recording and a batch uses every core (default: the cores, at most 4; "
        "0: compute in the worker threads)",
    )
    batch_size: int = Field(
        default=512,
        ge=1,
        description="most jobs a worker claims at once; slower methods are claimed fewer, about 4 s of work "
        "for its processes, and computed in chunks of about 0.5 s, each recorded as soon as it returns",
    )
    batch_window_ms: int = Field(
        default=100,
        ge=0,
        description="a woken worker, or one that has just emptied the queue, waits this long for a batch to fill",
    )
    method_batch_sizes: dict[str, int] = Field(
        default_factory=lambda: {"anchors": 2, "counterfactuals": 2},
        description="jobs per micro-batch by method (JSON), overriding batch_size: small for the methods that "
        "explain row by row, so that a burst is shared by every worker",
    )
    lease_seconds: float = Field(default=120.0, gt=0, description="a claimed job returns to the queue after this")
    poll_seconds: float = Field(default=0.5, gt=0)
    max_queue_depth: int = Field(default=50_000, ge=1, description="above this, decisions report back-pressure")
    max_batch_decisions: int = Field(default=1000, ge=1, description="largest POST /v1/decisions batch")
    intake_max_group: int = Field(
        default=256, ge=1, description="most single-decision requests recorded in one transaction (group commit)"
    )
    intake_window_ms: float = Field(
        default=2.0,
        ge=0,
        le=50,
        description="under concurrent load, wait at most this long for a group as large as the last one "
        "(a lone request never waits)",
    )

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

    # Witnesses (docs/witnesses.md): the log pushes each new checkpoint to these for cosigning ...
    witnesses: str = Field(
        default="",
        description="witnesses to push checkpoints to: '<witness verifier key> <URL prefix>' pairs, separated "
        "by commas or newlines",
    )
    witness_poll_seconds: float = Field(default=0.5, gt=0, description="pusher: look for a new checkpoint")
    witness_timeout_seconds: float = Field(default=5.0, gt=0, description="HTTP timeout of one add-checkpoint call")
    export_witness_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="an export waits this long for every witness to cosign the checkpoint that seals its bundle",
    )
    # ... and a verifier counts cosignatures by these keys only.
    witness_keys: str = Field(
        default="", description="witness verifier keys a verifier trusts, separated by commas or whitespace"
    )
    witness_quorum: int | None = Field(
        default=None, ge=0, description="cosignatures the latest checkpoint needs (default: every witness key)"
    )

    @field_validator("witnesses", "witness_keys")
    @classmethod
    def _witness_config_parses(cls, value: str, info: ValidationInfo) -> str:
        from api.services.witnessing import parse_witness_keys, parse_witnesses

        if info.field_name == "witnesses":
            parse_witnesses(value)
        else:
            parse_witness_keys(value)
        return value

    trusted_keys: str = Field(
        default="",
        description="C2SP verifier keys (name+hash+base64), comma- or space-separated, trusted besides the "
        "public halves of the data-dir keyring; checked when the settings load",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _trusted_keys_parse(cls, value: str) -> str:
        parse_verifier_keys(value)  # raises KeyFormatError (a ValueError) naming the bad key
        return value

    @property
    def trust_anchors(self) -> tuple[VerifierKey, ...]:
        """The keys configured in RATIONALE_TRUSTED_KEYS."""
        return parse_verifier_keys(self.trusted_keys)

    # --- request limits and upload safety (issue #15, #14 item 6; README "Limits") ---------------------------
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="largest request body of every route but the uploads (413 above it)",
    )
    max_upload_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        le=8 * 1024**3,
        description="largest POST /v1/models body (artifact + manifest + background; 413 above it)",
    )
    allow_pickle: bool = Field(
        default=False,
        description="let admins register pickle/joblib artifacts, which run arbitrary code when loaded",
    )
    skops_trusted_types: str = Field(
        default="",
        description="comma-separated exact type names (module.Class) a skops artifact may hold besides the "
        "built-in allow-list; never a module prefix",
    )

    def batch_size_for(self, method: str) -> int:
        """The micro-batch size of one method: its own if set, else ``batch_size``."""
        return max(1, self.method_batch_sizes.get(method, self.batch_size))

    # access control (README "Access control"; PRODUCT.md §8)
    auth: Literal["on", "off"] = Field(
        default="on",
        description="API keys and roles on every route; 'off' only for local development: refused in "
        "production, and `rationale serve` then binds loopback only",
    )
    key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="a found API key is trusted this long without reading it again: a revocation made through "
        "another process takes effect within it (one made through this one at once); 0 reads it on every request",
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
        return check_origin(value)

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL ({exc})") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"the database must be sqlite or postgresql, not {url.get_backend_name()!r}")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from exc
        if parts.scheme not in ("redis", "rediss", "amqp", "amqps", "memory"):
            raise ValueError(f"the broker URL scheme must be redis, rediss, amqp or memory, not {parts.scheme!r}")
        return value

    @field_validator("signing_key_file")
    @classmethod
    def _signing_key_is_readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not value.is_file():
            raise ValueError(f"{value} is not a file")
        if not os.access(value, os.R_OK):
            raise ValueError(f"{value} is not readable by this user")
        try:
            key = serialization.load_pem_private_key(value.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{value} is not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{value} holds a {type(key).__name__}, not an Ed25519 key")
        return value

    @field_validator("skops_trusted_types")
    @classmethod
    def _exact_type_names(cls, value: str) -> str:
        for name in split_type_names(value):
            if not _TYPE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an exact type name such as sklearn.tree._tree.Tree (no prefixes)")
        return value

    @property
    def extra_trusted_types(self) -> frozenset[str]:
        return frozenset(split_type_names(self.skops_trusted_types))

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


_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def split_type_names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def check_origin(value: str) -> str:
    """The origin is the first line of every checkpoint and the signing key's name in C2SP signed notes:
    non-empty, printable, without Unicode spaces or '+' (https://c2sp.org/signed-note)."""
    if not value:
        raise ValueError("origin must not be empty")
    if len(value) > 255:
        raise ValueError("origin must be at most 255 characters")
    if any(c.isspace() for c in value):
        raise ValueError(f"origin {value!r} contains a space: a checkpoint origin cannot carry one")
    if "+" in value:
        raise ValueError(f"origin {value!r} contains '+': a C2SP key name cannot carry one")
    if not value.isprintable():
        raise ValueError(f"origin {value!r} contains a control character")
    return value


def describe_settings_error(exc: Exception) -> str:
    """One line per bad RATIONALE_* variable, naming it, for the CLI's exit-code-2 message."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ("?",)
        variable = f"RATIONALE_{str(loc[0]).upper()}"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        given: Any = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
        lines.append(f"{variable}: {message}{shown}")
    return "\n".join(lines)
