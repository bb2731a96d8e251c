"""Issue #15 item 5: schemathesis against the app's own OpenAPI document, in process (ASGI), all checks on.

Every operation the document lists is called with generated requests — valid ones, and ones that break the
schema (negative mode) — on SQLite and on PostgreSQL, with a registered model and a few decisions in the
database so that lookups can hit. A fixed seed and a bounded example count keep it deterministic and a few
minutes long. Every built-in check is on: no 5xx, every status and body as documented, 405 with ``Allow``
for undocumented methods, schema-breaking requests refused. Schema-valid requests may still be refused by
what only the server knows (an unregistered model: 422, an unknown id: 404, a conflict: 409), so those
statuses count as acceptance of valid data.

Request headers come from one fixture, ``fuzz_headers`` (tests/api/fuzz_support.py): once access control
lands, the lead puts an admin API key there so the fuzzer reaches every route.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from api.app import create_app
from api.container import Services, build_services
from api.settings import Settings
from tests.api.fuzz_support import fuzz_headers
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest

__all__ = ["fuzz_headers"]  # the fixture, imported so pytest finds it here

SEED = 20261130
MAX_EXAMPLES = 40
ACCEPTED = ["2XX", "404", "409", "422"]


def fuzz_config(headers: dict[str, str]) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        }
    )


@pytest.fixture
def fuzz_services(
    db_url: str, tmp_path: Any, credit_artifact: bytes, fuzz_headers: dict[str, str]
) -> Iterator[Services]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=db_url,
        workers=0,
        origin="rationale.test/ledger",
        gc_freeze=False,
        max_body_bytes=256 * 1024,
    )
    services = build_services(settings)
    fuzz_headers.update(auth_headers(services))
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # seed data the fuzzer can find: a model and a few decisions
        resp = client.post(
            "/v1/models",
            data={"manifest": json.dumps(credit_manifest())},
            files={"artifact": ("model.skops", credit_artifact)},
            headers=fuzz_headers,
        )
        assert resp.status_code == 201, resp.text
        batch = [{"decision_id": f"d-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(applicant_rows(3))]
        assert client.post("/v1/decisions", json={"decisions": batch}, headers=fuzz_headers).status_code == 201
    yield services
    services.close()


@pytest.mark.heavy
def test_every_operation_conforms_to_its_document(fuzz_services: Services, fuzz_headers: dict[str, str]) -> None:
    """The schemathesis engine, as ``schemathesis run`` drives it (examples, coverage, fuzzing and stateful
    phases), against the app in process; every check failure and every engine error fails the test."""
    from schemathesis.engine import Status, events, from_schema

    app = create_app(services=fuzz_services, start_workers=False, publish_checkpoints=False)
    app.state.services = fuzz_services  # the lifespan sets this; schemathesis calls the app without one
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(fuzz_headers))
    started = time.perf_counter()
    requests = 0
    statuses: Counter[int] = Counter()
    checked = 0
    failures: list[str] = []
    errors: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            for interaction in event.recorder.interactions.values():
                requests += 1
                if interaction.response is not None:
                    statuses[interaction.response.status_code] += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    checked += 1
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        info = check.failure_info
                        failures.append(f"{check.name}: {info.failure.title} — {info.code_sample}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(repr(getattr(event, "value", None) or getattr(event, "exception", None)))
    elapsed = time.perf_counter() - started
    print(
        f"\nschemathesis: {requests} requests, {checked} checks in {elapsed:.1f}s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert not errors, errors[:5]
    assert not failures, "\n\n".join(sorted(set(failures))[:10])
    assert not any(status >= 500 for status in statuses)
    assert requests >= 200 and checked >= requests
