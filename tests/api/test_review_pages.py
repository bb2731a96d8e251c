"""The reviewer pages in a real browser: Debian's Chromium driven by Playwright against the app under uvicorn.

One server and one browser serve the whole module: the demo credit model, a handful of decisions (one with
SHAP, anchors and counterfactuals), a signed checkpoint, then a decision recorded after it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text

from api.app import create_app
from api.container import Services, build_services
from api.schemas import DecisionCreate, ManifestIn, OutcomeCreate
from api.services.access import ROLES
from api.services.checkpoints import publish_now
from api.services.decisions import record_decisions, request_explanations
from api.services.models import register_model
from api.services.outcomes import record_outcome
from api.settings import Settings
from api.workers.local_pool import drain
from explain.samples import PURPOSES, credit_spec
from storage.db import Database
from tests.api.helpers import applicant_rows, credit_manifest, issue_key

pytestmark = [pytest.mark.browser, pytest.mark.heavy]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RICH = "app-rich"
SUBJECT = "applicant-007"
HOSTILE = "<script>alert(1)</script>"
FEATURES = len(credit_spec().features)
METHODS = ["shap", "anchors", "counterfactuals"]


@dataclass
class Site:
    base: str
    services: Services
    clock: MovableClock
    keys: dict[str, str]  # role -> key secret


class MovableClock:
    """The services' injected clock: real time plus an offset the expiry test moves forward (never sleeps)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _record(services: Services, decisions: list[dict[str, Any]]) -> None:
    record_decisions(services, [DecisionCreate(**d) for d in decisions], path="decisions")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, credit_artifact: bytes) -> Iterator[Site]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path_factory.mktemp("review") / "data",
        workers=0,
        origin="rationale.test/ledger",
    )
    settings.data_dir.mkdir(parents=True)
    database = Database.from_url(settings.effective_database_url)
    database.upgrade()
    database.dispose()
    clock = MovableClock()
    services = build_services(settings, clock=clock)
    keys = {role: issue_key(services, role, owner=f"{role} reviewer") for role in ROLES}
    register_model(services, manifest=ManifestIn.model_validate(credit_manifest()), artifact=credit_artifact)
    features = credit_manifest()["features"]
    for feature in features:  # a version whose categories admit markup, as a careless schema might
        if feature["name"] == "purpose":
            feature["categories"] = [*PURPOSES, HOSTILE]
    hostile_manifest = credit_manifest(version="hostile", features=features)
    register_model(services, manifest=ManifestIn.model_validate(hostile_manifest), artifact=credit_artifact)
    rows = applicant_rows(5)
    plain = {"model": "credit@1", "explain": []}
    _record(
        services,
        [
            {**plain, "decision_id": RICH, "inputs": rows[0], "subject_ref": SUBJECT, "explain": METHODS},
            {**plain, "decision_id": "app-2", "inputs": rows[1], "subject_ref": SUBJECT},
            {**plain, "decision_id": "app-3", "inputs": rows[2], "subject_ref": "applicant-008"},
            {**plain, "decision_id": "tampered", "inputs": rows[3], "subject_ref": "applicant-009"},
            {
                "decision_id": "hostile",
                "model": "credit@hostile",
                "inputs": {**rows[4], "purpose": HOSTILE},
                "subject_ref": HOSTILE,
                "context": {"note": "<img src=x onerror=alert(2)>"},
                "explain": [],
            },
        ],
    )
    # a decision explained by SHAP and a deliberately rough LIME (few samples): methods to compare
    request_explanations(
        services, decision_id="app-2", methods=["shap", "lime"], params={"lime": {"num_samples": 30}}, target=None
    )
    drain(services)
    record_outcome(services, decision_id="app-3", body=OutcomeCreate(label="approved"))
    assert publish_now(services) is not None
    with services.db.engine.begin() as conn:  # edit rows behind the application's back
        conn.execute(text("UPDATE decisions SET subject_ref = 'forged' WHERE decision_id = 'tampered'"))
        conn.execute(
            text(
                "UPDATE outcomes SET label = 'declined', body = json_set(body, '$.label', 'declined') "
                "WHERE decision_id = 'app-3'"
            )
        )

    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="review-uvicorn", daemon=True)
    thread.start()
    for _ in range(200):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Site(base=f"http://127.0.0.1:{port}", services=services, clock=clock, keys=keys)
    server.should_exit = True
    thread.join(10)
    services.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Messages of any alert, confirm or prompt a page opened: injected script would open one."""
    return []


@pytest.fixture
def anonymous(browser: Any, site: Site, dialogs: list[str]) -> Iterator[Any]:
    """A fresh browser context with no session."""
    context = browser.new_context(base_url=site.base)
    tab = context.new_page()

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", dismiss)
    yield tab
    context.close()


def sign_in(tab: Any, key: str, purpose: str = "browser test", *, start: str = "/review") -> Any:
    tab.goto(start)
    tab.fill("#key", key)
    tab.fill("#purpose", purpose)
    with tab.expect_navigation() as navigation:
        tab.click("#sign-in")
    return navigation.value


@pytest.fixture
def page(anonymous: Any, site: Site) -> Any:
    """Signed in with a compliance key (search, dossiers, exports) and a stated purpose."""
    sign_in(anonymous, site.keys["compliance"])
    return anonymous


def api_headers(site: Site, role: str = "compliance") -> dict[str, str]:
    return {"Authorization": f"Bearer {site.keys[role]}", "X-Rationale-Purpose": "browser test"}


def test_search_by_subject_and_open_the_dossier(page: Any, site: Site) -> None:
    page.goto("/review")
    page.fill("#subject_ref", SUBJECT)
    page.click("button[type=submit]")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 2
    assert rows.locator("td:first-child").all_inner_texts() == [RICH, "app-2"]
    page.click(f"#results a:text-is('{RICH}')")
    page.wait_for_url(f"**/review/decisions/{RICH}")

    api = page.request.get(f"/v1/decisions/{RICH}", headers=api_headers(site)).json()
    assert page.locator("#reasons li").all_inner_texts() == api["reasons"]["sentences"]
    assert len(api["reasons"]["sentences"]) >= 3
    assert page.inner_text("#predicted") == api["output"]["label"]
    assert page.inner_text("#model-ref") == "credit@1"
    assert re.fullmatch(r"[0-9a-f]{64}", page.inner_text("#artifact-sha256"))
    assert page.inner_text("#ledger-index") == str(api["ledger"]["index"])
    assert page.inner_text("#leaf-hash") == api["ledger"]["leaf_hash"]
    labels = page.locator("#inputs tbody td:first-child").all_inner_texts()
    assert "Annual income" in labels and "Debt-to-income ratio" in labels


def test_attribution_chart_has_one_bar_per_feature_largest_first(page: Any) -> None:
    page.goto(f"/review/decisions/{RICH}")
    bars = page.locator("#attribution-chart g.bar")
    assert bars.count() == FEATURES
    assert page.locator("#attribution-chart rect").count() == FEATURES
    values = [float(v) for v in bars.evaluate_all("gs => gs.map(g => g.dataset.value)")]
    assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    colours = page.locator("#attribution-chart rect").evaluate_all("rs => rs.map(r => r.getAttribute('class'))")
    assert colours == ["positive" if v >= 0 else "negative" for v in values]
    names = page.locator("#attribution-chart text.feature").all_text_contents()
    assert "Annual income" in names and len(set(names)) == FEATURES
    shown = page.locator("#attribution-chart text.value").all_text_contents()
    assert shown == [f"{v:+.4f}" for v in values]


def test_anchor_counterfactual_status_and_integrity(page: Any, site: Site) -> None:
    page.goto(f"/review/decisions/{RICH}")
    assert page.locator("#anchor-rule").inner_text()
    assert re.fullmatch(r"\d+%", page.inner_text("#anchor-precision"))
    assert re.fullmatch(r"\d+%", page.inner_text("#anchor-coverage"))
    assert page.locator("#counterfactual").is_visible()
    changes = page.locator("#counterfactual tr.change")
    assert changes.count() >= 1
    states = page.locator("#explanations tbody tr td:nth-child(2)").all_inner_texts()
    assert states == ["succeeded"] * 3
    tree_size = page.request.get("/v1/ledger/checkpoint").json()["tree_size"]
    assert f"Verified against checkpoint of tree size {tree_size}." in page.inner_text("#integrity-summary")
    statuses = page.locator("#integrity tbody td:nth-child(3)").all_inner_texts()
    assert statuses == ["verified"] * 4  # the decision and its three explanations


def test_export_button_gives_a_downloadable_bundle(page: Any) -> None:
    page.goto(f"/review/decisions/{RICH}")
    page.click("#export-button")
    page.wait_for_url("**/review/exports/*")
    link = page.get_attribute("#download", "href")
    assert link is not None and link.endswith("/bundle")
    bundle = page.request.get(link)
    assert bundle.status == 200
    body = bundle.body()
    assert body[:2] == b"PK"
    assert hashlib.sha256(body).hexdigest() == page.inner_text("#bundle-sha256")


def test_search_by_model_pages_with_the_cursor(page: Any) -> None:
    page.goto("/review")
    page.fill("#model", "credit@1")
    page.click("button[type=submit]")
    assert page.locator("#results tbody tr").count() == 4
    seen: list[str] = []
    page.goto("/review?model=credit%401&limit=2")
    while True:
        seen += page.locator("#results tbody td:first-child").all_inner_texts()
        if page.locator("#next-page").count() == 0:
            break
        page.click("#next-page")
    assert seen == [RICH, "app-2", "app-3", "tampered"]
    page.goto("/review?model=credit")
    assert "hostile" in page.locator("#results tbody td:first-child").all_inner_texts()  # every version


def test_exact_id_opens_the_dossier(page: Any) -> None:
    page.goto("/review")
    page.fill("#decision_id", "app-3")
    page.click("button[type=submit]")
    page.wait_for_url("**/review/decisions/app-3")
    assert page.inner_text("#decision-id") == "app-3"


def test_unknown_id_is_a_clear_404(page: Any) -> None:
    response = page.goto("/review?decision_id=no-such-decision")
    assert response.status == 404
    assert "No decision with id “no-such-decision”" in page.inner_text("#message")
    response = page.goto("/review/decisions/no-such-decision")
    assert response.status == 404
    assert "No decision with id “no-such-decision”" in page.inner_text("#message")


def test_bad_dates_are_shown_next_to_their_field_with_422(page: Any) -> None:
    page.goto("/review")
    page.fill("#since", "last tuesday")
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 422
    assert "is not a date or time" in page.inner_text("#since-error")
    assert page.get_attribute("#since", "aria-invalid") == "true"
    assert page.input_value("#since") == "last tuesday"
    assert "Traceback" not in page.content()
    response = page.goto("/review?until=2026-03-01T09:30:00")
    assert response.status == 422
    assert "timezone" in page.inner_text("#until-error")


def test_client_strings_are_shown_as_text(page: Any, dialogs: list[str]) -> None:
    page.goto("/review/decisions/hostile")
    assert page.inner_text("#subject-ref") == HOSTILE
    assert HOSTILE in page.locator("#inputs td.value").all_inner_texts()
    assert "<img src=x onerror=alert(2)>" in page.inner_text("#context")
    assert page.locator("main script, main img").count() == 0
    response = page.goto(f"/review?subject_ref={HOSTILE}")
    assert response.status == 200
    assert page.locator("#results tbody td:nth-child(5)").all_inner_texts() == [HOSTILE]
    assert page.input_value("#subject_ref") == HOSTILE
    response = page.goto("/review?decision_id=%3Cscript%3Ealert(3)%3C%2Fscript%3E")
    assert response.status == 404
    assert "<script>alert(3)</script>" in page.inner_text("#message")
    assert dialogs == []


def test_integrity_says_when_no_checkpoint_covers_the_entry(page: Any, site: Site) -> None:
    rows = applicant_rows(1, seed=5)
    _record(site.services, [{"decision_id": "late", "model": "credit@hostile", "inputs": rows[0], "explain": []}])
    page.goto("/review/decisions/late")
    assert page.inner_text("#integrity-summary").startswith("No checkpoint yet covers this entry")
    assert page.inner_text("#integrity h2 .status") == "pending"


def test_integrity_fails_when_the_record_differs_from_the_ledger(page: Any) -> None:
    page.goto("/review/decisions/tampered")
    assert page.inner_text("#integrity h2 .status") == "failed"
    summary = page.inner_text("#integrity-summary")
    assert "decisions row decision_id='tampered' differs from ledger entry" in summary
    assert "subject_ref" in summary
    assert page.inner_text("#subject-ref") == "applicant-009"  # the ledger's record, not the edit


def test_an_edited_outcome_fails_the_check_and_the_recorded_one_is_shown(page: Any) -> None:
    page.goto("/review/decisions/app-3")
    assert page.inner_text("#integrity h2 .status") == "failed"
    assert "outcomes row decision_id='app-3' differs from ledger entry" in page.inner_text("#integrity-summary")
    assert "approved" in page.inner_text("#summary")  # the recorded outcome, not the edited "declined"
    assert page.inner_text("#outcome-ledger-index").isdigit()
    assert len(page.inner_text("#outcome-leaf-hash")) == 64


def test_search_flags_a_row_that_no_longer_matches_its_entry(page: Any) -> None:
    page.goto("/review?subject_ref=forged")
    assert "altered row" in page.inner_text("#results")


# sign-in, sessions and CSRF (issue #14 item 5)


def test_sign_in_returns_to_the_page_asked_for_and_shows_who_is_signed_in(anonymous: Any, site: Site) -> None:
    response = anonymous.goto("/review/decisions/app-3")
    assert "/review/sign-in" in anonymous.url and response.status == 200
    assert anonymous.locator("#signed-in").count() == 0
    sign_in(anonymous, site.keys["compliance"], "complaint 2026-114", start=anonymous.url)
    assert anonymous.url.endswith("/review/decisions/app-3")
    assert anonymous.inner_text("#decision-id") == "app-3"
    assert anonymous.inner_text("#signed-in-name") == "compliance reviewer"
    assert anonymous.inner_text("#signed-in-role") == "compliance"
    assert anonymous.input_value("#purpose-input") == "complaint 2026-114"
    [cookie] = [c for c in anonymous.context.cookies() if c["name"] == "rationale_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/review"
    assert not cookie["secure"]  # plain http here; Secure is set when the request came over https
    assert site.keys["compliance"] not in cookie["value"]
    for path in ("/review", "/review/decisions/app-2"):
        anonymous.goto(path)
        assert anonymous.inner_text("#signed-in-name") == "compliance reviewer"

    anonymous.click("#sign-out")
    anonymous.wait_for_url("**/review/sign-in**")
    assert "Signed out." in anonymous.inner_text("#message")
    anonymous.goto("/review/decisions/app-3")
    assert "/review/sign-in" in anonymous.url


def test_a_wrong_key_is_refused_without_a_session(anonymous: Any, site: Site) -> None:
    for key in ("rk_0123456789abcdef_" + "A" * 43, "hunter2", site.keys["compliance"][:-1] + "Z"):
        navigation = sign_in(anonymous, key)
        assert navigation.status == 401
        assert "That key is not valid" in anonymous.inner_text("#message")
        assert key not in anonymous.content()
        assert [c for c in anonymous.context.cookies() if c["name"] == "rationale_session"] == []
    anonymous.goto("/review")
    assert "/review/sign-in" in anonymous.url


def test_a_compliance_reviewer_must_state_a_purpose(anonymous: Any, site: Site) -> None:
    navigation = sign_in(anonymous, site.keys["compliance"], purpose="")
    assert navigation.status == 422
    assert "must state the purpose" in anonymous.inner_text("#message")


def test_an_expired_session_asks_to_sign_in_again(anonymous: Any, site: Site) -> None:
    sign_in(anonymous, site.keys["compliance"], start="/review/decisions/app-3")
    assert anonymous.inner_text("#decision-id") == "app-3"
    site.clock.offset += timedelta(minutes=site.services.settings.session_minutes, seconds=1)
    anonymous.goto("/review/decisions/app-2")
    assert "/review/sign-in" in anonymous.url
    assert "expired" in anonymous.inner_text("#message")
    sign_in(anonymous, site.keys["compliance"], start=anonymous.url)  # a new session works at the new time
    assert anonymous.inner_text("#decision-id") == "app-2"


def test_a_forged_post_without_the_csrf_token_is_refused(page: Any, site: Site) -> None:
    from sqlalchemy import func, select

    from storage.access_store import ExportOwnerRow

    def exports() -> int:
        with site.services.db.unit_of_work(write=False) as uow:
            return int(uow.session.execute(select(func.count()).select_from(ExportOwnerRow)).scalar_one())

    before = exports()
    page.goto("/review/decisions/app-3")
    for token in (None, "", "0" * 32):
        script = """token => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/review/decisions/app-3/export';
            if (token !== null) {
                const field = document.createElement('input');
                field.type = 'hidden'; field.name = 'csrf'; field.value = token;
                form.appendChild(field);
            }
            document.body.appendChild(form);
            form.submit();
        }"""
        with page.expect_navigation() as navigation:
            page.evaluate(script, token)
        assert navigation.value.status == 403
        assert "CSRF" in page.inner_text("#message")
    assert exports() == before
    page.goto("/review/decisions/app-3")  # the real form, with its token, still works
    page.click("#export-button")
    page.wait_for_url("**/review/exports/*")
    assert exports() == before + 1
    assert page.inner_text("#export-owner").startswith("compliance reviewer")


def test_a_regulator_cannot_open_a_dossier(anonymous: Any, site: Site) -> None:
    navigation = sign_in(anonymous, site.keys["regulator"], "supervisory review", start=f"/review/decisions/{RICH}")
    assert anonymous.url.endswith(f"/review/decisions/{RICH}") and navigation.status == 403
    response = anonymous.goto(f"/review/decisions/{RICH}")
    assert response.status == 403
    assert "may not decisions.read" in anonymous.inner_text("#message")
    assert anonymous.locator("#reasons, #inputs").count() == 0
    response = anonymous.goto(f"/review?subject_ref={SUBJECT}")
    assert response.status == 403


def test_the_access_log_page_shows_who_read_a_persons_records_and_why(browser: Any, site: Site) -> None:
    reader = browser.new_context(base_url=site.base).new_page()
    sign_in(reader, site.keys["compliance"], "complaint about applicant 8", start="/review/decisions/app-3")
    assert reader.inner_text("#decision-id") == "app-3"
    reader.context.close()

    admin = browser.new_context(base_url=site.base).new_page()
    sign_in(admin, site.keys["admin"], "", start="/review/access")
    admin.fill("#subject_ref", "applicant-008")
    admin.click("#access-search button[type=submit]")
    rows = admin.locator("#access-log tbody tr")
    assert rows.count() >= 1
    first = rows.nth(0).locator("td")
    assert first.nth(1).inner_text().startswith("compliance reviewer")
    assert first.nth(2).inner_text() == "compliance"
    assert first.nth(3).inner_text() == "dossier.read: app-3"
    assert first.nth(4).inner_text() == "complaint about applicant 8"
    admin.context.close()


@pytest.mark.parametrize("decision_id", [RICH, "app-2"])
def test_agreement_of_the_methods_is_shown_as_computed_from_the_ledger(page: Any, site: Site, decision_id: str) -> None:
    from explain.agreement import agreement
    from explain.results import ExplanationResult

    api = page.request.get(
        f"/v1/decisions/{decision_id}", headers={"Authorization": f"Bearer {site.keys['admin']}"}
    ).json()
    latest = {}
    for e in sorted(api["explanations"], key=lambda e: e["ledger"]["index"]):
        if e["status"] == "succeeded":
            latest[e["method"]] = ExplanationResult.from_dict(e["body"])
    expected = agreement(latest)
    assert expected.agrees is not None
    page.goto(f"/review/decisions/{decision_id}")
    section = page.locator("#agreement")
    assert section.get_attribute("data-agrees") == str(expected.agrees).lower()
    verdict = page.inner_text("#agreement-verdict")
    assert verdict == ("they agree" if expected.agrees else "they disagree")
    if expected.agrees:
        assert page.locator("#agreement-warning").count() == 0
    else:
        warning = page.inner_text("#agreement-warning")
        assert all(reason in warning for reason in expected.disagreements)
    if expected.shap_lime_rank_correlation is not None:
        assert float(page.inner_text("#agreement-rank")) == pytest.approx(
            expected.shap_lime_rank_correlation, abs=0.005
        )
    if expected.anchor_features_in_top is not None:
        assert page.inner_text("#agreement-anchor") == f"{expected.anchor_features_in_top:.0%}"
    if expected.counterfactual_features_in_top is not None:
        assert page.inner_text("#agreement-counterfactual") == f"{expected.counterfactual_features_in_top:.0%}"
    note = page.locator("#attribution-note")
    assert note.get_attribute("data-exact") in ("true", "false")
    assert "units" in note.inner_text()


def test_anchor_shows_its_rechecked_precision(page: Any) -> None:
    page.goto(f"/review/decisions/{RICH}")
    note = page.locator("#anchor-note")
    assert note.get_attribute("data-holds") in ("true", "false")
    assert "Re-measured precision" in note.inner_text() and "independent samples" in note.inner_text()
