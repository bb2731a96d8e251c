"""Recording decisions: validate, compute or check the output, append to the ledger, queue explanations.

A batch is one unit of work: either every decision in it is recorded (with its ledger entry and its jobs)
or none is. Replaying the same decision is harmless; the same id with another body is a conflict.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from api.container import Services
from api.schemas import DecisionCreate
from api.services.model_cache import LoadedModel
from api.services.models import resolve_model
from audit.canonical import Encoded, canonical_bytes, canonical_object, check_json_value
from audit.entry import EntryDraft, format_timestamp, parse_timestamp
from audit.errors import NonCanonicalValueError
from audit.payloads import DecisionRecorded
from explain.errors import InvalidInputError, UnknownMethodError
from explain.predictor import outputs_of, scores_of_rows
from explain.registry import EXPLAINERS, check_available, check_request
from storage.errors import ConflictError
from storage.records import DecisionRecord, EncodedJson, JobRecord, NewJob

SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    record: DecisionRecord
    created: bool
    leaf_hash: str
    jobs: list[JobRecord]


def params_hash(method: str, params: dict[str, Any], target: str | None) -> str:
    """Identity of an explanation request: same decision + method + parameters = the same explanation."""
    return hashlib.sha256(canonical_bytes({"method": method, "params": params, "target": target})).hexdigest()[:32]


def check_methods(methods: Sequence[str], *, field: str) -> list[str]:
    for i, method in enumerate(methods):
        if method not in EXPLAINERS:
            raise UnknownMethodError(f"{field}[{i}]: unknown method {method!r}; known: {sorted(EXPLAINERS)}")
    return list(dict.fromkeys(methods))


def compare_outputs(computed: dict[str, Any], given: dict[str, Any], *, field: str) -> dict[str, Any] | None:
    """Differences between the client's output and ours; None when they agree. Skew is a finding, not an error."""
    check_json_value(given, field)
    differences: dict[str, Any] = {}
    if "label" in computed:
        if "label" in given and str(given["label"]) != computed["label"]:
            differences["label"] = {"client": given["label"], "recomputed": computed["label"]}
        given_scores = given.get("scores")
        if isinstance(given_scores, dict):
            for label, value in given_scores.items():
                ours = computed["scores"].get(str(label))
                if ours is None or not isinstance(value, (int, float)) or abs(float(value) - ours) > SCORE_TOLERANCE:
                    differences.setdefault("scores", {})[str(label)] = {"client": value, "recomputed": ours}
    elif "value" in given:
        value = given["value"]
        ours = computed["value"]
        if not isinstance(value, (int, float)) or not math.isclose(float(value), ours, rel_tol=1e-6, abs_tol=1e-9):
            differences["value"] = {"client": value, "recomputed": ours}
    return differences or None


_EXACT = 2**53


def _same_json(raw: dict[str, Any], clean: dict[str, Any]) -> bool:
    """Whether RFC 8785 spells two objects with the same keys alike: numbers equal as doubles (``5`` and
    ``5.0`` are both ``5``), anything else equal and of one type (``true`` is not ``1``)."""
    for key, value in clean.items():
        other = raw[key]
        if type(other) is type(value):
            if other != value:
                return False
        elif not (
            type(other) in (int, float) and type(value) in (int, float) and other == value and abs(value) <= _EXACT
        ):
            return False
    return True


def _body_sha(item: DecisionCreate, inputs: Encoded | None) -> str:
    """SHA-256 of the request body's RFC 8785 bytes; the validated inputs' bytes are spliced in when they
    spell the raw inputs (as they do unless validation changed a value), so the inputs are encoded once."""
    body: dict[str, Any] = item.model_dump(mode="json")
    if inputs is not None and _same_json(body["inputs"], inputs.value):
        body["inputs"] = inputs
    return hashlib.sha256(canonical_object(body)).hexdigest()


