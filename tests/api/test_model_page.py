"""The model page in Debian's Chromium (Playwright) against the app under uvicorn, and
``rationale report model`` writing the same content as HTML and PDF."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from api.container import Services, build_services
from api.schemas import DecisionCreate
from api.services.decisions import record_decisions
from api.settings import Settings
from storage.db import Database
from tests.api.analytics_data import START, build_scenario
from tests.api.helpers import applicant_rows, issue_key, sign_in_tab
from tests.api.test_review_pages import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.heavy]
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>"


@dataclass
class Site:
    base: str
    services: Services
    settings: Settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, credit_artifact: bytes, linear_artifact: bytes) -> Iterator[Site]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path_factory.mktemp("model-page") / "data",
        workers=0,
        origin="rationale.test/ledger",
        gc_freeze=False,
    )
    settings.data_dir.mkdir(parents=True)
    database = Database.from_url(settings.effective_database_url)
    database.upgrade()
    database.dispose()
    services = build_services(settings)
    build_scenario(services, credit_artifact, linear_artifact, per_version=60)
    late = DecisionCreate(  # version 1 deciding a week after version 2 went live
        decision_id="late-v1",
        model="credit@1",
        inputs=applicant_rows(1, seed=5)[0],
        occurred_at=START + timedelta(days=21),
        context={"region": HOSTILE},
        explain=[],
    )
    record_decisions(services, [late], path="decisions")
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="model-page-uvicorn", daemon=True)
    thread.start()
    for _ in range(200):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Site(f"http://127.0.0.1:{port}", services, settings)
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
def page(browser: Any, site: Site) -> Iterator[Any]:
    # the API calls the tests compare the page with carry a key; the pages themselves need a signed-in session
    key = issue_key(site.services, "data_scientist")
    context = browser.new_context(base_url=site.base, extra_http_headers={"Authorization": f"Bearer {key}"})
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in_tab(tab, site.services, role="data_scientist")
    yield tab
    assert dialogs == []  # no injected script ran
    context.close()


def test_model_page_shows_timeline_importance_drift_performance_fairness(page: Any) -> None:
    page.goto("/review/models/credit")
    assert page.inner_text("#model-name") == "credit"
    assert page.inner_text("#live-version") == "2"
    assert page.inner_text("#not-live-count") == "1"
    assert "late-v1" in page.inner_text(".not-live[data-version='1']")
    assert page.locator("#live-periods rect.period").count() == 2
    assert page.locator(".integrity-problem").count() == 0
    kinds = page.locator("#timeline-events tr.event td:nth-child(2)").all_inner_texts()
    assert kinds[0] == "deploy" and "first decision" in kinds

    api = page.request.get("/v1/models/credit/importance").json()
    bars = page.locator("#importance-chart rect.bar")
    assert bars.count() == 2 * len(api["features"])
    shown = bars.evaluate_all("rs => rs.map(r => [r.dataset.series, r.dataset.feature, Number(r.dataset.value)])")
    expected = {(f"v{r['version']}", f): v for r in api["rows"] for f, v in r["mean_abs"].items()}
    assert {(s, f): pytest.approx(v) for s, f, v in shown} == expected

    drift = page.request.get("/v1/models/credit/drift?reference_version=1&current_version=2").json()
    assert page.locator("#drift-inputs tbody tr").count() == len(drift["inputs"])
    income = next(i for i in drift["inputs"] if i["feature"] == "income")
    assert page.inner_text("#drift-inputs tr[data-feature='income'] td.p-value") == f"{income['p_value']:.2e}"
    assert page.locator("#drift-attributions tbody tr").count() == len(drift["attributions"])

    series = page.locator("#performance-chart g.series").evaluate_all("gs => gs.map(g => g.dataset.series)")
    assert series == ["v1 realised", "v1 estimated", "v2 realised", "v2 estimated"]
    dashed = page.locator("#performance-chart polyline[stroke-dasharray]").count()
    assert dashed == 2
    perf = page.request.get("/v1/models/credit/performance?bucket=week").json()
    for row in perf["rows"]:
        cells = page.locator(f"#performance-table tr[data-version='{row['version']}'][data-bucket='{row['bucket']}']")
        assert cells.locator("td.missing").inner_text() == str(row["missing_outcomes"])
        assert cells.locator("td.estimated").inner_text() == f"{row['estimated']['accuracy']:.3f}"

    assert page.inner_text("#fairness-group") == "purpose"
    page.fill("#group", "region")
    page.click("button[type=submit]")
    page.wait_for_url("**group=region**")
    assert page.inner_text("#fairness-group") == "region"
    groups = page.locator("#fairness-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.group)")
    assert sorted(groups) == sorted(["north", "south", "east", HOSTILE])  # shown as text, never as markup
    assert page.locator("#fairness-chart rect.bar").count() == 4


def test_model_page_filters_and_refusals(page: Any) -> None:
    page.goto("/review/models/credit?since=2026-02-16&reference=2&current=2")
    assert "from 2026-02-16" in page.inner_text("main p.muted")
    features = len(page.request.get("/v1/models/credit/importance").json()["features"])
    assert page.locator("#importance-chart rect.bar[data-series='v1']").count() == 0  # v1's late decision: no SHAP
    assert page.locator("#importance-chart rect.bar[data-series='v2']").count() == features
    response = page.goto("/review/models/credit?since=yesterday")
    assert response.status == 422 and "since" in page.inner_text("main")
    response = page.goto("/review/models/nothing-here")
    assert response.status == 404


def test_report_model_writes_html_and_pdf(site: Site, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RATIONALE_DATA_DIR": str(site.settings.data_dir),
        "RATIONALE_DATABASE_URL": site.settings.effective_database_url,
    }
    html_file, pdf_file = tmp_path / "credit.html", tmp_path / "credit.pdf"
    for out in (html_file, pdf_file):
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "report", "model", "credit", "--since", "2026-02-01", "--out", str(out)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    text = html_file.read_text()
    for marker in ('id="live-periods"', 'id="importance-chart"', 'id="drift-inputs"', 'id="performance-chart"'):
        assert marker in text
    assert HOSTILE not in text and "&lt;script&gt;" not in text  # default fairness group is purpose
    assert "<form" not in text and "http" not in text.split("<svg", 1)[0].split("</style>", 1)[1]
    assert pdf_file.read_bytes().startswith(b"%PDF-") and len(pdf_file.read_bytes()) > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "api.cli", "report", "model", "credit", "--out", str(tmp_path / "x.txt")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and ".html or .pdf" in bad.stderr


def test_an_edited_deployment_row_is_shown_as_a_failure(page: Any, site: Site) -> None:
    """Last in the module: it edits the database behind the application's back."""
    from sqlalchemy import text

    with site.services.db.engine.begin() as conn:
        conn.execute(text("UPDATE deployments SET reason = 'nothing to see' WHERE version = '2'"))
    page.goto("/review/models/credit")
    problems = page.locator(".integrity-problem").all_inner_texts()
    assert len(problems) == 1 and "does not match its entry" in problems[0] and "nothing to see" in problems[0]
    assert "logistic model" in page.inner_text("#timeline-events")  # the entry's reason, not the row's
