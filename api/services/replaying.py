"""Replay: re-run a decision's recorded explanations from the stored artifact and compare with the ledger.

Everything a replay uses comes from the ledger or is checked against it: the inputs, output and artifact
hash from the decision's entry, the method, parameters, seed and target from the explanation's entry, the
artifact bytes re-hashed before they are loaded. Years later this is how a reviewer learns whether an
explanation still reproduces, or precisely what differs (a library upgrade, a changed artifact).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.container import Services
from api.errors import ResourceNotFoundError
from api.services.explaining import ComputeRequest, compute, derive_seed
from explain.base import Target
from explain.errors import ExplainError
from storage.errors import BlobIntegrityError
from storage.errors import NotFoundError as StorageNotFoundError

TOLERANCE = 1e-9  # floats printed from the same computation match exactly; this only forgives the last bit


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    method: str
    ledger_index: int
    reproduced: bool
    detail: str
    max_abs_difference: float | None = None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    decision_id: str
    model: str
    artifact_sha256: str
    artifact_intact: bool
    outcomes: tuple[ReplayOutcome, ...]

    @property
    def ok(self) -> bool:
        return self.artifact_intact and bool(self.outcomes) and all(o.reproduced for o in self.outcomes)


def replay_decision(services: Services, decision_id: str, *, methods: Sequence[str] | None = None) -> ReplayReport:
    """Raises ResourceNotFoundError when the decision, or an explanation of one of ``methods``, is not recorded."""
    with services.db.unit_of_work(write=False) as uow:
        decision = uow.decisions.get(decision_id)
        if decision is None:
            raise ResourceNotFoundError(f"decision {decision_id!r} is not recorded", field="decision_id")
        decision_entry = _payload(uow.ledger.read(decision.ledger_index).canonical)
        explanations = [e for e in uow.explanations.for_decision(decision_id) if e.status == "succeeded"]
        entries = {e.ledger_index: _payload(uow.ledger.read(e.ledger_index).canonical) for e in explanations}
        model = uow.models.get_by_id(decision.model_version_id)
    if methods:
        missing = sorted(set(methods) - {e.method for e in explanations})
        if missing:
            message = f"no succeeded {', '.join(missing)} explanation of {decision_id!r}"
            raise ResourceNotFoundError(message, field="method")
        explanations = [e for e in explanations if e.method in methods]
    assert model is not None  # a decision's model version is never deleted
    expected_sha = str(decision_entry["model_artifact_sha256"])
    try:  # the blob store re-hashes what it reads; the decision's entry names the artifact it was made with
        artifact = services.blobs.get(model.artifact_sha256)
        intact = hashlib.sha256(artifact).hexdigest() == expected_sha == model.artifact_sha256
        problem = f"the stored artifact does not hash to {expected_sha}, recorded with the decision"
    except (BlobIntegrityError, StorageNotFoundError) as exc:
        intact, problem = False, str(exc)
    outcomes: list[ReplayOutcome] = []
    if intact:
        loaded = services.models.get(model)
        for explanation in explanations:
            recorded = entries[explanation.ledger_index]
            outcomes.append(_replay_one(services, loaded, decision_entry, recorded, explanation.ledger_index))
    else:
        for explanation in explanations:
            outcomes.append(
                ReplayOutcome(explanation.method, explanation.ledger_index, False, f"not replayed: {problem}")
            )
    return ReplayReport(decision_id, str(decision_entry["model"]), expected_sha, intact, tuple(outcomes))


def _replay_one(
    services: Services, loaded: Any, decision: dict[str, Any], recorded: dict[str, Any], index: int
) -> ReplayOutcome:
    method = str(recorded["method"])
    params = dict(recorded.get("requested_params") or {})
    seed = derive_seed(str(decision["decision_id"]), method, str(recorded["params_hash"]))
    if recorded.get("seed") is not None and recorded["seed"] != seed:
        return ReplayOutcome(method, index, False, f"recorded seed {recorded['seed']} is not the derived {seed}")
    request = ComputeRequest(
        model=loaded.record,
        method=method,
        params=params,
        inputs=[dict(decision["inputs"])],
        seeds=[seed],
        targets=_target(loaded, recorded.get("requested_target") or decision["output"].get("label")),
        budget=loaded.budget_for(method, services.default_budget),
    )
    try:
        [result] = [e.result for e in compute(request, loaded)]
    except ExplainError as exc:
        return ReplayOutcome(method, index, False, f"replay failed: {exc}")
    replayed = result.to_dict()
    differences: list[str] = []
    for key in ("backend", "target", "parameters"):
        if replayed[key] != recorded[key]:
            differences.append(f"{key} was {recorded[key]!r}, now {replayed[key]!r}")
    worst, where = _largest_difference(recorded["result"], replayed["result"])
    if worst > TOLERANCE:
        differences.append(f"result differs at {where} by {worst:.3g}" if math.isfinite(worst) else f"{where} differs")
    versions = _version_changes(recorded["library_versions"], replayed["library_versions"])
    if differences:
        note = f"; library versions changed: {versions}" if versions else ""
        return ReplayOutcome(method, index, False, "; ".join(differences) + note, worst)
    detail = "identical" if worst == 0 else f"equal within {TOLERANCE:g} (largest difference {worst:.3g})"
    if versions:
        detail += f"; library versions changed without effect: {versions}"
    return ReplayOutcome(method, index, True, detail, worst)


def _payload(canonical: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(canonical)["payload"]
    return payload


def _target(loaded: Any, label: Any) -> list[Target] | None:
    if not loaded.spec.is_classifier:
        return None
    labels = list(loaded.spec.class_labels)
    return [Target(labels.index(label))] if label in labels else None


def _largest_difference(recorded: Any, replayed: Any, where: str = "result") -> tuple[float, str]:
    """The largest absolute difference between two JSON values and where it is (inf: not comparable)."""
    if isinstance(recorded, bool) or isinstance(replayed, bool):
        return (0.0, where) if recorded == replayed else (math.inf, where)
    if isinstance(recorded, (int, float)) and isinstance(replayed, (int, float)):
        return abs(float(recorded) - float(replayed)), where
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        if recorded.keys() != replayed.keys():
            return math.inf, f"{where} (keys)"
        pairs = [_largest_difference(recorded[k], replayed[k], f"{where}.{k}") for k in recorded]
        return max(pairs, default=(0.0, where))
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return math.inf, f"{where} (length)"
        items = enumerate(zip(recorded, replayed, strict=True))
        pairs = [_largest_difference(a, b, f"{where}[{i}]") for i, (a, b) in items]
        return max(pairs, default=(0.0, where))
    return (0.0, where) if recorded == replayed else (math.inf, where)


def _version_changes(recorded: dict[str, str], replayed: dict[str, str]) -> str:
    changed = [
        f"{name} {recorded.get(name, '-')} -> {replayed.get(name, '-')}"
        for name in sorted(set(recorded) | set(replayed))
        if recorded.get(name) != replayed.get(name)
    ]
    return ", ".join(changed)
