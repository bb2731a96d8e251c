"""The pandas client against a real ``rationale serve`` over HTTP; retries and headers against a tiny HTTP
server that answers 503 first; and the client importing none of the server's packages."""

from __future__ import annotations

import json
import pydoc
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rationale
from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline

pytestmark = pytest.mark.heavy
ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("api", "audit", "explain", "storage")


def _manifest(name: str, version: str) -> dict[str, Any]:
    spec = credit_spec()
    background, _ = make_credit_frame(40, seed=7)
    return {
        "name": name,
        "version": version,
        "task": "binary",
        "class_labels": list(spec.class_labels),
        "positive_class": "approved",
        "features": [f.to_dict() for f in spec.features],
        "background": background.to_dict(orient="records"),
    }


@pytest.fixture(scope="module")
def artifact() -> bytes:
    return dump_skops(train_credit_pipeline(seed=0, n=800))


def test_client_round_trip_on_a_served_instance(served: str, artifact: bytes) -> None:
    rc = rationale.Client(served, page_size=7)
    registered = rc.register(_manifest("loans", "1"), artifact)
    assert registered["ref"] == "loans@1"
    assert rc.register(_manifest("loans", "1"), artifact)["created"] is False

    frame, labels = make_credit_frame(25, seed=3)
    frame["region"] = ["north", "south"] * 12 + ["north"]
    frame["at"] = [datetime(2026, 4, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(25)]
    logged = rc.log(frame, model="loans@1", context=["region"], occurred_at="at", batch_size=10)
    assert len(logged) == 25 and logged["created"].all()
    assert set(logged["output_label"]) <= {"approved", "declined"}
    again = rc.log(frame, model="loans@1", context=["region"], occurred_at="at", batch_size=10)
    assert not again["created"].any() and list(again["decision_id"]) == list(logged["decision_id"])

    rc.wait_for_explanations()
    decisions = rc.decisions("loans@1")  # pages of 7
    assert sorted(decisions["decision_id"]) == sorted(logged["decision_id"])
    assert len(rc.decisions("loans@1", limit=10)) == 10

    wide = rc.attributions("loans", form="wide")
    long = rc.attributions("loans")
    features = [f.name for f in credit_spec().features]
    assert len(wide) == 25 and set(features) <= set(wide.columns)
    assert len(long) == 25 * len(features) and list(long.columns[-2:]) == ["feature", "value"]
    one = logged["decision_id"].iloc[0]
    dossier = rc.decision(one)
    shap_values = next(e for e in dossier["explanations"] if e["method"] == "shap")["body"]["result"]["values"]
    mine = long[long["decision_id"] == one].set_index("feature")["value"]
    assert mine.to_dict() == pytest.approx(shap_values)

    outcomes = rc.log_outcomes(dict(zip(logged["decision_id"][:12], labels[:12], strict=True)))
    assert len(outcomes) == 12
    assert len(rc.outcomes("loans@1")) == 12

    perf = rc.performance("loans", bucket="all")
    assert perf.loc[("1", "all"), "missing_outcomes"] == 13
    assert perf.loc[("1", "all"), "realised_accuracy"] is not None
    assert 0 < perf.loc[("1", "all"), "estimated_accuracy"] <= 1
    fair = rc.fairness("loans", "region")
    assert set(fair.index) == {"north", "south"} and fair["decisions"].sum() == 25
    assert "demographic_parity_difference" in fair.attrs
    importance = rc.importance("loans")
    assert list(importance.columns[1:]) and importance.loc[("1", "all"), "explanations"] == 25

    rc.register(_manifest("loans", "2"), artifact)
    rc.log(frame.head(5), model="loans@2", context=["region"], occurred_at="at")
    rc.deploy("loans", "1", reason="first", effective_at=datetime(2026, 4, 1, tzinfo=UTC))
    rc.deploy("loans", "2", reason="retrained", effective_at=datetime(2026, 4, 1, 12, tzinfo=UTC))
    timeline = rc.timeline("loans")
    assert list(timeline["kind"])[:2] == ["deploy", "first_decision"]
    assert timeline.attrs["live_version"] == "2"
    assert timeline.attrs["decisions_while_not_live"] > 0  # loans@2 decided at 00:00-04:00, live from 12:00
    rc.wait_for_explanations()
    drift = rc.drift("loans", reference_version="1", current_version="2")
    assert drift.reference["decisions"] == 25 and drift.current["decisions"] == 5
    assert set(drift.inputs.index) == set(features) and "rank_change" in drift.attributions.columns

    replay = rc.replay(one)
    assert replay["reproduced"] is True and replay["outcomes"][0]["method"] == "shap"


def test_errors_are_typed_with_code_and_field(served: str, artifact: bytes) -> None:
    rc = rationale.Client(served)
    with pytest.raises(rationale.NotFoundError) as missing:
        rc.decision("no-such-decision")
    assert missing.value.code == "not_found" and missing.value.status == 404
    rc.register(_manifest("errs", "1"), artifact)
    frame, _ = make_credit_frame(2, seed=1)
    frame.loc[1, "income"] = -5.0
    with pytest.raises(rationale.InvalidRequestError) as bad:
        rc.log(frame, model="errs@1", explain=[])
    assert bad.value.status == 422 and bad.value.field is not None and bad.value.field.startswith("decisions[1]")
    assert rc.decisions("errs@1").empty  # the batch was refused whole
    with pytest.raises(rationale.InvalidRequestError) as unknown:
        rc.drift("errs", reference_version="9")
    assert unknown.value.field == "reference_version"
    with pytest.raises(ValueError, match="timezone"):
        rc.drift("errs", reference_since=datetime(2026, 1, 1))
    with pytest.raises(rationale.UnavailableError):
        rationale.Client("http://127.0.0.1:9", retries=1, backoff=0.01).models()


class _Flaky(BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        status = type(self).answers.pop(0) if type(self).answers else 200
        body = json.dumps({"items": []} if status == 200 else {"error": {"code": "unavailable", "message": "busy"}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_retries_503_with_back_off_and_sends_key_and_purpose(flaky: str) -> None:
    _Flaky.answers, _Flaky.seen = [503, 503], []
    rc = rationale.Client(flaky, api_key="k-123", purpose="model monitoring", backoff=0.01)
    assert rc.models().empty
    assert len(_Flaky.seen) == 3
    assert _Flaky.seen[-1]["Authorization"] == "Bearer k-123"
    assert _Flaky.seen[-1]["X-Rationale-Purpose"] == "model monitoring"
    _Flaky.answers, _Flaky.seen = [503] * 5, []
    with pytest.raises(rationale.UnavailableError) as caught:
        rationale.Client(flaky, retries=2, backoff=0.01).models()
    assert caught.value.code == "unavailable" and len(_Flaky.seen) == 3


def test_the_client_imports_none_of_the_server_packages() -> None:
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {SERVER_PACKAGES!r}:\n"
        "            raise ImportError('server package imported: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import rationale, rationale.client, rationale.errors\n"
        "c = rationale.Client('http://127.0.0.1:9')\n"
        f"assert not [m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_help_reads_well() -> None:
    text = pydoc.render_doc(rationale.Client, renderer=pydoc.plaintext)
    for words in ("log(self, df", "decision_id", 'form="long"', "Retry-After", "CBPE", "demographic_parity_difference"):
        assert words in text, words
    assert all(getattr(rationale.Client, m).__doc__ for m in dir(rationale.Client) if not m.startswith("_"))
    assert pd.DataFrame is not None
