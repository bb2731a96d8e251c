"""Regulator bundles, built on SQLite and PostgreSQL, verified by the bundle's own verify.py in a bare
Python (no third-party package importable) against the pinned key; tamperings are in test_bundle_forgery.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from api.workers.local_pool import drain
from audit.bundle.reader import verify_bundle
from audit.note import verifier_key
from tests.api.helpers import applicant_rows

BARE = [sys.executable, "-I", "-S"]
TRUSTED = Path(__file__).resolve().parents[2] / "audit" / "bundle" / "assets" / "verify.py"


@pytest.fixture
def bundle(client, services, registered, tmp_path) -> Path:
    rows = applicant_rows(4)
    decisions = [
        {
            "decision_id": f"x-{i}",
            "model": "credit@1",
            "inputs": r,
            "subject_ref": f"s-{i % 2}",
            "context": {"note": "<script>alert(1)</script>"},
        }
        for i, r in enumerate(rows)
    ]
    client.post("/v1/decisions", json={"decisions": decisions})
    drain(services)
    client.post("/v1/decisions/x-0/outcome", json={"label": "declined"})
    resp = client.post("/v1/exports", json={"model": "credit@1", "subject_refs": ["s-0"]})
    assert resp.status_code == 201, resp.text
    export = resp.json()
    assert export["decisions"] == 2
    assert client.get(f"/v1/exports/{export['export_id']}").json()["bundle_sha256"] == export["bundle_sha256"]
    download = client.get(f"/v1/exports/{export['export_id']}/bundle")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == export["bundle_sha256"]
    entry = client.get(f"/v1/ledger/entries/{export['ledger_index']}").json()
    assert entry["type"] == "export.created"
    committed = json.loads(base64.b64decode(entry["canonical"]))["payload"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as z:
        assert z.read("export.json") == base64.b64decode(entry["canonical"])  # the entry, as the ledger holds it
        assert hashlib.sha256(z.read("manifest.json")).hexdigest() == committed["manifest_sha256"]
        assert hashlib.sha256(z.read("verify.py")).hexdigest() == export["verify_py_sha256"]
    assert [d["decision_id"] for d in committed["decisions"]] == ["x-0", "x-2"]
    assert committed["tree_size"] <= export["ledger_index"] < export["checkpoint_size"]
    active = services.keyring.active()
    assert export["verifier_key"] == verifier_key(active.name, active.public_key)
    path = tmp_path / "bundle.zip"
    path.write_bytes(download.content)
    return path


@pytest.fixture
def vkey(services) -> str:
    active = services.keyring.active()
    return verifier_key(active.name, active.public_key)


def run_verify(path: Path, tmp_path: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify.py"
    with zipfile.ZipFile(path) as z:
        script.write_bytes(z.read("verify.py"))
    args = [a for k in keys for a in ("--key", k)]
    return subprocess.run([*BARE, str(script), *args, str(path)], capture_output=True, text=True, timeout=120)


def test_bare_python_really_has_no_third_party_packages():
    probe = subprocess.run([*BARE, "-c", "import numpy"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'numpy'" in probe.stderr


def test_a_fresh_bundle_verifies_offline_and_with_our_code(bundle, tmp_path, vkey):
    result = run_verify(bundle, tmp_path, vkey)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ed25519 by {vkey}, a pinned key" in result.stdout and result.stdout.endswith("bundle verified\n")
    report = verify_bundle(bundle, [vkey])
    assert report.ok, report.failure
    assert report.lines() == result.stdout.splitlines()  # one core: the same lines, word for word
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {
            "data/decisions.jsonl",
            "data/decisions.parquet",
            "models/credit@1.json",
            "report/report.html",
            "report/report.pdf",
            "FORMAT.md",
            "keys.json",
            "checkpoint.txt",
            "export.json",
            "manifest.json",
            "proofs.jsonl",
        } <= names
        html = z.read("report/report.html").decode()
        assert "Decision x-0" in html and "Decision x-2" in html and "Decision x-1" not in html


def _read(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(name)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_pdf_report_renders_pages_that_are_not_blank(bundle, tmp_path):
    if shutil.which("pdftoppm") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftoppm (poppler-utils) is missing")
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    from PIL import Image

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_read(bundle, "report/report.pdf"))
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "page")], check=True, timeout=60
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 3
    for page in pages:
        image = Image.open(page).convert("L")
        dark = sum(1 for v in image.getdata() if v < 200)
        assert dark > 500, f"{page.name} looks blank ({dark} dark pixels)"


def test_without_a_pinned_key_a_bundle_is_not_verified(bundle, tmp_path, vkey):
    """Checked only against keys it carries, a bundle is "signature valid, key not anchored": exit 3."""
    result = run_verify(bundle, tmp_path)
    assert result.returncode == 3, result.stdout
    last = result.stdout.splitlines()[-1]
    assert "signature valid, key not anchored" in last and "verified" not in last.replace("NOT VERIFIED", "")
    assert f"by {vkey}, a key the bundle carries (keys.json), NOT a pinned key" in result.stdout
    assert verify_bundle(bundle).code == 3


def test_cli_verify_bundle_with_a_pinned_key_file(bundle, services, tmp_path, vkey):
    env = {**os.environ, "RATIONALE_DATA_DIR": str(services.settings.data_dir)}
    pinned = tmp_path / "deployment.vkey"
    pinned.write_text(f"# the deployment's checkpoint key, received by letter\n{vkey}\n")
    for args in (["--key-file", str(pinned)], ["--key", vkey]):
        ok = subprocess.run(
            [sys.executable, "-m", "api.cli", "verify", "--bundle", str(bundle), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ok.returncode == 0 and ok.stdout.endswith("bundle verified\n"), ok.stdout + ok.stderr
        offline = subprocess.run([*BARE, str(TRUSTED), *args, str(bundle)], capture_output=True, text=True)
        assert offline.stdout == ok.stdout
    bad = subprocess.run(
        [*BARE, str(TRUSTED), "--key", vkey[:-4] + "AAA=", str(bundle)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "usage" in bad.stdout


def test_rationale_export_prints_what_to_pin(bundle, services, tmp_path, vkey):
    env = {
        **os.environ,
        "RATIONALE_DATA_DIR": str(services.settings.data_dir),
        "RATIONALE_DATABASE_URL": services.settings.effective_database_url,
        "RATIONALE_ORIGIN": services.settings.origin,
    }
    out = tmp_path / "cli-bundle.zip"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "export", "--out", str(out), "--decision-id", "x-1", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"bundle SHA-256     {sha}" in done.stdout
    assert f"verifier key (pin) {vkey}" in done.stdout
    assert f"verify.py SHA-256  {hashlib.sha256(TRUSTED.read_bytes()).hexdigest()}" in done.stdout
    assert run_verify(out, tmp_path, vkey).returncode == 0


def test_an_empty_selection_is_a_404(client, registered):
    resp = client.post("/v1/exports", json={"model": "credit@1", "subject_refs": ["nobody"]})
    assert resp.status_code == 404
    assert client.post("/v1/exports", json={"nonsense": 1}).status_code == 422


def test_named_decisions_are_selected_with_the_other_filters(client, services, registered):
    from api.services.exports import ExportFilter, _select

    rows = applicant_rows(6)
    batch = [
        {"decision_id": f"n-{i}", "model": "credit@1", "inputs": r, "subject_ref": f"s-{i % 2}"}
        for i, r in enumerate(rows)
    ]
    assert client.post("/v1/decisions", json={"decisions": batch}).status_code == 201
    named = ["n-5", "n-0", "n-3", "n-0", "missing"]
    assert _select(services, ExportFilter(decision_ids=named)) == ["n-0", "n-3", "n-5"]  # storage order, once
    assert _select(services, ExportFilter(decision_ids=named, subject_refs=["s-1"])) == ["n-3", "n-5"]
    assert _select(services, ExportFilter(decision_ids=named, model="other")) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_stdlib_parquet_and_pdf_views_are_read_by_other_tools(bundle, tmp_path):
    """The views verify.py writes without any library are valid Parquet (pyarrow) and PDF (poppler)."""
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in _read(bundle, "data/decisions.jsonl").splitlines()]
    table = pq.read_table(io.BytesIO(_read(bundle, "data/decisions.parquet"))).to_pylist()
    assert [r["decision_id"] for r in table] == [r["decision_id"] for r in records] == ["x-0", "x-2"]
    for row, record in zip(table, records, strict=True):
        assert row["ledger_index"] == record["ledger_index"]
        assert json.loads(row["inputs"]) == record["payload"]["inputs"]
        assert row["label"] == record["payload"]["output"]["label"] and row["value"] is None
    assert json.loads(table[0]["outcome"])["label"] == "declined" and table[1]["outcome"] is None
    if shutil.which("pdftotext") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftotext (poppler-utils) is missing")
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_read(bundle, "report/report.pdf"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Decision x-0" in text and "Decision x-2" in text and "Decision x-1" not in text
    assert "verify.py --key" in text
