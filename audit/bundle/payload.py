"""The ``export.created`` entry: the ledger's commitment to one bundle, made before the bundle is sealed.

It holds the SHA-256 of the bundle's manifest (every member's hash and size, the exact entry indices, the
filter, the tree size) and what the filter matched at that tree size — each decision with the indices of its
explanations and outcomes, and the model registrations — so that a bundle missing anything, or holding
anything more, contradicts a signed entry. ``assets/verify.py`` checks bundles against this shape; FORMAT.md
documents it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from audit.errors import AuditError


class ExportPayloadError(AuditError):
    """An export.created payload does not have the shape of its version."""


@dataclass(frozen=True, slots=True)
class MatchedDecision:
    """One decision the filter matched, with the entries that belong to it (all below the tree size)."""

    decision_id: str
    index: int
    explanations: tuple[int, ...] = ()
    outcomes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.decision_id or self.index < 0 or any(i < 0 for i in (*self.explanations, *self.outcomes)):
            raise ExportPayloadError("a matched decision needs an id and non-negative entry indices")

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "index": self.index,
            "explanations": list(self.explanations),
            "outcomes": list(self.outcomes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchedDecision:
        if set(data) != {"decision_id", "index", "explanations", "outcomes"}:
            raise ExportPayloadError("a matched decision has exactly decision_id, index, explanations, outcomes")
        return cls(str(data["decision_id"]), int(data["index"]), tuple(data["explanations"]), tuple(data["outcomes"]))

    @property
    def indices(self) -> tuple[int, ...]:
        return (self.index, *self.explanations, *self.outcomes)


@dataclass(frozen=True, slots=True)
class ExportCreated:
    """Version 1 of the export.created payload."""

    TYPE: ClassVar[str] = "export.created"
    VERSION: ClassVar[int] = 1

    export_id: str
    requested_by: str
    filter: Mapping[str, Any]
    tree_size: int  # the ledger size the filter was evaluated at; every listed entry is below it
    manifest_sha256: str
    decisions: Sequence[MatchedDecision] = ()
    models: Sequence[int] = ()  # model.registered entries of the decisions' models
    _indices: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.manifest_sha256) != 64 or any(c not in "0123456789abcdef" for c in self.manifest_sha256):
            raise ExportPayloadError("manifest_sha256 is 64 lowercase hex digits")
        listed = [*self.models, *(i for d in self.decisions for i in d.indices)]
        if len(set(listed)) != len(listed):
            raise ExportPayloadError("an entry index is listed twice")
        if any(not 0 <= i < self.tree_size for i in listed):
            raise ExportPayloadError("every listed entry is below the exported tree size")
        if len({d.decision_id for d in self.decisions}) != len(self.decisions):
            raise ExportPayloadError("a decision is listed twice")
        object.__setattr__(self, "_indices", frozenset(listed))

    @property
    def indices(self) -> list[int]:
        """Every entry the bundle holds besides this one, ascending."""
        return sorted(self._indices)

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "export_id": self.export_id,
            "requested_by": self.requested_by,
            "filter": dict(self.filter),
            "tree_size": self.tree_size,
            "manifest_sha256": self.manifest_sha256,
            "decisions": [d.to_dict() for d in self.decisions],
            "models": list(self.models),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ExportCreated:
        if payload.get("version") != cls.VERSION:
            raise ExportPayloadError(f"export.created version {payload.get('version')!r} is not {cls.VERSION}")
        expected = {"version", "export_id", "requested_by", "filter", "tree_size", "manifest_sha256"}
        if set(payload) != expected | {"decisions", "models"}:
            raise ExportPayloadError("export.created payload fields differ from version 1")
        return cls(
            export_id=str(payload["export_id"]),
            requested_by=str(payload["requested_by"]),
            filter=dict(payload["filter"]),
            tree_size=int(payload["tree_size"]),
            manifest_sha256=str(payload["manifest_sha256"]),
            decisions=tuple(MatchedDecision.from_dict(d) for d in payload["decisions"]),
            models=tuple(int(i) for i in payload["models"]),
        )
