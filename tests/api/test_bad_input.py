"""Issue #15: every bad request a clear 4xx naming its cause, nothing written, the service keeps serving.

Each test here is one finding of the issue, tried as a careless or hostile client would; on SQLite and
PostgreSQL alike (the ``client`` fixture runs once per back-end).
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.api.helpers import applicant_rows, credit_manifest, ledger_size


def _decision(i: int, row: dict, **extra) -> dict:
    return {"decision_id": f"d-{i}", "model": "credit@1", "inputs": row, **extra}


def _post_raw(client, text: str | bytes, path: str = "/v1/decisions"):
    body = text.encode() if isinstance(text, str) else text
    return client.post(path, content=body, headers={"content-type": "application/json"})


def _refused(resp, status: int | tuple[int, ...] = 422, field: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, resp.text
    assert "Traceback" not in resp.text
    error = resp.json()["error"]
    if field is not None:
        assert error["details"].get("field") == field, error
    return error


def _healthy(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


# --- 500s --------------------------------------------------------------------------------------------------


def test_a_400_digit_integer_as_a_number_feature_is_a_422_naming_it(client, registered):
    text = json.dumps(_decision(1, {**applicant_rows(1)[0], "income": 1})).replace(
        '"income": 1', '"income": ' + "9" * 400
    )
    _refused(_post_raw(client, text), 422, "inputs.income")
    assert ledger_size(client) == 1
    _healthy(client)


def test_a_5000_digit_integer_is_a_422_not_a_parser_crash(client, registered):
    text = json.dumps(_decision(1, applicant_rows(1)[0], context={"n": 1})).replace('"n": 1', '"n": ' + "7" * 5000)
    _refused(_post_raw(client, text), 422, "context.n")
    assert ledger_size(client) == 1


def test_a_100000_level_nested_body_is_refused(client, registered):
    _refused(_post_raw(client, "[" * 100_000 + "]" * 100_000), 422, "body")
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
    _refused(_post_raw(client, deep_object), 422)
    _healthy(client)


def test_256_levels_inside_context_are_refused_naming_the_path(client, registered):
    context: dict = {}
    inner = context
    for _ in range(256):
        inner["x"] = {}
        inner = inner["x"]
    error = _refused(client.post("/v1/decisions", json=_decision(1, applicant_rows(1)[0], context=context)), 422)
    assert error["details"]["field"].startswith("context.x.x.x")
    assert "deep" in error["message"]
    assert ledger_size(client) == 1


@pytest.mark.parametrize("cursor", ["9" * 30, "\u00b2", "12", "-1", "", "c1.AAAA", "x" * 5000])
def test_malformed_and_forged_cursors_are_422s(client, registered, cursor):
    _refused(client.get("/v1/decisions", params={"cursor": cursor}), 422, "cursor")


def test_cursors_returned_by_the_api_round_trip_and_are_opaque(client, registered):
    batch = [_decision(i, r) for i, r in enumerate(applicant_rows(5))]
    assert client.post("/v1/decisions", json={"decisions": batch}).status_code == 201
    first = client.get("/v1/decisions", params={"limit": 2}).json()
    cursor = first["next_cursor"]
    assert cursor is not None and not cursor.isdigit()
    second = client.get("/v1/decisions", params={"limit": 2, "cursor": cursor}).json()
    assert [d["decision_id"] for d in second["items"]] == ["d-2", "d-3"]
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    _refused(client.get("/v1/decisions", params={"limit": 2, "cursor": tampered}), 422, "cursor")


@pytest.mark.parametrize("index", [10**30, 2**63, 2**64 + 1])
def test_huge_ledger_indices_are_4xx(client, registered, index):
    _refused(client.get(f"/v1/ledger/entries/{index}"), (404, 422), None)
    _refused(client.get("/v1/ledger/proofs/inclusion", params={"index": index, "tree_size": 1}), 422)
    _refused(client.get("/v1/ledger/proofs/consistency", params={"first": 1, "second": index}), 422)
    _healthy(client)


# --- the databases must agree ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        lambda row: _decision(1, row, context={"note": "a\u0000b"}),
        lambda row: _decision(1, row, context={"a\u0000": 1}),
        lambda row: _decision(1, row, subject_ref="s\u00001"),
    ],
)
def test_nul_in_a_client_document_is_the_same_422_on_sqlite_and_postgresql(client, registered, where):
    body = where(applicant_rows(1)[0])
    error = _refused(client.post("/v1/decisions", json=body), 422)
    assert "U+0000" in error["message"]
    assert ledger_size(client) == 1
    _refused(client.get("/v1/decisions", params={"subject_ref": "a\u0000"}), 422, "subject_ref")
    _refused(client.get("/v1/decisions/a%00b"), 422, "path")
    _refused(client.get("/review/decisions/a%00b"), 422, "path")
    _refused(client.post("/review/decisions/a%00b/export"), 422, "path")
    _healthy(client)


# --- accepted when they should not be ---------------------------------------------------------------------


def test_duplicate_keys_are_refused_naming_the_key(client, registered):
    row = applicant_rows(1)[0]
    text = json.dumps(_decision(1, row))
    dup = '{"decision_id": "d-evil", ' + text[1:]
    _refused(_post_raw(client, dup), 422, "decision_id")
    nested = json.dumps(_decision(2, row, context={"k": 1})).replace('"k": 1', '"k": 1, "k": 2')
    _refused(_post_raw(client, nested), 422, "context.k")
    batch = json.dumps({"decisions": [_decision(3, row)]}).replace('"income"', '"income": 1, "income"', 1)
    _refused(_post_raw(client, batch), 422, "decisions[0].inputs.income")
    assert ledger_size(client) == 1
    outcome = _post_raw(client, '{"label": "approved", "label": "declined"}', "/v1/decisions/x/outcome")
    _refused(outcome, 422, "label")


def test_a_10mb_body_is_a_413_and_nothing_is_written(client, registered):
    big = _decision(1, applicant_rows(1)[0], context={"blob": "x" * 10_000_000})
    error = _refused(client.post("/v1/decisions", json=big), 413)
    assert error["code"] == "body_too_large"
    assert error["details"]["limit_bytes"] > 0
    assert ledger_size(client) == 1
    chunks = (b"x" * 1_000_000 for _ in range(12))  # no Content-Length: streamed
    resp = client.post("/v1/decisions", content=chunks, headers={"content-type": "application/json"})
    _refused(resp, 413)
    _healthy(client)


def test_since_after_until_is_a_422(client, registered):
    resp = client.get("/v1/decisions", params={"since": "2026-03-05T00:00:00Z", "until": "2026-03-01T00:00:00Z"})
    _refused(resp, 422, "until")


@pytest.mark.parametrize(
    "value", ["0.5", "1700000000", "2026-03-05 12:00", "yesterday", "2026-13-01", "2026-03-05T25:00Z"]
)
def test_times_are_rfc3339_or_a_date_and_nothing_else(client, registered, value):
    _refused(client.get("/v1/decisions", params={"until": value}), 422, "until")


def test_times_in_bodies_are_rfc3339_or_a_date(client, registered):
    body = _decision(1, applicant_rows(1)[0], occurred_at=0.5)
    _refused(client.post("/v1/decisions", json=body), 422, "occurred_at")
    ok = client.get("/v1/decisions", params={"since": "2026-03-01", "until": "2026-03-05T00:00:00+02:00"})
    assert ok.status_code == 200, ok.text


# --- 4xx without the field --------------------------------------------------------------------------------


def _upload(client, manifest: dict, artifact: bytes):
    return client.post("/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m", artifact)})


def test_random_bytes_and_a_zip_that_is_not_skops_name_the_artifact(client):
    error = _refused(_upload(client, credit_manifest(), bytes(range(256)) * 4), 422, "artifact")
    assert error["code"] == "invalid_artifact"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "not a model")
    error = _refused(_upload(client, credit_manifest(), buf.getvalue()), 422, "artifact")
    assert "skops" in error["message"]
    assert ledger_size(client) == 0


def test_a_renamed_feature_names_the_manifest_field_and_what_the_artifact_has(client, credit_artifact):
    manifest = credit_manifest()
    manifest["features"][3]["name"] = "loan_size"
    manifest["background"] = [
        {("loan_size" if k == "loan_amount" else k): v for k, v in row.items()} for row in manifest["background"]
    ]
    error = _refused(_upload(client, manifest, credit_artifact), 422, "manifest.features[3].name")
    assert "loan_amount" in error["details"]["artifact_features"]
    assert ledger_size(client) == 0


def test_a_missing_feature_names_the_manifest_features(client, credit_artifact):
    manifest = credit_manifest()
    del manifest["features"][4]
    for row in manifest["background"]:
        del row["open_accounts"]
    error = _refused(_upload(client, manifest, credit_artifact), 422, "manifest.features")
    assert "open_accounts" in error["details"]["missing"]
    assert "open_accounts" in error["details"]["artifact_features"]


def test_wrong_class_labels_and_a_classifier_declared_as_regression(client, credit_artifact):
    error = _refused(_upload(client, credit_manifest(class_labels=["yes", "no"]), credit_artifact), 422)
    assert error["details"]["field"] == "manifest.class_labels"
    assert sorted(error["details"]["artifact_classes"]) == ["approved", "declined"]
    error = _refused(_upload(client, credit_manifest(task="regression", class_labels=[]), credit_artifact), 422)
    assert error["details"]["field"] == "manifest.task"
    assert error["details"]["artifact_task"] == "classification"
    assert ledger_size(client) == 0


def test_a_duplicate_feature_names_the_manifest_path(client, credit_artifact):
    manifest = credit_manifest()
    manifest["features"].append(dict(manifest["features"][0]))
    _refused(_upload(client, manifest, credit_artifact), 422, "manifest.features[9].name")


def test_bad_manifest_json_names_the_manifest(client, credit_artifact):
    text = json.dumps(credit_manifest()).replace('"name": "credit"', '"name": "credit", "name": "other"')
    resp = client.post("/v1/models", data={"manifest": text}, files={"artifact": ("m", credit_artifact)})
    _refused(resp, 422, "manifest.name")


# --- undocumented limits and codes ------------------------------------------------------------------------


def test_openapi_declares_the_batch_limit_and_the_error_responses(client, services):
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/v1/decisions"]["post"]
    batch = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert batch["properties"]["decisions"]["maxItems"] == services.settings.max_batch_decisions
    for status in ("400", "413", "422"):
        assert status in post["responses"], status
    assert "404" in doc["paths"]["/v1/decisions/{decision_id}"]["get"]["responses"]
    assert "404" in doc["paths"]["/v1/ledger/entries/{index}"]["get"]["responses"]
    assert "413" in doc["paths"]["/v1/models"]["post"]["responses"]
    error_schema = post["responses"]["422"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_a_batch_over_the_limit_names_decisions(client, registered, services):
    limit = services.settings.max_batch_decisions
    row = applicant_rows(1)[0]
    body = {"decisions": [_decision(i, row) for i in range(limit + 1)]}
    _refused(client.post("/v1/decisions", json=body), 422, "decisions")


def test_405_carries_an_allow_header(client):
    resp = client.delete("/v1/decisions")
    assert resp.status_code == 405
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = client.put("/v1/ledger/checkpoint")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET"
