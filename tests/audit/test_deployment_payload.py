"""The deployment payload class: validated on construction, round-trips, refuses unknown shapes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_bytes
from audit.deployment_payload import DeploymentPayload, DeploymentPayloadError

GOOD: dict[str, Any] = {
    "model": "credit",
    "version": "2",
    "action": "rollback",
    "reason": "v3 over-declined self-employed applicants",
    "effective_at": "2026-03-01T09:30:00.000000Z",
    "model_ledger_index": 4,
    "artifact_sha256": "ab" * 32,
    "previous_version": "3",
}


def test_round_trip_through_canonical_bytes() -> None:
    payload = DeploymentPayload(**GOOD)
    data = payload.to_dict()
    assert data["payload_version"] == 1
    import json

    assert DeploymentPayload.from_dict(json.loads(canonical_bytes(data))) == payload


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", ""),
        ("version", 3),
        ("action", "promote"),
        ("reason", "  "),
        ("reason", "x" * 2001),
        ("effective_at", "2026-03-01 09:30:00"),
        ("model_ledger_index", -1),
        ("model_ledger_index", True),
        ("artifact_sha256", "AB" * 32),
        ("previous_version", ""),
    ],
)
def test_each_bad_field_is_named(field: str, value: Any) -> None:
    with pytest.raises(DeploymentPayloadError) as caught:
        DeploymentPayload(**{**GOOD, field: value})
    assert caught.value.path == field


def test_reading_back_refuses_other_versions_and_shapes() -> None:
    data = DeploymentPayload(**GOOD).to_dict()
    with pytest.raises(DeploymentPayloadError, match="version"):
        DeploymentPayload.from_dict({**data, "payload_version": 2})
    with pytest.raises(DeploymentPayloadError, match="unexpected fields \\['extra'\\]"):
        DeploymentPayload.from_dict({**data, "extra": 1})
    without = dict(data)
    del without["reason"]
    with pytest.raises(DeploymentPayloadError, match="missing fields \\['reason'\\]"):
        DeploymentPayload.from_dict(without)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD)), st.text(max_size=5) | st.integers() | st.none()))
def test_arbitrary_field_values_are_accepted_only_if_valid(changes: dict[str, Any]) -> None:
    try:
        payload = DeploymentPayload(**{**GOOD, **changes})
    except DeploymentPayloadError:
        return
    assert DeploymentPayload.from_dict(payload.to_dict()) == payload
