"""Regulator bundles, built on SQLite and PostgreSQL, verified by the bundle's own verify.py in a bare
Python (no third-party package importable), and rejected — naming what failed — after each tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.workers.local_pool import drain
from audit.bundle.reader import verify_bundle
from audit.note import sign_note
from tests.api.helpers import applicant_rows

BARE = [sys.executable, "-I", "-S"]


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
    assert export["bundle_sha256"].encode() in base64.b64decode(entry["canonical"])
    path = tmp_path / "bundle.zip"
    path.write_bytes(download.content)
    return path


def run_verify(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify.py"
    with zipfile.ZipFile(path) as z:
        script.write_bytes(z.read("verify.py"))
    return subprocess.run([*BARE, str(script), str(path)], capture_output=True, text=True, timeout=120)


def test_bare_python_really_has_no_third_party_packages():
    probe = subprocess.run([*BARE, "-c", "import numpy"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'numpy'" in probe.stderr


def test_a_fresh_bundle_verifies_offline_and_with_our_code(bundle, tmp_path):
    result = run_verify(bundle, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ed25519 signature by key" in result.stdout and "bundle verified" in result.stdout
    report = verify_bundle(bundle)
    assert report.ok, report.failure
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
        } <= names
        html = z.read("report/report.html").decode()
        assert "Decision x-0" in html and "Decision x-2" in html and "Decision x-1" not in html


def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None], *, fix_manifest: bool) -> None:
    with zipfile.ZipFile(src) as zin:
        files = {n: zin.read(n) for n in zin.namelist()}
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {
            n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for n, d in files.items()
            if n != "manifest.json"
        }
        files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in files.items():
            zout.writestr(name, data)


def _read(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def _first_entry(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return sorted(n for n in z.namelist() if n.startswith("entries/"))[1]


def tamper_entry_byte(path):
    name = _first_entry(path)
    data = bytearray(_read(path, name))
    data[-3] ^= 1
    return {name: bytes(data)}, True, f"entry {name[8:-5]}: bytes do not hash"


def remove_entry(path):
    name = _first_entry(path)
    return {name: None}, True, f"entry {name[8:-5]}: {name} is missing"


def swap_proofs(path):
    lines = _read(path, "proofs.jsonl").decode().splitlines()
    a, b = json.loads(lines[0]), json.loads(lines[1])
    a["proof"], b["proof"] = b["proof"], a["proof"]
    lines[0], lines[1] = json.dumps(a), json.dumps(b)
    return {"proofs.jsonl": ("\n".join(lines) + "\n").encode()}, True, "inclusion proof does not lead"


def change_checkpoint(path):
    note = _read(path, "checkpoint.txt").decode()
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    return {"checkpoint.txt": "\n".join(lines).encode()}, True, "does not verify"


def other_key(path):
    note = _read(path, "checkpoint.txt").decode()
    body = note.split("\n\n")[0] + "\n"
    name = json.loads(_read(path, "keys.json"))["keys"][0]["name"]
    forged = sign_note(body, name=name, private_key=Ed25519PrivateKey.generate())
    return {"checkpoint.txt": forged.encode()}, True, "not signed by any key in keys.json"


def edit(name: str, fix: bool, expected: str):
    def change(path):
        data = _read(path, name)
        return {name: data.replace(b"credit@1", b"credit@2", 1) if b"credit@1" in data else data + b" "}, fix, expected

    return change


TAMPERS = {
    "changed byte in an entry": tamper_entry_byte,
    "removed entry": remove_entry,
    "swapped proofs": swap_proofs,
    "changed checkpoint": change_checkpoint,
    "signature by another key": other_key,
    "edited JSONL": edit("data/decisions.jsonl", False, "file data/decisions.jsonl does not match"),
    "edited JSONL with a matching manifest": edit("data/decisions.jsonl", True, "is not one of the verified"),
    "edited Parquet": edit("data/decisions.parquet", False, "file data/decisions.parquet does not match"),
    "edited report": edit("report/report.html", False, "file report/report.html does not match"),
    "edited PDF": edit("report/report.pdf", False, "file report/report.pdf does not match"),
    "unlisted file": lambda p: ({"extra.txt": b"hello"}, False, "file extra.txt is not listed"),
}


@pytest.mark.parametrize("how", list(TAMPERS))
def test_each_tampering_is_rejected_naming_what_failed(bundle, tmp_path, how):
    changes, fix_manifest, expected = TAMPERS[how](bundle)
    forged = tmp_path / "forged.zip"
    rewrite(bundle, forged, changes, fix_manifest=fix_manifest)
    result = run_verify(forged, tmp_path)
    assert result.returncode == 1, result.stdout
    assert "FAILED" in result.stdout and expected in result.stdout, result.stdout
    report = verify_bundle(forged)
    if how != "edited JSONL with a matching manifest":  # the project reader checks files, signature, proofs
        assert not report.ok


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


def test_cli_verify_bundle(bundle, services):
    env = {**os.environ, "RATIONALE_DATA_DIR": str(services.settings.data_dir)}
    ok = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--bundle", str(bundle)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "verifies" in ok.stdout, ok.stdout + ok.stderr


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
