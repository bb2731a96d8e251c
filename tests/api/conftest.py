"""API fixtures: real services over a fresh SQLite or PostgreSQL database, and an HTTP client signed in with an
admin key created in that database (access control stays on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import Services, build_services
from api.settings import Settings
from explain.artifacts import dump_skops
from explain.samples import train_credit_pipeline
from tests.api.helpers import auth_headers, credit_manifest


@pytest.fixture(scope="session")
def credit_pipeline() -> Any:
    return train_credit_pipeline(seed=0, n=1500)


@pytest.fixture(scope="session")
def credit_artifact(credit_pipeline: Any) -> bytes:
    return dump_skops(credit_pipeline)


@pytest.fixture(scope="session")
def linear_artifact() -> bytes:
    return dump_skops(train_credit_pipeline(seed=0, n=1500, kind="linear"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=db_url,
        workers=0,
        origin="rationale.test/ledger",
        gc_freeze=False,  # one pytest process builds hundreds of services
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers.update(auth_headers(services))  # an admin key in the test database
        yield test_client


@pytest.fixture
def registered(client: TestClient, credit_artifact: bytes) -> dict[str, Any]:
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("model.skops", credit_artifact)},
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body