def _encoded(value: dict[str, Any]) -> Encoded | None:
    """A member's bytes, made once for the body hash, the entry and the row; None when RFC 8785 cannot
    encode it (the entry's draft then refuses it, naming the field)."""
    try:
        return Encoded.of(value)
    except NonCanonicalValueError:
        return None


def _column(encoded: Encoded | None, value: dict[str, Any]) -> Any:
    """A JSON column spelled with the bytes made for the entry (storage/db.py writes them as they are)."""
    return value if encoded is None else EncodedJson(value, encoded.data.decode("utf-8"))


def _new_jobs(
    loaded: LoadedModel,
    decision_id: str,
    methods: Sequence[str],
    *,
    target: str | None = None,
    params_override: dict[str, dict[str, Any]] | None = None,
) -> list[NewJob]:
    jobs = []
    for method in methods:
        params = {**loaded.params_for(method), **(params_override or {}).get(method, {})}
        jobs.append(
            NewJob(
                id=uuid.uuid4().hex,
                decision_id=decision_id,
                model_version_id=loaded.record.id,
                method=method,
                params=params,
                params_hash=params_hash(method, params, target),
                target=target,
            )
        )
    return jobs


@dataclass(frozen=True, slots=True)
class PreparedDecision:
    """One decision checked against its model's schema, ready to be predicted and recorded."""

    item: DecisionCreate
    loaded: LoadedModel
    clean: dict[str, Any]
    sha: str
    methods: list[str]
    where: str  # the field path prefix of this decision in its request ("" or "decisions[3].")
    inputs: Encoded | None = None  # ``clean`` with its RFC 8785 bytes


def prepare_decision(
    services: Services, item: DecisionCreate, *, where: str, loaded_by_ref: dict[str, LoadedModel]
) -> PreparedDecision:
    """Validate one decision (422 naming the field). ``loaded_by_ref`` caches models across a batch or group."""
    check_json_value(item.context, f"{where}context")
    if item.output:
        check_json_value(item.output, f"{where}output")
    if item.model not in loaded_by_ref:
        model_record = resolve_model(services, item.model, field=f"{where}model")
        loaded_by_ref[item.model] = services.models.get(model_record)
    loaded = loaded_by_ref[item.model]
    clean = loaded.spec.validate_inputs(item.inputs, f"{where}inputs")
    methods = check_methods(
        item.explain if item.explain is not None else loaded.default_methods(), field=f"{where}explain"
    )
    if item.explain is not None:  # methods asked for by name must be able to run in this install
        for method in methods:
            check_available(method, loaded.params_for(method))
    inputs = _encoded(clean)
    return PreparedDecision(item, loaded, clean, _body_sha(item, inputs), methods, where, inputs)


def predict_outputs(prepared: Sequence[PreparedDecision]) -> list[dict[str, Any]]:
    """The model's output for every prepared decision: one vectorised predict per model."""
    outputs: list[dict[str, Any]] = [{} for _ in prepared]
    by_model: dict[str, list[int]] = {}
    for i, p in enumerate(prepared):
        by_model.setdefault(p.item.model, []).append(i)
    for positions in by_model.values():
        loaded = prepared[positions[0]].loaded
        scores = scores_of_rows(loaded.predictor, [prepared[i].clean for i in positions])
        for i, output in zip(positions, outputs_of(loaded.spec, scores), strict=True):
            outputs[i] = output
    return outputs


