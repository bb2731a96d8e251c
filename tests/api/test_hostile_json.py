"""Issue #15 item 5: generated hostile JSON against POST /v1/decisions and POST /v1/models.

Each example starts from a valid request and applies one to three generated attacks — duplicate keys,
nesting past the limit, integers past ±(2**53-1), NaN/Infinity, doubles that overflow, U+0000, invalid
UTF-8, lone surrogates, truncation, trailing garbage, values of the wrong type, bodies past the size limit
— single or inside a batch. Every answer must be a 4xx in the error shape, the ledger must not grow, and
the service must stay healthy. On SQLite and PostgreSQL (the ``client`` fixture runs once per back-end).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.container import build_services
from tests.api.fuzz_support import fuzz_headers
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest, ledger_size

__all__ = ["fuzz_headers"]  # the fixture, imported so pytest finds it here

BODY_LIMIT = 64 * 1024
HOSTILE_SETTINGS = settings(
    max_examples=400,
    derandomize=True,  # a fixed seed: the same examples on every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

RAW = "@@raw{}@@"


def _deep(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@st.composite
def raw_value(draw: st.DrawFn, *, huge: bool, raw_bytes: bool) -> str:
    """A JSON-looking value text that the strict reader (or the body limit, when ``huge``) must refuse;
    ``raw_bytes``: invalid UTF-8 bytes too (JSON bodies; a multipart text field is decoded by Starlette,
    which falls back to Latin-1, so its bytes are not seen)."""
    kinds = ["bigint", "nan", "overflow", "deep", "nul", "surrogate"]
    kinds += (["huge"] if huge else []) + (["badutf8"] if raw_bytes else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "bigint":
        digits = draw(st.integers(17, 6000))
        sign = draw(st.sampled_from(["", "-"]))
        return sign + "9" * digits
    if kind == "nan":
        return draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    if kind == "overflow":
        return f"{draw(st.integers(1, 9))}e{draw(st.integers(309, 99999))}"
    if kind == "deep":
        return _deep(draw(st.integers(33, 20_000)), draw(st.sampled_from(["array", "object"])))
    if kind == "nul":
        text = draw(st.text(max_size=10))
        at = draw(st.integers(0, len(text)))
        return json.dumps(text[:at] + "\x00" + text[at:])
    if kind == "surrogate":
        return '"x' + draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d"])) + 'y"'
    if kind == "badutf8":
        return '"a' + draw(st.sampled_from(["\udcff", "\udcc3(", "\udced\udca0\udc80", "\udcfe"])) + 'b"'
    return json.dumps("x" * draw(st.integers(BODY_LIMIT + 1, 3 * BODY_LIMIT)))


def _encode(text: str) -> bytes:
    # lone surrogates in the text stand for raw (invalid UTF-8) bytes: surrogateescape puts them back
    return text.encode("utf-8", errors="surrogateescape")


@st.composite
def hostile_document(
    draw: st.DrawFn,
    base: dict[str, Any],
    places: list[tuple[str, ...]],
    typed: list[tuple[str, ...]],
    *,
    json_body: bool,
) -> bytes:
    """``base`` with one to three attacks applied. ``places`` are paths where a raw value may go or a key be
    duplicated; ``typed`` are paths whose value must be a string or a bounded number (a wrong type there is
    an attack; elsewhere, in free context, it would be a legitimate value). ``json_body``: the document is a
    whole request body (so it may also be oversized or carry raw invalid UTF-8), not a multipart field."""
    doc = json.loads(json.dumps(base))
    raws: list[str] = []
    duplicates: list[tuple[tuple[str, ...], str]] = []
    attacks = draw(st.lists(st.sampled_from(["raw", "dup", "wrongtype", "rawkey"]), min_size=1, max_size=3))
    for attack in attacks:
        path = draw(st.sampled_from(typed if attack == "wrongtype" else places))
        parent = doc
        for key in path[:-1]:
            parent = parent.setdefault(key, {}) if isinstance(parent, dict) else parent
        if not isinstance(parent, dict):
            continue
        if attack == "raw":
            parent[path[-1]] = RAW.format(len(raws))
            raws.append(draw(raw_value(huge=json_body, raw_bytes=json_body)))
        elif attack == "rawkey":
            parent[RAW.format(len(raws))] = 1
            raws.append(draw(st.sampled_from(['"k\\u0000"', '"\\udc00"', *(['"\udcff"'] if json_body else [])])))
        elif attack == "dup":
            duplicates.append((path, json.dumps(draw(json_values))))
        else:
            parent[path[-1]] = draw(st.one_of(st.none(), st.booleans(), st.integers(2**53, 2**60), st.just([])))
    text = json.dumps(doc)
    for i, raw in enumerate(raws):
        placeholder = RAW.format(i)
        text = text.replace(json.dumps(placeholder), raw, 1)
    for path, value in duplicates:
        key = json.dumps(path[-1])
        at = text.find(key + ":")
        if at >= 0:  # repeat the key right before its first occurrence: {"k": v2, "k": v1}
            text = text[:at] + f"{key}: {value}, " + text[at:]
        else:
            return _encode(text[: max(1, len(text) // 2)])  # nothing to duplicate: truncate instead
    ending = draw(st.sampled_from(["", "", "", "truncate", "garbage", "bom"]))
    if ending == "truncate":
        text = text[: draw(st.integers(1, len(text) - 1))]
    elif ending == "garbage":
        text += draw(st.sampled_from(["}", "]", " x", ",", "{}", "\x00"]))
    elif ending == "bom":
        text = "\ufeff" + text
    return _encode(text)


def _expect_refused(resp: Any) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert resp.status_code not in (401, 403), "refused for want of credentials: put an admin key in fuzz_headers"
    error = resp.json()["error"]
    assert error["code"] and error["message"] and isinstance(error["details"], dict)
    assert "Traceback" not in resp.text


@pytest.fixture
def small_limit_client(settings: Any, credit_artifact: bytes, fuzz_headers: dict[str, str]) -> Any:
    limited = settings.model_copy(update={"max_body_bytes": BODY_LIMIT})
    services = build_services(limited)
    fuzz_headers.update(auth_headers(services))
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False, headers=fuzz_headers) as client:
        resp = client.post(
            "/v1/models",
            data={"manifest": json.dumps(credit_manifest())},
            files={"artifact": ("model.skops", credit_artifact)},
        )
        assert resp.status_code == 201, resp.text
        yield client
    services.close()


DECISION_PLACES = [
    ("decision_id",),
    ("model",),
    ("inputs", "income"),
    ("inputs", "open_accounts"),
    ("inputs", "purpose"),
    ("context", "note"),
    ("context", "nested", "deeper"),
    ("subject_ref",),
    ("occurred_at",),
    ("output", "label"),
    ("explain",),
]
DECISION_TYPED = [
    ("decision_id",),
    ("model",),
    ("inputs", "income"),
    ("inputs", "open_accounts"),
    ("inputs", "purpose"),
]


@pytest.mark.heavy
def test_generated_hostile_decisions_are_4xx_and_write_nothing(small_limit_client: Any) -> None:
    client = small_limit_client
    row = applicant_rows(1)[0]
    base = {"decision_id": "d-1", "model": "credit@1", "inputs": row, "context": {"note": "n"}}
    size = ledger_size(client)
    seen = {"n": 0, "statuses": set()}

    @HOSTILE_SETTINGS
    @given(body=hostile_document(base, DECISION_PLACES, DECISION_TYPED, json_body=True), batched=st.booleans())
    def attack(body: bytes, batched: bool) -> None:
        if batched:
            valid = json.dumps({"decision_id": "ok-1", "model": "credit@1", "inputs": row}).encode()
            body = b'{"decisions": [' + valid + b", " + body + b"]}"
        resp = client.post("/v1/decisions", content=body, headers={"content-type": "application/json"})
        _expect_refused(resp)
        seen["n"] += 1
        seen["statuses"].add(resp.status_code)

    attack()
    assert ledger_size(client) == size
    assert client.get("/healthz").json()["status"] == "ok"
    assert seen["n"] >= 300 and {413, 422} <= seen["statuses"], seen


MANIFEST_PLACES = [
    ("name",),
    ("version",),
    ("task",),
    ("metadata", "owner"),
    ("metadata", "training", "data"),
    ("templates", "reason"),
    ("explainers", "params"),
    ("class_labels",),
]
MANIFEST_TYPED = [
    ("name",),
    ("version",),
    ("task",),
    ("templates", "reason"),
    ("explainers", "params"),
    ("class_labels",),
]


@pytest.mark.heavy
def test_generated_hostile_manifests_are_4xx_and_write_nothing(small_limit_client: Any, credit_artifact: bytes) -> None:
    client = small_limit_client
    base = credit_manifest(version="2")
    size = ledger_size(client)
    seen = {"n": 0}

    @HOSTILE_SETTINGS
    @given(manifest=hostile_document(base, MANIFEST_PLACES, MANIFEST_TYPED, json_body=False))
    def attack(manifest: bytes) -> None:
        resp = client.post(
            "/v1/models",
            files={"manifest": (None, manifest, "application/json"), "artifact": ("m.skops", credit_artifact)},
        )
        _expect_refused(resp)
        seen["n"] += 1

    attack()
    assert ledger_size(client) == size
    assert client.get("/healthz").json()["status"] == "ok"
    assert seen["n"] >= 300


@pytest.mark.heavy
def test_generated_hostile_artifacts_are_4xx_and_write_nothing(small_limit_client: Any, credit_artifact: bytes) -> None:
    client = small_limit_client
    manifest = json.dumps(credit_manifest(version="3"))
    size = ledger_size(client)

    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        cut=st.integers(0, len(credit_artifact) - 1),
        flips=st.lists(st.tuples(st.integers(0, len(credit_artifact) - 1), st.integers(1, 255)), max_size=4),
        junk=st.binary(max_size=64),
        how=st.sampled_from(["truncate", "flip", "junk"]),
    )
    def attack(cut: int, flips: list[tuple[int, int]], junk: bytes, how: str) -> None:
        data = bytearray(credit_artifact)
        if how == "truncate":
            data = data[:cut]
        elif how == "flip" and flips:
            for at, bit in flips:
                data[at] ^= bit
        else:
            data = bytearray(junk) if junk else bytearray(b"x")
        if bytes(data) == credit_artifact:
            data = data[:-1]
        resp = client.post("/v1/models", data={"manifest": manifest}, files={"artifact": ("m", bytes(data))})
        if resp.status_code == 201:  # a flip in zip padding can leave the model intact: then it is just a model
            return
        _expect_refused(resp)

    attack()
    assert ledger_size(client) in (size, size + 1)
    assert client.get("/healthz").json()["status"] == "ok"
