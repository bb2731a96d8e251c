"""The payload of a ``model.deployment`` ledger entry: which version of a model went live, when, and why.

One typed, versioned class is the single definition used to write the entry, read it back from the entry's
bytes, check a row against it and document it (PRODUCT.md §4: rows are an index, the ledger is the record).
Version 1 fields:

- ``payload_version``: 1
- ``model``: the model name; ``version``: the version that is live from ``effective_at`` on
- ``action``: ``"deploy"`` (a version goes live) or ``"rollback"`` (an earlier live version goes live again)
- ``reason``: why, in the operator's words (required, at most 2,000 characters)
- ``effective_at``: RFC 3339 UTC moment from which the version serves
- ``model_ledger_index``: the index of the version's ``model.registered`` entry
- ``artifact_sha256``: the artifact that version serves, so the entry alone says what ran
- ``previous_version``: the version live until then, or null for the first deployment
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from audit.errors import NonCanonicalValueError

ACTIONS = ("deploy", "rollback")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
MAX_REASON = 2000


class DeploymentPayloadError(NonCanonicalValueError):
    """A deployment payload field is missing or malformed; ``path`` names it."""


@dataclass(frozen=True, slots=True)
class DeploymentPayload:
    """Validated in ``__init__``; round-trips through ``to_dict`` / ``from_dict`` unchanged."""

    ENTRY_TYPE: ClassVar[str] = "model.deployment"
    VERSION: ClassVar[int] = 1

    model: str
    version: str
    action: str
    reason: str
    effective_at: str
    model_ledger_index: int
    artifact_sha256: str
    previous_version: str | None = None

    def __post_init__(self) -> None:
        for name in ("model", "version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > 128:
                raise DeploymentPayloadError(name, "must be a non-empty string of at most 128 characters")
        if self.action not in ACTIONS:
            raise DeploymentPayloadError("action", f"must be one of {list(ACTIONS)}")
        if not isinstance(self.reason, str) or not self.reason.strip() or len(self.reason) > MAX_REASON:
            raise DeploymentPayloadError("reason", f"must be a non-empty string of at most {MAX_REASON} characters")
        if not isinstance(self.effective_at, str) or not _MOMENT.match(self.effective_at):
            raise DeploymentPayloadError("effective_at", "must be RFC 3339 UTC with microseconds (…T…​.ffffffZ)")
        if isinstance(self.model_ledger_index, bool) or not isinstance(self.model_ledger_index, int):
            raise DeploymentPayloadError("model_ledger_index", "must be an integer")
        if self.model_ledger_index < 0:
            raise DeploymentPayloadError("model_ledger_index", "must not be negative")
        if not isinstance(self.artifact_sha256, str) or not _SHA256.match(self.artifact_sha256):
            raise DeploymentPayloadError("artifact_sha256", "must be 64 lower-case hex digits")
        if self.previous_version is not None and (
            not isinstance(self.previous_version, str) or not self.previous_version
        ):
            raise DeploymentPayloadError("previous_version", "must be a non-empty string or null")

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload_version": self.VERSION,
            "model": self.model,
            "version": self.version,
            "action": self.action,
            "reason": self.reason,
            "effective_at": self.effective_at,
            "model_ledger_index": self.model_ledger_index,
            "artifact_sha256": self.artifact_sha256,
            "previous_version": self.previous_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentPayload:
        """Read a payload back from an entry; unknown versions and extra or missing fields are refused."""
        if data.get("payload_version") != cls.VERSION:
            raise DeploymentPayloadError("payload_version", f"unsupported version {data.get('payload_version')!r}")
        expected = set(cls(**_EXAMPLE).to_dict())
        if set(data) != expected:
            extra, missing = sorted(set(data) - expected), sorted(expected - set(data))
            raise DeploymentPayloadError("payload", f"unexpected fields {extra}, missing fields {missing}")
        return cls(**{k: v for k, v in data.items() if k != "payload_version"})


_EXAMPLE: dict[str, Any] = {
    "model": "m",
    "version": "1",
    "action": "deploy",
    "reason": "example",
    "effective_at": "2026-01-01T00:00:00.000000Z",
    "model_ledger_index": 0,
    "artifact_sha256": "0" * 64,
}