def record_prepared(
    services: Services,
    prepared: Sequence[PreparedDecision],
    outputs: Sequence[dict[str, Any]],
    *,
    isolate: bool = False,
    read_depth: bool = False,
) -> tuple[list[RecordedDecision | ConflictError], int | None]:
    """Record prepared decisions in ONE transaction (one ledger append); a result per position.

    ``isolate=False`` (a batch request): any conflict refuses the whole batch. ``isolate=True`` (a coalesced
    group of single-decision requests): a conflicting decision gets its own ConflictError and the others
    are recorded. The same id with the same body twice is one record; later positions get ``created=False``.
    ``read_depth`` reads the explanation queue depth in the same transaction (no second round trip).
    """
    results: list[RecordedDecision | ConflictError | None] = [None] * len(prepared)
    new_jobs: list[NewJob] = []
    depth: int | None = None
    with services.db.unit_of_work() as uow:
        ids = list(dict.fromkeys(p.item.decision_id for p in prepared))
        hashes = uow.decisions.body_hashes(ids)  # the full rows only of the ids seen before (rare)
        existing = {r.decision_id: r for r in uow.decisions.get_many(list(hashes))} if hashes else {}
        first_at: dict[str, int] = {}
        drafts: list[EntryDraft] = []
        fresh: list[tuple[int, DecisionRecorded, Encoded | None]] = []
        for i, p in enumerate(prepared):
            item = p.item
            old = existing.get(item.decision_id)
            conflict: ConflictError | None = None
            if old is not None:
                if old.body_sha256 != p.sha:
                    conflict = ConflictError(f"decision {item.decision_id!r} is already recorded with a different body")
            elif item.decision_id in first_at:
                if prepared[first_at[item.decision_id]].sha != p.sha:
                    conflict = ConflictError(
                        f"{p.where}decision_id: {item.decision_id!r} appears twice with different bodies"
                    )
            else:
                first_at[item.decision_id] = i
                mismatch = compare_outputs(outputs[i], item.output, field=f"{p.where}output") if item.output else None
                occurred = (item.occurred_at or services.clock()).astimezone(UTC)
                payload = DecisionRecorded(
                    decision_id=item.decision_id,
                    model=p.loaded.record.ref,
                    model_artifact_sha256=p.loaded.record.artifact_sha256,
                    inputs=p.clean,
                    output=outputs[i],
                    client_output=item.output,
                    output_mismatch=mismatch,
                    subject_ref=item.subject_ref,
                    occurred_at=format_timestamp(occurred),
                    context=item.context,
                    explanations_requested=tuple(p.methods),
                    body_sha256=p.sha,
                )
                output = _encoded(outputs[i])
                known = {name: e for name, e in (("inputs", p.inputs), ("output", output)) if e is not None}
                drafts.append(payload.draft(known))
                fresh.append((i, payload, output))
            if conflict is not None:
                if not isolate:
                    raise conflict
                results[i] = conflict
        entries = services.ledger.append(uow.ledger, drafts) if drafts else []
        rows: list[dict[str, Any]] = []
        leaves: list[str] = []
        for (i, payload, output), entry in zip(fresh, entries, strict=True):
            p = prepared[i]
            rows.append(
                {
                    "decision_id": p.item.decision_id,
                    "model_version_id": p.loaded.record.id,
                    "model_ref": p.loaded.record.ref,
                    "inputs": _column(p.inputs, p.clean),
                    "output": _column(output, payload.output),
                    "client_output": p.item.output,
                    "output_mismatch": payload.output_mismatch is not None,
                    "subject_ref": p.item.subject_ref,
                    "occurred_at": parse_timestamp(payload.occurred_at),
                    "recorded_at": parse_timestamp(entry.recorded_at),
                    "context": p.item.context,
                    "body_sha256": p.sha,
                    "ledger_index": entry.index,
                }
            )
            leaves.append(entry.leaf_hash.hex())
            new_jobs.extend(_new_jobs(p.loaded, p.item.decision_id, p.methods))
        created: dict[str, tuple[DecisionRecord, str]] = {}
        for decision, leaf in zip(uow.decisions.add_many(rows), leaves, strict=True):
            created[decision.decision_id] = (decision, leaf)
        jobs = uow.jobs.add(new_jobs, decisions_are_new=True) if new_jobs else []
        jobs_by_decision: dict[str, list[JobRecord]] = {}
        for job in jobs:
            jobs_by_decision.setdefault(job.decision_id, []).append(job)
        earlier: dict[str, RecordedDecision] = {}
        for i, p in enumerate(prepared):
            if results[i] is not None:
                continue
            decision_id = p.item.decision_id
            if decision_id in earlier:  # the same decision again in this batch or group: one record
                first = earlier[decision_id]
                results[i] = RecordedDecision(first.record, False, first.leaf_hash, first.jobs)
                continue
            if decision_id in created:
                fresh_record, leaf = created[decision_id]
                recorded = RecordedDecision(fresh_record, True, leaf, jobs_by_decision.get(decision_id, []))
            else:
                old = existing[decision_id]
                leaf = uow.ledger.read(old.ledger_index).leaf_hash.hex()
                recorded = RecordedDecision(old, False, leaf, uow.jobs.for_decision(decision_id))
            earlier[decision_id] = recorded
            results[i] = recorded
        if read_depth:
            depth = uow.jobs.depth()
    services.metrics.decisions_recorded.inc(sum(1 for r in results if isinstance(r, RecordedDecision) and r.created))
    if new_jobs:
        services.jobs_queued(len(new_jobs))
    return [r for r in results if r is not None], depth


