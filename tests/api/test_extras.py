"""Without the ``alibi`` and ``tensorflow`` extras, anchors and CounterfactualProto are a clear 422 naming the
extra to install, nothing is written, and everything else works.

``make test-lean`` runs this in an install without the extras (RATIONALE_EXPECT_NO_EXTRAS=1), where the
packages are really absent; in the full install their absence is made real for the test by making them
unimportable (``sys.modules[name] = None``, which is what Python does for a package that is not there).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from api.workers.local_pool import drain
from tests.api.helpers import applicant_rows, ledger_size

LEAN = os.environ.get("RATIONALE_EXPECT_NO_EXTRAS") == "1"


@pytest.fixture
def without_extras(monkeypatch):
    if LEAN:
        assert importlib.util.find_spec("alibi") is None and importlib.util.find_spec("tensorflow") is None
    else:
        for name in ("alibi", "tensorflow"):
            monkeypatch.setitem(sys.modules, name, None)


def test_anchors_and_proto_are_a_422_naming_the_extra(client, services, registered, without_extras):
    row = applicant_rows(1)[0]
    before = ledger_size(client)
    resp = client.post(
        "/v1/decisions", json={"decision_id": "x-1", "model": "credit@1", "inputs": row, "explain": ["anchors"]}
    )
    assert resp.status_code == 422, resp.text
    assert "pip install 'rationale[alibi]'" in resp.json()["error"]["message"]
    assert ledger_size(client) == before  # nothing written

    ok = client.post(
        "/v1/decisions",
        json={"decision_id": "x-2", "model": "credit@1", "inputs": row, "explain": ["shap", "counterfactuals"]},
    )
    assert ok.status_code == 201, ok.text
    proto = client.post(
        "/v1/decisions/x-2/explanations",
        json={"methods": ["counterfactuals"], "params": {"counterfactuals": {"backend": "alibi-proto"}}},
    )
    assert proto.status_code == 422
    assert "rationale[alibi]" in proto.json()["error"]["message"] or "rationale[tensorflow]" in proto.text
    anchors = client.post("/v1/decisions/x-2/explanations", json={"methods": ["anchors"]})
    assert anchors.status_code == 422 and "rationale[alibi]" in anchors.json()["error"]["message"]

    drain(services)  # SHAP and DiCE counterfactuals work without the extras
    explanations = client.get("/v1/decisions/x-2").json()["explanations"]
    assert sorted((e["method"], e["status"]) for e in explanations) == [
        ("counterfactuals", "succeeded"),
        ("shap", "succeeded"),
    ]
