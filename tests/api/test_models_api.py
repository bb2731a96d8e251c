"""Model registration over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import pickle

from tests.api.helpers import credit_manifest, ledger_size


def test_register_and_read_back(client, credit_artifact):
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("model.skops", credit_artifact)},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["ref"] == "credit@1" and body["created"] is True
    assert body["artifact_format"] == "skops"
    assert len(body["ledger"]["leaf_hash"]) == 64

    got = client.get("/v1/models/credit/versions/1")
    assert got.status_code == 200
    assert got.json()["artifact_sha256"] == body["artifact_sha256"]
    listed = client.get("/v1/models").json()["items"]
    assert [m["ref"] for m in listed] == ["credit@1"]


def test_same_version_same_artifact_is_idempotent_and_different_is_409(client, credit_artifact, linear_artifact):
    manifest = json.dumps(credit_manifest())
    first = client.post("/v1/models", data={"manifest": manifest}, files={"artifact": ("m", credit_artifact)})
    assert first.status_code == 201
    size = ledger_size(client)
    again = client.post("/v1/models", data={"manifest": manifest}, files={"artifact": ("m", credit_artifact)})
    assert again.status_code == 201 and again.json()["created"] is False
    other = client.post("/v1/models", data={"manifest": manifest}, files={"artifact": ("m", linear_artifact)})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"
    assert ledger_size(client) == size


def test_pickle_is_refused_without_the_operator_setting(client, credit_pipeline):
    """The old request flag is gone (tests/api/test_upload_safety.py has the attacks)."""
    artifact = pickle.dumps(credit_pipeline)
    manifest = credit_manifest(version="pickled", format="pickle")
    refused = client.post(
        "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m.pkl", artifact)}
    )
    assert refused.status_code == 422
    assert "RATIONALE_ALLOW_PICKLE" in refused.json()["error"]["message"]
    assert ledger_size(client) == 0


def test_bad_manifests_name_the_field(client, credit_artifact):
    cases = [
        ({"task": "clustering"}, "manifest.task"),
        ({"features": []}, "manifest.features"),
        ({"surprise": 1}, "manifest.surprise"),
        ({"class_labels": ["only-one"]}, "manifest.class_labels"),
    ]
    for change, field in cases:
        manifest = {**credit_manifest(), **change}
        resp = client.post(
            "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m", credit_artifact)}
        )
        assert resp.status_code == 422, (change, resp.text)
        assert resp.json()["error"]["details"]["field"] == field, resp.json()
    garbage = client.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("m", b"not a model")},
    )
    assert garbage.status_code == 422
    assert ledger_size(client) == 0
