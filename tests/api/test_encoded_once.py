"""Bytes made once and spliced into larger documents (audit.canonical.Encoded) are exactly what encoding the
plain values afresh gives: the body hash that idempotency compares, every decision and explanation entry,
and the rows `rationale verify` checks against them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.schemas import DecisionCreate
from api.services.decisions import _body_sha
from api.services.explaining import JobRunner
from api.services.verification import verify_whole_ledger
from audit.canonical import Encoded, canonical_bytes
from tests.api.helpers import applicant_rows

values = (
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False)
)
values = values | st.text(max_size=4)


def _changed(value: Any, how: int) -> Any:
    """What validation might make of a raw value: the same, another numeric type, or another value."""
    if how == 1 and type(value) in (int, float):
        return float(value)
    if how == 2 and type(value) is float and value.is_integer() and abs(value) <= 2**60:
        return int(value)
    if how == 3 and type(value) is bool:
        return int(value)  # true is not 1
    if how == 4:
        return "other"
    return value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.tuples(values, st.integers(0, 5)), min_size=1))
def test_the_body_hash_is_the_hash_of_the_whole_body_whatever_validation_made_of_the_inputs(raw):
    item = DecisionCreate(decision_id="d-1", model="m@1", inputs={k: v for k, (v, _) in raw.items()})
    clean = {k: _changed(v, how) for k, (v, how) in raw.items()}
    try:
        inputs = Encoded.of(clean)
    except ValueError:  # an integer past 2**53: intake encodes nothing ahead then
        inputs = None
    expected = hashlib.sha256(canonical_bytes(item.model_dump(mode="json"))).hexdigest()
    assert _body_sha(item, inputs) == expected


def test_entries_and_rows_are_spelled_as_their_plain_values_encode(client, services, registered):
    rows = applicant_rows(6)
    for row in rows[:3]:  # numbers validation changes: whole numbers for integer features, ints for numbers
        row["age"] = float(row["age"])
        row["income"] = int(row["income"])
    decisions = [
        {"decision_id": f"e-{i}", "model": "credit@1", "inputs": r, "explain": ["shap"], "context": {"n": i}}
        for i, r in enumerate(rows)
    ]
    resp = client.post("/v1/decisions", json={"decisions": decisions})
    assert resp.status_code == 201, resp.text
    again = client.post("/v1/decisions", json={"decisions": decisions})  # the same bodies: the same hashes
    assert again.status_code == 200 and not any(d["created"] for d in again.json()["decisions"])
    report = JobRunner(services, owner="test-encoded").run_batch()
    assert report.succeeded == len(rows)
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        entries = list(uow.ledger.iter_range(0, size))
    kinds = {e.type for e in entries}
    assert {"decision.recorded", "explanation.recorded"} <= kinds
    for entry in entries:
        assert canonical_bytes(json.loads(entry.canonical)) == entry.canonical, entry.type
    assert verify_whole_ledger(services, quiet=True) == 0  # the rows against their entries too
