"""Reviewer sessions without a browser: forged, altered, revoked and https cookies (issue #14 item 5).
The browser-level flows (sign-in, wrong key, expiry, CSRF, regulator) are in test_review_pages.py."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import Services
from api.review.session import COOKIE
from api.services.access import local_principal, revoke_key
from tests.api.helpers import issue_key


@pytest.fixture
def browserless(services: Services) -> Iterator[TestClient]:
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, key: str, purpose: str = "session test") -> Any:
    form = client.get("/review/sign-in")
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
    assert token is not None
    return client.post("/review/sign-in", data={"key": key, "purpose": purpose, "csrf": token.group(1)})


def test_sign_in_without_the_forms_token_is_refused(browserless: TestClient, services: Services) -> None:
    key = issue_key(services, "compliance")
    browserless.get("/review/sign-in")
    resp = browserless.post("/review/sign-in", data={"key": key, "purpose": "x", "csrf": "f" * 32})
    assert resp.status_code == 403 and COOKIE not in resp.cookies


def test_an_altered_or_forged_cookie_is_not_a_session(browserless: TestClient, services: Services) -> None:
    compliance, admin = issue_key(services, "compliance"), issue_key(services, "admin")
    signed_in = sign_in(browserless, compliance)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/review"
    cookie = browserless.cookies[COOKIE]
    assert browserless.get("/review").status_code == 200
    body, mac = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["k"] = admin.split("_")[1]  # claim to be the admin's session, keeping the old signature
    altered = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode() + "." + mac
    for forged in (altered, body + "." + "A" * len(mac), "garbage", body):
        browserless.cookies.clear()
        browserless.cookies.set(COOKIE, forged, path="/review")
        resp = browserless.get("/review/access")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/review/sign-in"), forged


def test_revoking_the_key_ends_its_sessions(browserless: TestClient, services: Services) -> None:
    key = issue_key(services, "compliance")
    sign_in(browserless, key)
    assert browserless.get("/review").status_code == 200
    revoke_key(services, key_id=key.split("_")[1], by=local_principal())
    resp = browserless.get("/review")
    assert resp.status_code == 303 and "no+longer+valid" in resp.headers["location"]


def test_the_cookie_is_secure_under_https_and_never_holds_the_key(services: Services) -> None:
    key = issue_key(services, "data_scientist")
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        resp = sign_in(client, key)
    header = resp.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=") and key not in header
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "secure", "max-age", "path", "samesite"} <= attributes
    assert "samesite=strict" in header.lower() and "path=/review" in header.lower()


def test_next_never_leaves_the_reviewer_pages(browserless: TestClient, services: Services) -> None:
    key = issue_key(services, "compliance")
    for target, expected in (
        ("https://evil.example/", "/review"),
        ("//evil.example/x", "/review"),
        ("/v1/decisions", "/review"),
        ("/review/decisions/a", "/review/decisions/a"),
    ):
        form = browserless.get("/review/sign-in")
        token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
        assert token is not None
        resp = browserless.post(
            "/review/sign-in", data={"key": key, "purpose": "p", "next": target, "csrf": token.group(1)}
        )
        assert resp.headers["location"] == expected, target
