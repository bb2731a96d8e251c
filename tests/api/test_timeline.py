"""POST /v1/models/{name}/deployments and GET /v1/models/{name}/timeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from audit.deployment_payload import DeploymentPayload
from tests.api.helpers import applicant_rows, credit_manifest, ledger_size

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def _register(client: TestClient, artifact: bytes, version: str) -> None:
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest(version=version))},
        files={"artifact": ("model.skops", artifact)},
    )
    assert resp.status_code == 201, resp.text


def _log(client: TestClient, version: str, days: list[float], prefix: str) -> None:
    rows = applicant_rows(len(days), seed=3)
    decisions = [
        {
            "decision_id": f"{prefix}-{i}",
            "model": f"credit@{version}",
            "inputs": row,
            "occurred_at": (DAY0 + timedelta(days=d)).isoformat(),
            "explain": [],
        }
        for i, (row, d) in enumerate(zip(rows, days, strict=True))
    ]
    resp = client.post("/v1/decisions", json={"decisions": decisions})
    assert resp.status_code == 201, resp.text


def _deploy(client: TestClient, version: str, day: float, action: str = "deploy", **extra: Any) -> Any:
    body = {"version": version, "action": action, "reason": f"{action} {version}", **extra}
    if day is not None:
        body["effective_at"] = (DAY0 + timedelta(days=day)).isoformat()
    return client.post("/v1/models/credit/deployments", json=body)


def test_timeline_flags_decisions_of_a_version_not_live(client: TestClient, credit_artifact: bytes) -> None:
    _register(client, credit_artifact, "1")
    _register(client, credit_artifact, "2")
    assert client.get("/v1/models/credit/timeline").json()["decisions_while_not_live"] == 0

    _log(client, "1", [0.5, 1, 2, 3, 6], "a")  # the decision of day 6 was made while version 2 was live
    _log(client, "2", [4.5, 5, 6.5], "b")
    before = client.get("/v1/models/credit/timeline").json()
    assert before["live_version"] is None and before["decisions_while_not_live"] == 0  # nothing known yet

    first = _deploy(client, "1", 0)
    assert first.status_code == 201, first.text
    assert _deploy(client, "2", 4).status_code == 201
    back = _deploy(client, "1", 7, "rollback")
    assert back.status_code == 201, back.text
    recorded = back.json()
    assert recorded["previous_version"] == "2" and recorded["action"] == "rollback"

    entry = client.get(f"/v1/ledger/entries/{recorded['ledger_index']}").json()
    canonical = json.loads(base64.b64decode(entry["canonical"]))
    assert canonical["type"] == DeploymentPayload.ENTRY_TYPE
    payload = DeploymentPayload.from_dict(canonical["payload"])
    assert payload.version == "1" and payload.previous_version == "2" and payload.reason == "rollback 1"
    assert payload.effective_at == "2026-03-08T00:00:00.000000Z"

    timeline = client.get("/v1/models/credit/timeline").json()
    assert timeline["live_version"] == "1"
    v1, v2 = timeline["versions"]
    assert v1["decisions"] == 5 and v1["decisions_while_not_live"] == 1
    assert [e["decision_id"] for e in v1["examples_while_not_live"]] == ["a-4"]
    assert v1["first_decision_id"] == "a-0" and v1["last_decision_id"] == "a-4"
    assert [(p["start"][:10], (p["end"] or "")[:10]) for p in v1["live_periods"]] == [
        ("2026-03-01", "2026-03-05"),
        ("2026-03-08", ""),
    ]
    assert v1["live_now"] and not v2["live_now"]
    assert v2["decisions"] == 3 and v2["decisions_while_not_live"] == 0
    assert timeline["decisions_while_not_live"] == 1
    kinds = [(e["kind"], e["version"]) for e in timeline["events"]]
    assert kinds == [
        ("deploy", "1"),
        ("first_decision", "1"),
        ("deploy", "2"),
        ("first_decision", "2"),
        ("last_decision", "1"),
        ("last_decision", "2"),
        ("rollback", "1"),
    ]


def test_refused_deployments_write_nothing(client: TestClient, credit_artifact: bytes) -> None:
    _register(client, credit_artifact, "1")
    _register(client, credit_artifact, "2")
    assert _deploy(client, "1", 1).status_code == 201
    size = ledger_size(client)
    cases = [
        (_deploy(client, "9", 2), 422, "version"),
        (_deploy(client, "2", 2, "rollback"), 422, "version"),  # version 2 was never live
        (_deploy(client, "2", 0.5), 409, None),  # earlier than the last deployment
        (_deploy(client, "1", 3), 409, None),  # live already
        (_deploy(client, "2", 2, reason=""), 422, "reason"),
        (_deploy(client, "2", 2, extra_field=1), 422, "extra_field"),
        (
            client.post(
                "/v1/models/credit/deployments",
                json={"version": "2", "reason": "r", "effective_at": "2026-03-05T00:00:00"},
            ),
            422,
            "effective_at",
        ),
        (client.post("/v1/models/nope/deployments", json={"version": "1", "reason": "r"}), 404, None),
    ]
    for resp, code, field in cases:
        assert resp.status_code == code, resp.text
        body = resp.json()["error"]
        if field is not None:
            assert body["details"]["field"] == field, body
    assert ledger_size(client) == size
    assert client.get("/v1/models/nope/timeline").status_code == 404


def test_toolkit_endpoints_are_in_the_openapi_document_with_typed_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    expected = {
        ("/v1/models/{name}/deployments", "post"): "DeploymentRecorded",
        ("/v1/models/{name}/timeline", "get"): "Timeline",
        ("/v1/models/{name}/drift", "get"): "Drift",
        ("/v1/models/{name}/importance", "get"): "Importance",
        ("/v1/models/{name}/performance", "get"): "Performance",
        ("/v1/models/{name}/fairness", "get"): "Fairness",
        ("/v1/models/{name}/attributions", "get"): "AttributionPage",
        ("/v1/decisions/{decision_id}/replay", "post"): "ReplayPublic",
    }
    for (path, method), schema in expected.items():
        responses = spec["paths"][path][method]["responses"]
        ok = responses["201" if method == "post" and path.endswith("deployments") else "200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/" + schema), path
        assert schema in spec["components"]["schemas"]
    drift = spec["components"]["schemas"]["InputDrift"]["properties"]
    assert {"psi", "js_distance", "statistic", "p_value"} <= set(drift)


def test_an_edited_deployment_row_is_named_and_the_entry_is_served(
    client: TestClient, services: Any, credit_artifact: bytes
) -> None:
    """An insider with write access to the database rewrites the deployments index to hide that version 2
    was ever live; the timeline serves what the ledger entries say and names every row that disagrees."""
    from sqlalchemy import text

    _register(client, credit_artifact, "1")
    _register(client, credit_artifact, "2")
    assert _deploy(client, "1", 0).status_code == 201
    assert _deploy(client, "2", 4).status_code == 201
    honest = client.get("/v1/models/credit/timeline").json()
    assert honest["integrity_problems"] == []
    edits = [
        "version = '1'",
        "reason = 'routine'",
        "action = 'rollback'",
        "effective_at = effective_at + INTERVAL '1 day'"
        if services.db.dialect == "postgresql"
        else "effective_at = '2026-03-06 00:00:00.000000'",
    ]
    for edit in edits:
        with services.db.engine.begin() as conn:
            conn.execute(text(f"UPDATE deployments SET {edit} WHERE version = '2' OR reason = 'deploy 2'"))
        forged = client.get("/v1/models/credit/timeline").json()
        assert len(forged["integrity_problems"]) == 1, edit
        assert "ledger index" in forged["integrity_problems"][0]
        assert forged["live_version"] == "2" and forged["events"] == honest["events"], edit
        with services.db.engine.begin() as conn:  # put the row back for the next edit
            conn.execute(
                text("DELETE FROM deployments WHERE ledger_index = :i"), {"i": honest["events"][-1]["ledger_index"]}
            )
            conn.execute(
                text(
                    "INSERT INTO deployments (model_name, version, model_version_id, action, reason, effective_at,"
                    " ledger_index, recorded_at) SELECT model_name, '2', model_version_id + 1, 'deploy', 'deploy 2',"
                    " :at, :i, recorded_at FROM deployments WHERE version = '1'"
                ),
                {
                    "at": datetime(2026, 3, 5, tzinfo=UTC)
                    if services.db.dialect == "postgresql"
                    else "2026-03-05 00:00:00.000000",
                    "i": honest["events"][-1]["ledger_index"],
                },
            )
        assert client.get("/v1/models/credit/timeline").json()["integrity_problems"] == []
    with services.db.engine.begin() as conn:
        conn.execute(text("UPDATE deployments SET ledger_index = 0 WHERE version = '2'"))  # points at another entry
    problems = client.get("/v1/models/credit/timeline").json()["integrity_problems"]
    assert len(problems) == 1 and "not a model.deployment" in problems[0]
