"""Typed, versioned payloads of the ledger's entry types: the one definition used to write, read and check.

Each class is frozen, validates itself, and converts with explicit ``to_payload`` / ``from_payload``
(python-tuf's ``to_dict`` / ``from_dict``). ``from_payload`` never trusts its input: a payload that does not
have the documented shape raises ``PayloadError`` naming the field, so a reader can report the entry instead
of failing later on a missing key.

Versions: every class has a ``version``. Version 1 is the shape written before versions existed and is
encoded *without* a version member, so every entry already in a ledger keeps its exact bytes and leaf
hash; a later version writes ``"payload_version": n`` and ``from_payload`` dispatches on it. A payload
naming a version this code does not know is refused, never guessed at.

The entry types of exports (``export.created``) and access records live with their own features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from audit.canonical import Encoded
from audit.entry import EntryDraft
from audit.errors import AuditError

VERSION_KEY = "payload_version"


class PayloadError(AuditError, ValueError):
    """An entry's payload does not have the shape its type and version promise."""

    def __init__(self, entry_type: str, field_name: str, message: str) -> None:
        super().__init__(f"{entry_type} payload: {field_name}: {message}")
        self.entry_type = entry_type
        self.field = field_name


_Json = dict[str, Any]
P = TypeVar("P", bound="Payload")


def _version(entry_type: str, data: Mapping[str, Any], known: tuple[int, ...]) -> int:
    version = data.get(VERSION_KEY, 1)
    if type(version) is not int or version not in known:
        raise PayloadError(entry_type, VERSION_KEY, f"unknown payload version {version!r} (known: {list(known)})")
    return version


def _versioned(payload: _Json, entry_type: str, version: int, known: tuple[int, ...]) -> _Json:
    """Version 1 is written without a version member (the bytes of every existing entry); later ones with."""
    if version not in known:
        raise PayloadError(entry_type, VERSION_KEY, f"unknown payload version {version!r} (known: {list(known)})")
    if version != 1:
        payload[VERSION_KEY] = version
    return payload


