"""Payload classes: round trips, the exact bytes entries had before the classes existed, refusals by field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_bytes
from audit.payloads import (
    DecisionRecorded,
    ExplanationRecorded,
    ModelRegistered,
    OutcomeRecorded,
    PayloadError,
    parse_payload,
)
from audit.rowcheck import same_json

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
objects = st.dictionaries(st.text(max_size=6), scalars, max_size=4)
ids = st.text(min_size=1, max_size=12)
stamps = st.just("2026-03-03T12:00:00.000000Z")


@settings(max_examples=150)
@given(
    decision_id=ids,
    inputs=objects,
    label=st.text(max_size=6),
    client_output=st.none() | objects,
    mismatch=st.none() | objects,
    subject=st.none() | ids,
    context=objects,
    methods=st.lists(st.sampled_from(["shap", "lime", "anchors"]), max_size=3),
)
def test_decision_payload_bytes_are_those_the_service_wrote_before(
    decision_id: str,
    inputs: dict[str, Any],
    label: str,
    client_output: dict[str, Any] | None,
    mismatch: dict[str, Any] | None,
    subject: str | None,
    context: dict[str, Any],
    methods: list[str],
) -> None:
    old = {  # the dict api/services/decisions.py built before audit/payloads.py
        "decision_id": decision_id,
        "model": "credit@1",
        "model_artifact_sha256": "ab" * 32,
        "inputs": inputs,
        "output": {"label": label},
        "client_output": client_output,
        "output_mismatch": mismatch,
        "subject_ref": subject,
        "occurred_at": "2026-03-03T12:00:00.000000Z",
        "context": context,
        "explanations_requested": methods,
        "body_sha256": "cd" * 32,
    }
    typed = DecisionRecorded(
        decision_id=decision_id,
        model="credit@1",
        model_artifact_sha256="ab" * 32,
        inputs=inputs,
        output={"label": label},
        client_output=client_output,
        output_mismatch=mismatch,
        subject_ref=subject,
        occurred_at="2026-03-03T12:00:00.000000Z",
        context=context,
        explanations_requested=tuple(methods),
        body_sha256="cd" * 32,
    )
    assert canonical_bytes(typed.to_payload()) == canonical_bytes(old)
    assert DecisionRecorded.from_payload(old) == typed


@settings(max_examples=100)
@given(failed=st.booleans(), params=objects, target=st.none() | ids, error=st.none() | st.text(max_size=10))
def test_explanation_payload_round_trips_and_keeps_its_bytes(
    failed: bool, params: dict[str, Any], target: str | None, error: str | None
) -> None:
    common = {
        "explanation_id": "e1",
        "decision_id": "d1",
        "job_id": "j1",
        "method": "shap",
        "params_hash": "p" * 32,
        "requested_params": params,
        "requested_target": target,
        "attempt": 1,
        "model": "credit@1",
        "background_sha256": "ef" * 32,
    }
    result = {"backend": "shap.TreeExplainer", "target": "approved", "result": {"kind": "attributions"}, "seed": 7}
    old = {**common, "error": error} if failed else {**common, "method": "shap", **result}
    kind = "explanation.failed" if failed else "explanation.recorded"
    typed = ExplanationRecorded.from_payload(old, entry_type=kind)
    assert typed.entry_type == kind and typed.failed is failed
    assert canonical_bytes(typed.to_payload()) == canonical_bytes(old)
    assert parse_payload(kind, typed.to_payload()) == typed


def test_model_and_outcome_payloads_round_trip() -> None:
    model = ModelRegistered(
        name="credit",
        model_version="1",
        artifact_sha256="a" * 64,
        artifact_format="skops",
        background_sha256="b" * 64,
        background_rows=40,
        trusted_pickle=False,
        manifest={"task": "binary", "class_labels": ["approved", "declined"]},
    )
    assert model.to_payload()["model"] == "credit@1"
    assert ModelRegistered.from_payload(model.to_payload()) == model
    outcome = OutcomeRecorded(
        decision_id="d1", outcome={"label": "approved", "observed_at": "x"}, decision_ledger_index=3
    )
    assert OutcomeRecorded.from_payload(outcome.to_payload()) == outcome
    assert "payload_version" not in outcome.to_payload()  # version 1 keeps the bytes entries always had


@pytest.mark.parametrize(
    ("entry_type", "payload", "field"),
    [
        ("decision.recorded", {"decision_id": "d"}, "model"),
        (
            "outcome.recorded",
            {"decision_id": "d", "outcome": {"label": "a", "observed_at": "t"}},
            "decision_ledger_index",
        ),
        (
            "outcome.recorded",
            {"decision_id": "d", "outcome": {"label": "a"}, "decision_ledger_index": 1, "payload_version": 9},
            "payload_version",
        ),
        ("model.registered", [], "payload"),
        ("no.such.type", {}, "type"),
    ],
)
def test_a_payload_of_the_wrong_shape_is_refused_naming_the_field(entry_type: str, payload: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload(entry_type, payload)
    assert caught.value.field == field


def test_same_json_is_json_equality() -> None:
    assert same_json({"a": 2, "b": [1.5]}, {"a": 2.0, "b": [1.5]})
    assert not same_json(True, 1)
    assert not same_json({"a": 1}, {"a": True})
    assert not same_json("1", 1)
    assert not same_json({"a": 1}, {"a": 1, "b": None})
    assert same_json(None, None) and not same_json(None, 0)
