"""Rows are an index; the ledger is the record — over HTTP, on SQLite and PostgreSQL.

The five edits issue #12 found served silently (a decision's inputs, its output label, its subject_ref, one
value of an explanation body, an outcome label) are each served as the ledger records them, named in the
response's ``integrity``, counted in /metrics, logged, and named by `rationale verify`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import Table, select, update

from api.services.verification import verify_whole_ledger
from api.workers.local_pool import drain
from storage.tables import DecisionRow, ExplanationRow, ModelVersionRow, OutcomeRow
from tests.api.helpers import applicant_rows


def _table(row_class: Any) -> Table:
    table: Table = row_class.__table__
    return table


DECISIONS = _table(DecisionRow)


@pytest.fixture
def recorded(client, services, registered) -> dict[str, Any]:
    rows = applicant_rows(2)
    body = {
        "decisions": [
            {"decision_id": f"r-{i}", "model": "credit@1", "inputs": r, "subject_ref": f"subject-{i}"}
            for i, r in enumerate(rows)
        ]
    }
    assert client.post("/v1/decisions", json=body).status_code == 201
    drain(services)
    assert client.post("/v1/decisions/r-0/outcome", json={"label": "approved"}).status_code == 201
    original: dict[str, Any] = client.get("/v1/decisions/r-0").json()
    assert original["integrity"] == {"status": "ok", "mismatches": []}
    return original


def _edit(services, table: Table, where: Any, **values: Any) -> None:
    with services.db.engine.begin() as conn:  # these tables have no triggers: plain SQL, as an insider would
        conn.execute(update(table).where(where).values(**values))


EDITS = ["inputs", "output label", "subject_ref", "explanation value", "outcome label"]


@pytest.mark.parametrize("edit", EDITS)
def test_each_edit_is_served_as_recorded_and_named(client, services, recorded, edit, caplog) -> None:
    explanations = _table(ExplanationRow)
    outcomes = _table(OutcomeRow)
    decisions = _table(DecisionRow)
    if edit == "inputs":
        inputs = {**recorded["inputs"], "income": recorded["inputs"]["income"] + 1}
        _edit(services, decisions, decisions.c.decision_id == "r-0", inputs=inputs)
        table, field, path = "decisions", "inputs", ("inputs",)
    elif edit == "output label":
        _edit(services, decisions, decisions.c.decision_id == "r-0", output={**recorded["output"], "label": "x"})
        table, field, path = "decisions", "output", ("output",)
    elif edit == "subject_ref":
        _edit(services, decisions, decisions.c.decision_id == "r-0", subject_ref="someone-else")
        table, field, path = "decisions", "subject_ref", ("subject_ref",)
    elif edit == "explanation value":
        with services.db.engine.connect() as conn:
            body = conn.execute(select(explanations.c.body).where(explanations.c.decision_id == "r-0")).scalar_one()
        body = json.loads(json.dumps(body))
        feature = sorted(body["result"]["values"])[0]
        body["result"]["values"][feature] += 0.25
        _edit(services, explanations, explanations.c.decision_id == "r-0", body=body)
        table, field, path = "explanations", "body", ("explanations",)
    else:
        _edit(services, outcomes, outcomes.c.decision_id == "r-0", label="declined", body={"label": "declined"})
        table, field, path = "outcomes", "label", ("outcome",)

    with caplog.at_level(logging.WARNING, logger="rationale.integrity"):
        served = client.get("/v1/decisions/r-0").json()
    integrity = served["integrity"]
    assert integrity["status"] == "mismatch"
    [mismatch] = [m for m in integrity["mismatches"] if m["table"] == table]
    assert field in mismatch["fields"] and isinstance(mismatch["index"], int)
    key = path[0]
    if key == "explanations":
        assert served["explanations"][0]["body"] == recorded["explanations"][0]["body"]
    else:
        assert served[key] == recorded[key]  # the ledger's record, never the edit
    assert served["outcome_ledger"]["index"] == recorded["outcome_ledger"]["index"]
    assert any("integrity:" in r.getMessage() and table in r.getMessage() for r in caplog.records)
    metrics = client.get("/metrics").text
    assert f'rationale_row_mismatches_total{{table="{table}"}}' in metrics
    assert verify_whole_ledger(services, quiet=True) == 1


def test_outcomes_carry_their_ledger_place(client, recorded) -> None:
    outcome_ref = recorded["outcome_ledger"]
    assert isinstance(outcome_ref["index"], int) and len(outcome_ref["leaf_hash"]) == 64
    entry = client.get(f"/v1/ledger/entries/{outcome_ref['index']}").json()
    assert entry["leaf_hash"] == outcome_ref["leaf_hash"]
    [item] = client.get("/v1/decisions", params={"subject_ref": "subject-0"}).json()["items"]
    assert item["outcome_ledger"] == outcome_ref and item["ledger"]["leaf_hash"] == recorded["ledger"]["leaf_hash"]


def test_search_flags_an_edited_subject_ref_instead_of_matching_silently(client, services, recorded) -> None:
    _edit(services, DECISIONS, DECISIONS.c.decision_id == "r-1", subject_ref="subject-0")
    items = client.get("/v1/decisions", params={"subject_ref": "subject-0"}).json()["items"]
    by_id = {i["decision_id"]: i for i in items}
    assert by_id["r-0"]["integrity"]["status"] == "ok"
    forged = by_id["r-1"]
    assert forged["integrity"]["status"] == "mismatch"
    assert forged["subject_ref"] == "subject-1"  # what the ledger recorded
    assert forged["integrity"]["mismatches"][0]["fields"] == ["subject_ref"]


def test_model_version_edits_are_named(client, services, recorded) -> None:
    models = _table(ModelVersionRow)
    with services.db.engine.connect() as conn:
        manifest = conn.execute(select(models.c.manifest)).scalar_one()
    _edit(services, models, models.c.name == "credit", manifest={**manifest, "metadata": {"owner": "mallory"}})
    served = client.get("/v1/models/credit/versions/1").json()
    assert served["integrity"]["status"] == "mismatch"
    assert served["metadata"] == {"owner": "tests"}
    assert served["integrity"]["mismatches"][0]["fields"] == ["manifest"]
    listed = client.get("/v1/models").json()["items"][0]
    assert listed["integrity"]["status"] == "mismatch"


def test_the_database_vouches_for_every_honest_row(services, recorded) -> None:
    """verify's prefilter (storage/rowscan.py) runs on both databases and leaves no honest row to Python."""
    from storage.rowscan import decision_candidates, entry_column_candidates, explanation_candidates

    with services.db.unit_of_work(write=False) as uow:
        [model] = uow.models.list()
        assert decision_candidates(uow.session, {model.id: model.ref}) == set()
        assert explanation_candidates(uow.session) == set()
        assert entry_column_candidates(uow.session) == set()
    assert verify_whole_ledger(services, quiet=True) == 0