def record_decisions(services: Services, items: Sequence[DecisionCreate], *, path: str) -> list[RecordedDecision]:
    """Record a batch atomically. Raises InvalidInputError (422, with the field) or ConflictError (409)."""
    return record_batch(services, items, path=path)[0]


def record_batch(
    services: Services, items: Sequence[DecisionCreate], *, path: str
) -> tuple[list[RecordedDecision], int]:
    """Record a batch atomically and read the queue depth in the same transaction (one result per id)."""
    seen: dict[str, str] = {}
    prepared: list[PreparedDecision] = []
    loaded_by_ref: dict[str, LoadedModel] = {}
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if path else ""
        prefix = f"{where}." if where else ""
        p = prepare_decision(services, item, where=prefix, loaded_by_ref=loaded_by_ref)
        if seen.get(item.decision_id, p.sha) != p.sha:
            raise ConflictError(f"{prefix}decision_id: {item.decision_id!r} appears twice with different bodies")
        seen[item.decision_id] = p.sha
        prepared.append(p)
    recorded, depth = record_prepared(services, prepared, predict_outputs(prepared), read_depth=True)
    unique: dict[str, RecordedDecision] = {}
    for r in recorded:
        assert isinstance(r, RecordedDecision)  # isolate=False raises conflicts instead of returning them
        unique.setdefault(r.record.decision_id, r)
    assert depth is not None
    return list(unique.values()), depth


def request_explanations(
    services: Services,
    *,
    decision_id: str,
    methods: Sequence[str],
    params: dict[str, dict[str, Any]],
    target: str | None,
) -> list[JobRecord]:
    """Queue more methods for a recorded decision; an identical request returns the existing jobs."""
    methods = check_methods(methods, field="methods")
    with services.db.unit_of_work(write=False) as uow:
        decision = uow.decisions.get(decision_id)
        if decision is None:
            from storage.errors import NotFoundError

            raise NotFoundError(f"decision {decision_id!r} is not recorded")
        model = uow.models.get_by_id(decision.model_version_id)
    assert model is not None
    loaded = services.models.get(model)
    if target is not None:
        if not loaded.spec.is_classifier:
            raise InvalidInputError("target", "regression models have no classes to target")
        if target not in loaded.spec.class_labels:
            raise InvalidInputError("target", f"{target!r} is not one of {list(loaded.spec.class_labels)}")
    new_jobs = _new_jobs(loaded, decision_id, methods, target=target, params_override=params)
    for job in new_jobs:
        check_json_value(job.params, f"params.{job.method}")
        # an algorithm asked for that cannot apply is refused now (422 saying why), not failed in a worker
        check_request(job.method, predictor=loaded.predictor, background=loaded.background, params=job.params)
    with services.db.unit_of_work() as uow:
        jobs = uow.jobs.add(new_jobs)
    services.jobs_queued(len(jobs))
    return jobs
