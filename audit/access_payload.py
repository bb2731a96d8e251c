"""Typed, versioned payloads of the access-control ledger entries (PRODUCT.md §8: every read is recorded).

Two entry types:

- ``access.read`` (:class:`AccessRead`): who (key id, owner, role) read what (an action and the decision ids,
  subject references, export or entry it touched) and why (the stated purpose). *When* is the entry's own
  ``recorded_at``.
- ``access.key`` (:class:`AccessKeyEvent`): an API key was created or revoked, by whom. The key's secret and
  its hash are never in the ledger.

The class is the one definition used to write an entry (``to_dict``), read one back (``from_dict``, which
checks every field and refuses unknown ones) and document it. ``version`` lets later readers tell shapes apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from audit.errors import AuditError

ACCESS_READ_TYPE = "access.read"
ACCESS_KEY_TYPE = "access.key"
ROLES = ("ingest", "data_scientist", "compliance", "regulator", "admin")
MAX_TEXT = 500


class AccessPayloadError(AuditError, ValueError):
    """An access entry's payload does not have the documented shape."""


def _text(data: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise AccessPayloadError(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def _strings(data: dict[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AccessPayloadError(f"{name} must be a list of strings")
    return tuple(value)


def _check_version(data: dict[str, Any], version: int) -> None:
    if data.get("v") != version:
        raise AccessPayloadError(f"unsupported access payload version {data.get('v')!r} (this code reads {version})")


def _check_keys(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise AccessPayloadError(f"unknown fields in access payload: {', '.join(sorted(unknown))}")


@dataclass(frozen=True, slots=True)
class AccessRead:
    """One read of personal records. ``target`` names the resource (decision id, export id, query)."""

    TYPE: ClassVar[str] = ACCESS_READ_TYPE
    VERSION: ClassVar[int] = 1

    key_id: str
    owner: str
    role: str
    action: str
    purpose: str | None = None
    target: dict[str, Any] = field(default_factory=dict)
    decision_ids: tuple[str, ...] = ()
    subject_refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise AccessPayloadError(f"role must be one of {', '.join(ROLES)}")
        for name in ("key_id", "owner", "action"):
            _text({name: getattr(self, name)}, name)
        _text({"purpose": self.purpose}, "purpose", optional=True)
        if not isinstance(self.target, dict):
            raise AccessPayloadError("target must be an object")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": self.VERSION,
            "key_id": self.key_id,
            "owner": self.owner,
            "role": self.role,
            "action": self.action,
            "target": dict(self.target),
            "decision_ids": list(self.decision_ids),
            "subject_refs": list(self.subject_refs),
        }
        if self.purpose is not None:
            data["purpose"] = self.purpose
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessRead:
        if not isinstance(data, dict):
            raise AccessPayloadError("an access payload is an object")
        _check_version(data, cls.VERSION)
        _check_keys(
            data, {"v", "key_id", "owner", "role", "action", "purpose", "target", "decision_ids", "subject_refs"}
        )
        target = data.get("target", {})
        if not isinstance(target, dict):
            raise AccessPayloadError("target must be an object")
        return cls(
            key_id=str(_text(data, "key_id")),
            owner=str(_text(data, "owner")),
            role=str(_text(data, "role")),
            action=str(_text(data, "action")),
            purpose=_text(data, "purpose", optional=True),
            target=target,
            decision_ids=_strings(data, "decision_ids"),
            subject_refs=_strings(data, "subject_refs"),
        )


@dataclass(frozen=True, slots=True)
class AccessKeyEvent:
    """An API key created or revoked. ``by`` names who did it (an admin key id, or ``cli:<user>``)."""

    TYPE: ClassVar[str] = ACCESS_KEY_TYPE
    VERSION: ClassVar[int] = 1
    EVENTS: ClassVar[tuple[str, ...]] = ("created", "revoked")

    event: str
    key_id: str
    owner: str
    role: str
    by: str
    expires_at: str | None = None

    def __post_init__(self) -> None:
        if self.event not in self.EVENTS:
            raise AccessPayloadError(f"event must be one of {', '.join(self.EVENTS)}")
        if self.role not in ROLES:
            raise AccessPayloadError(f"role must be one of {', '.join(ROLES)}")
        for name in ("key_id", "owner", "by"):
            _text({name: getattr(self, name)}, name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": self.VERSION,
            "event": self.event,
            "key_id": self.key_id,
            "owner": self.owner,
            "role": self.role,
            "by": self.by,
        }
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessKeyEvent:
        if not isinstance(data, dict):
            raise AccessPayloadError("an access payload is an object")
        _check_version(data, cls.VERSION)
        _check_keys(data, {"v", "event", "key_id", "owner", "role", "by", "expires_at"})
        return cls(
            event=str(_text(data, "event")),
            key_id=str(_text(data, "key_id")),
            owner=str(_text(data, "owner")),
            role=str(_text(data, "role")),
            by=str(_text(data, "by")),
            expires_at=_text(data, "expires_at", optional=True),
        )
