"""Shared builders for API tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from explain.samples import credit_spec, make_credit_frame


def credit_manifest(**overrides: Any) -> dict[str, Any]:
    spec = credit_spec()
    background, _ = make_credit_frame(60, seed=7)
    manifest: dict[str, Any] = {
        "name": "credit",
        "version": "1",
        "task": "binary",
        "class_labels": list(spec.class_labels),
        "features": [f.to_dict() for f in spec.features],
        "background": background.to_dict(orient="records"),
        "metadata": {"owner": "tests"},
    }
    manifest.update(overrides)
    return manifest


def register_credit(client: Any, artifact: bytes) -> None:
    """credit@1, the model the API tests decide with."""
    resp = client.post(
        "/v1/models",
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("model.skops", artifact)},
    )
    assert resp.status_code == 201, resp.text


@contextmanager
def own_deployment(tmp: Path, artifact: bytes) -> Iterator[tuple[Any, Any]]:
    """(services, admin client) of a deployment of its own on SQLite under ``tmp``, credit@1 registered: for
    module-scoped fixtures, which the per-test ``services`` fixture cannot serve."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.container import build_services
    from api.settings import Settings
    from storage.db import Database

    settings = Settings(
        environment="test",
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp}/rationale.db",
        workers=0,
        origin="rationale.test/ledger",
        gc_freeze=False,
    )
    db = Database.from_url(settings.effective_database_url)
    db.upgrade()
    db.dispose()
    services = build_services(settings)
    try:
        app = create_app(services=services, start_workers=False, publish_checkpoints=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers.update(auth_headers(services))  # access control is on: an admin key
            register_credit(client, artifact)
            yield services, client
    finally:
        services.close()


def applicant_rows(n: int, *, seed: int = 11) -> list[dict[str, Any]]:
    frame, _ = make_credit_frame(n, seed=seed)
    return frame.to_dict(orient="records")


def ledger_size(client: Any) -> int:
    """Ledger entries other than access control's own (reads and key events append ``access.*`` entries)."""
    from sqlalchemy import func, select

    from storage.tables import LedgerEntryRow

    services = client.app.state.services
    with services.db.unit_of_work(write=False) as uow:
        query = select(func.count()).where(LedgerEntryRow.entry_type.not_like("access.%"))
        return int(uow.session.execute(query).scalar_one())


def issue_key(services: Any, role: str = "admin", owner: str = "tests") -> str:
    """A fresh API key of ``role`` seeded in the services' database, as a fixture: unlike
    ``api.services.access.create_key`` it appends no ``access.key`` ledger entry, so tests that count entries
    or tree sizes see only their own. Returns the secret."""
    import secrets

    from api.services.access import hash_key
    from storage.access_store import ApiKeyRecord

    key_id = secrets.token_hex(8)
    secret = f"rk_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(key_id, owner, role, hash_key(secret), services.clock(), "tests", None, None)
    with services.db.unit_of_work() as uow:
        uow.access.add_key(record)
    return secret


def auth_headers(services: Any, role: str = "admin", purpose: str = "automated test") -> dict[str, str]:
    """Request headers carrying a fresh key of ``role`` and a stated purpose."""
    return {"Authorization": f"Bearer {issue_key(services, role)}", "X-Rationale-Purpose": purpose}


def sign_in_pages(client: Any, services: Any, role: str = "admin", purpose: str = "automated test") -> None:
    """Sign a TestClient in to the reviewer pages (session cookie), as a reviewer would with the form."""
    import re

    key = issue_key(services, role)
    form = client.get("/review/sign-in")
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
    assert token is not None, form.text[:300]
    response = client.post("/review/sign-in", data={"key": key, "purpose": purpose, "csrf": token.group(1)})
    assert response.status_code in (200, 303), response.text[:300]


def sign_in_tab(tab: Any, services: Any, role: str = "admin", purpose: str = "browser test") -> None:
    """Sign a Playwright tab in to the reviewer pages through the sign-in form."""
    tab.goto("/review/sign-in")
    tab.fill("#key", issue_key(services, role))
    tab.fill("#purpose", purpose)
    with tab.expect_navigation():
        tab.click("#sign-in")