class _Reader:
    """Typed access to a payload mapping; each getter raises PayloadError naming the field."""

    def __init__(self, entry_type: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise PayloadError(entry_type, "payload", "is not a JSON object")
        self.entry_type = entry_type
        self.data = data

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise PayloadError(self.entry_type, name, "is missing")
        return self.data[name]

    def fail(self, name: str, message: str) -> PayloadError:
        return PayloadError(self.entry_type, name, message)

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        return value

    def opt_text(self, name: str) -> str | None:
        value = self._get(name)
        if value is not None and not isinstance(value, str):
            raise self.fail(name, "must be a string or null")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if type(value) is not int:
            raise self.fail(name, "must be an integer")
        return value

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def obj(self, name: str) -> _Json:
        value = self._get(name)
        if not isinstance(value, Mapping):
            raise self.fail(name, "must be a JSON object")
        return dict(value)

    def opt_obj(self, name: str) -> _Json | None:
        value = self._get(name)
        if value is not None and not isinstance(value, Mapping):
            raise self.fail(name, "must be a JSON object or null")
        return dict(value) if value is not None else None

    def text_list(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of strings")
        return tuple(value)


class Payload:
    """Base of the entry payload classes: ``TYPES`` are the entry types a class reads."""

    __slots__ = ()
    TYPES: ClassVar[tuple[str, ...]]
    VERSIONS: ClassVar[tuple[int, ...]] = (1,)

    @property
    def entry_type(self) -> str:
        return self.TYPES[0]

    def to_payload(self) -> _Json:
        raise NotImplementedError

    def draft(self, known: Mapping[str, Encoded] | None = None) -> EntryDraft:
        """The entry to append: this payload's type and its JSON form. ``known`` gives members whose bytes
        were made already; they are spliced in only where the member is that very object (never a copy
        that might differ)."""
        payload = self.to_payload()
        for name, encoded in (known or {}).items():
            if payload.get(name) is encoded.value:
                payload[name] = encoded
        return EntryDraft(self.entry_type, payload)

    @classmethod
    def from_payload(cls: type[P], data: Any, *, entry_type: str | None = None) -> P:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ModelRegistered(Payload):
    """``model.registered``: an immutable model version, its artifact, background and manifest."""

    TYPES: ClassVar[tuple[str, ...]] = ("model.registered",)

    name: str
    model_version: str  # the model's version ("1"), not the payload's
    artifact_sha256: str
    artifact_format: str
    background_sha256: str
    background_rows: int
    trusted_pickle: bool
    manifest: _Json
    version: int = 1

    def __post_init__(self) -> None:
        if not self.name or not self.model_version:
            raise PayloadError("model.registered", "name", "name and version must be non-empty")
        if not isinstance(self.manifest.get("task"), str):
            raise PayloadError("model.registered", "manifest.task", "must be a string")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.model_version}"

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    def to_payload(self) -> _Json:
        payload = {
            "model": self.ref,
            "name": self.name,
            "version": self.model_version,
            "artifact_sha256": self.artifact_sha256,
            "artifact_format": self.artifact_format,
            "background_sha256": self.background_sha256,
            "background_rows": self.background_rows,
            "trusted_pickle": self.trusted_pickle,
            "manifest": self.manifest,
        }
        return _versioned(payload, "model.registered", self.version, self.VERSIONS)

    @classmethod
    def from_payload(cls, data: Any, *, entry_type: str | None = None) -> ModelRegistered:
        r = _Reader("model.registered", data)
        version = _version(r.entry_type, r.data, cls.VERSIONS)
        made = cls(
            name=r.text("name"),
            model_version=r.text("version"),
            artifact_sha256=r.text("artifact_sha256"),
            artifact_format=r.text("artifact_format"),
            background_sha256=r.text("background_sha256"),
            background_rows=r.integer("background_rows"),
            trusted_pickle=r.flag("trusted_pickle"),
            manifest=r.obj("manifest"),
            version=version,
        )
        if r.text("model") != made.ref:
            raise r.fail("model", f"says {r.data['model']!r} but name@version is {made.ref!r}")
        return made


@dataclass(frozen=True, slots=True)
class DecisionRecorded(Payload):
    """``decision.recorded``: one decision as the client logged it and the output the model gave."""

    TYPES: ClassVar[tuple[str, ...]] = ("decision.recorded",)

    decision_id: str
    model: str  # name@version
    model_artifact_sha256: str
    inputs: _Json
    output: _Json
    client_output: _Json | None
    output_mismatch: _Json | None  # the differences found, or None when the client's output agreed
    subject_ref: str | None
    occurred_at: str  # RFC 3339 UTC, as audit.entry.format_timestamp writes it
    context: _Json
    explanations_requested: tuple[str, ...]
    body_sha256: str
    version: int = 1

    def __post_init__(self) -> None:
        if not self.decision_id:
            raise PayloadError("decision.recorded", "decision_id", "must be non-empty")

    def to_payload(self) -> _Json:
        payload = {
            "decision_id": self.decision_id,
            "model": self.model,
            "model_artifact_sha256": self.model_artifact_sha256,
            "inputs": self.inputs,
            "output": self.output,
            "client_output": self.client_output,
            "output_mismatch": self.output_mismatch,
            "subject_ref": self.subject_ref,
            "occurred_at": self.occurred_at,
            "context": self.context,
            "explanations_requested": list(self.explanations_requested),
            "body_sha256": self.body_sha256,
        }
        return _versioned(payload, "decision.recorded", self.version, self.VERSIONS)

    @classmethod
    def from_payload(cls, data: Any, *, entry_type: str | None = None) -> DecisionRecorded:
        r = _Reader("decision.recorded", data)
        return cls(
            decision_id=r.text("decision_id"),
            model=r.text("model"),
            model_artifact_sha256=r.text("model_artifact_sha256"),
            inputs=r.obj("inputs"),
            output=r.obj("output"),
            client_output=r.opt_obj("client_output"),
            output_mismatch=r.opt_obj("output_mismatch"),
            subject_ref=r.opt_text("subject_ref"),
            occurred_at=r.text("occurred_at"),
            context=r.obj("context"),
            explanations_requested=r.text_list("explanations_requested"),
            body_sha256=r.text("body_sha256"),
            version=_version(r.entry_type, r.data, cls.VERSIONS),
        )


_EXPLANATION_COMMON = (
    "explanation_id",
    "decision_id",
    "job_id",
    "method",
    "params_hash",
    "requested_params",
    "requested_target",
    "attempt",
    "model",
    "background_sha256",
)


@dataclass(frozen=True, slots=True)
class ExplanationRecorded(Payload):
    """``explanation.recorded`` (a result) or ``explanation.failed`` (``error`` set, ``result`` empty).

    ``result`` holds the explainer's own members (``explain.results.ExplanationResult.to_dict()``: backend,
    target, result, parameters, seed, ...) flat beside the request's, as they have always been written;
    their shape belongs to ``explain``, so it is carried whole and read back by its own ``from_dict``.
    """

    TYPES: ClassVar[tuple[str, ...]] = ("explanation.recorded", "explanation.failed")

    explanation_id: str
    decision_id: str
    job_id: str | None
    method: str
    params_hash: str
    requested_params: _Json
    requested_target: str | None
    attempt: int
    model: str | None
    background_sha256: str | None
    result: _Json = field(default_factory=dict)
    failed: bool = False
    error: str | None = None  # why it failed (explanation.failed only)
    version: int = 1

    def __post_init__(self) -> None:
        if self.failed and self.result:
            raise PayloadError(self.entry_type, "result", "a failed explanation has no result")
        if not self.failed and (self.error is not None or not self.result):
            raise PayloadError(self.entry_type, "result", "a recorded explanation has a result and no error")
            raise PayloadError(self.entry_type, "result", "a recorded explanation needs a result")
        clash = sorted(set(self.result) & {*_EXPLANATION_COMMON, "error", VERSION_KEY})
        if clash:
            raise PayloadError(self.entry_type, clash[0], "is a request member, not a result member")

    @property
    def entry_type(self) -> str:
        return "explanation.failed" if self.failed else "explanation.recorded"

    @property
    def succeeded(self) -> bool:
        return not self.failed

    @property
    def status(self) -> str:
        """The explanations table's ``status`` for this entry."""
        return "succeeded" if self.succeeded else "failed"

    def to_payload(self) -> _Json:
        common: _Json = {
            "explanation_id": self.explanation_id,
            "decision_id": self.decision_id,
            "job_id": self.job_id,
            "method": self.method,
            "params_hash": self.params_hash,
            "requested_params": self.requested_params,
            "requested_target": self.requested_target,
            "attempt": self.attempt,
            "model": self.model,
            "background_sha256": self.background_sha256,
        }
        payload = {**common, "error": self.error} if self.failed else {**common, **self.result}
        return _versioned(payload, self.entry_type, self.version, self.VERSIONS)

    @classmethod
    def from_payload(cls, data: Any, *, entry_type: str | None = None) -> ExplanationRecorded:
        kind = entry_type or "explanation.recorded"
        if kind not in cls.TYPES:
            raise PayloadError(kind, "type", "is not an explanation entry type")
        r = _Reader(kind, data)
        failed = kind == "explanation.failed"
        error = r.opt_text("error") if failed else None
        result = {} if failed else {k: v for k, v in r.data.items() if k not in _EXPLANATION_COMMON}
        if not failed and "error" in result:
            raise r.fail("error", "a recorded explanation carries no error")
        return cls(
            explanation_id=r.text("explanation_id"),
            decision_id=r.text("decision_id"),
            job_id=r.opt_text("job_id"),
            method=r.text("method"),
            params_hash=r.text("params_hash"),
            requested_params=r.obj("requested_params"),
            requested_target=r.opt_text("requested_target"),
            attempt=r.integer("attempt"),
            model=r.opt_text("model"),
            background_sha256=r.opt_text("background_sha256"),
            result=result,
            failed=failed,
            error=error,
            version=_version(kind, r.data, cls.VERSIONS),
        )


@dataclass(frozen=True, slots=True)
class OutcomeRecorded(Payload):
    """``outcome.recorded``: the real outcome of a decision, appended when it became known."""

    TYPES: ClassVar[tuple[str, ...]] = ("outcome.recorded",)

    decision_id: str
    outcome: _Json  # {"label": ...} or {"value": ...}, "observed_at", optional "context"
    decision_ledger_index: int
    version: int = 1

    def __post_init__(self) -> None:
        if ("label" in self.outcome) == ("value" in self.outcome):
            raise PayloadError("outcome.recorded", "outcome", "must hold exactly one of label or value")
        if not isinstance(self.outcome.get("observed_at"), str):
            raise PayloadError("outcome.recorded", "outcome.observed_at", "must be a string")

    @property
    def label(self) -> str | None:
        label = self.outcome.get("label")
        return label if isinstance(label, str) else None

    def to_payload(self) -> _Json:
        payload = {
            "decision_id": self.decision_id,
            "outcome": self.outcome,
            "decision_ledger_index": self.decision_ledger_index,
        }
        return _versioned(payload, "outcome.recorded", self.version, self.VERSIONS)

    @classmethod
    def from_payload(cls, data: Any, *, entry_type: str | None = None) -> OutcomeRecorded:
        r = _Reader("outcome.recorded", data)
        return cls(
            decision_id=r.text("decision_id"),
            outcome=r.obj("outcome"),
            decision_ledger_index=r.integer("decision_ledger_index"),
            version=_version(r.entry_type, r.data, cls.VERSIONS),
        )


PAYLOAD_CLASSES: dict[str, type[Payload]] = {
    entry_type: cls
    for cls in (ModelRegistered, DecisionRecorded, ExplanationRecorded, OutcomeRecorded)
    for entry_type in cls.TYPES
}


def parse_payload(entry_type: str, payload: Any) -> Payload:
    """The typed payload of an entry of a type defined here; raises PayloadError for any other shape."""
    cls = PAYLOAD_CLASSES.get(entry_type)
    if cls is None:
        raise PayloadError(entry_type, "type", "has no payload class in audit.payloads")
    return cls.from_payload(payload, entry_type=entry_type)
