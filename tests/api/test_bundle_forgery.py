"""The forger's suite: every kind of tampering with a genuine bundle is refused by BOTH verifiers — the
stdlib ``verify.py`` in a bare ``python3 -I -S`` and ``rationale verify --bundle`` — with the same answer,
when the regulator pins the deployment's verifier key; and without a pinned key no forgery reads as verified.

Outsider forgeries edit, add, remove or re-sign members (re-hashing the manifest, rebuilding the whole tree
and re-signing with the forger's key). Insider forgeries re-seal with the deployment's own key, so only the
views check (each view regenerated from the entries) and the completeness check can catch them.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.workers.local_pool import drain
from audit.note import verifier_key
from tests.api.bundle_forger import Forge, patch_declared_size, set_flag, symlink_member
from tests.api.helpers import applicant_rows, own_deployment

TRUSTED_VERIFY = Path(__file__).resolve().parents[2] / "audit" / "bundle" / "assets" / "verify.py"
BARE = [sys.executable, "-I", "-S"]


@dataclass(frozen=True)
class Genuine:
    data: bytes
    key: str  # the deployment's C2SP verifier key, as the regulator pins it
    private: Ed25519PrivateKey  # for the insider cases: the deployment's own signing key


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory, credit_artifact: bytes) -> Genuine:
    with own_deployment(tmp_path_factory.mktemp("forgery"), credit_artifact) as (services, client):
        decisions = [
            {"decision_id": f"x-{i}", "model": "credit@1", "inputs": r, "subject_ref": f"s-{i % 2}"}
            for i, r in enumerate(applicant_rows(6))
        ]
        decisions[0]["explain"] = ["shap", "anchors", "counterfactuals"]
        assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
        drain(services)
        assert client.post("/v1/decisions/x-0/outcome", json={"label": "declined"}).status_code == 201
        export = client.post("/v1/exports", json={"model": "credit@1", "subject_refs": ["s-0"]})
        assert export.status_code == 201, export.text
        data = client.get(f"/v1/exports/{export.json()['export_id']}/bundle").content
        active = services.keyring.active()
        return Genuine(data, verifier_key(active.name, active.public_key), services.keyring.private(active.key_id))


@dataclass(frozen=True)
class Answer:
    code: int
    verdict: str  # the last line: "bundle verified", "FAILED ...", "NOT VERIFIED ..."


def stdlib_verify(path: Path, keys: list[str]) -> Answer:
    """The regulator's trusted copy of verify.py in a Python with no site-packages."""
    args = [a for k in keys for a in ("--key", k)]
    result = subprocess.run([*BARE, str(TRUSTED_VERIFY), *args, str(path)], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    lines = (result.stdout.strip() or result.stderr.strip() or "?").splitlines()
    return Answer(result.returncode, lines[-1])


def cli_verify(path: Path, keys: list[str]) -> Answer:
    from api.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["verify", "--bundle", str(path), "--quiet", *[a for k in keys for a in ("--key", k)]])
    lines = (out.getvalue().strip() or err.getvalue().strip() or "?").splitlines()
    return Answer(code, lines[-1])


# --- the tamperings ------------------------------------------------------------------------------------
Tamper = Callable[[Forge, Genuine], None]


def _decision(f: Forge, n: int = 0) -> int:
    return f.of_type("decision.recorded")[n]


def _explanation(f: Forge) -> int:
    return f.of_type("explanation.recorded")[0]


def rerender(f: Forge) -> None:
    """A careful forger regenerates every view from the (edited) entries with the bundle's own renderer."""
    render = _renderer()
    if render is not None:
        f.files.update(render(f.files))


def _renderer() -> Callable[[dict[str, bytes]], dict[str, bytes]] | None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_forger_verify", TRUSTED_VERIFY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "render_members", None)


def flip_output(f: Forge, g: Genuine) -> None:
    index = _decision(f)
    entry = f.entry(index)
    labels = ["approved", "declined"]
    entry["payload"]["output"]["label"] = labels[1 - labels.index(entry["payload"]["output"]["label"])]
    f.set_entry(entry)
    f.edit_jsonl("data/decisions.jsonl", lambda r: r.update(payload=entry["payload"]))
    rerender(f)


def remove_explanation(f: Forge, g: Genuine) -> None:
    f.remove_entry(_explanation(f))


def remove_decision(f: Forge, g: Genuine) -> None:
    index = _decision(f)
    decision_id = f.entry(index)["payload"]["decision_id"]
    for i in f.entry_indices():
        if f.entry(i)["payload"].get("decision_id") == decision_id:
            f.remove_entry(i)


def add_entry_dup_proof(f: Forge, g: Genuine) -> None:
    entry = f.entry(_decision(f))
    entry["index"] = max(f.entry_indices()) + 1000
    f.set_entry(entry)
    lines = f.proof_lines()
    f.set_proof_lines([*lines, lines[0]])
    f.rehash()


def add_entry_forged_proof(f: Forge, g: Genuine) -> None:
    entry = f.entry(_decision(f))
    entry["index"] = max(f.entry_indices()) + 1000
    entry["payload"]["decision_id"] = "x-added"
    f.set_entry(entry)
    from audit.merkle import leaf_hash

    line = {"index": entry["index"], "leaf_hash": leaf_hash(f.files[f"entries/{entry['index']}.json"]).hex()}
    f.set_proof_lines([*f.proof_lines(), {**line, "proof": f.proof_lines()[0]["proof"]}])
    f.rehash()


def dup_proof_line(f: Forge, g: Genuine) -> None:
    lines = f.proof_lines()
    f.set_proof_lines([*lines, lines[-1]])
    f.rehash()


def reorder_proofs(f: Forge, g: Genuine) -> None:
    lines = f.proof_lines()
    f.set_proof_lines(lines[::-1])
    f.rehash()


def change_entry_byte(f: Forge, g: Genuine) -> None:
    name = f"entries/{_decision(f)}.json"
    data = bytearray(f.files[name])
    data[-3] ^= 1
    f.files[name] = bytes(data)
    f.rehash()


def move_entry(f: Forge, g: Genuine) -> None:
    index = _explanation(f)
    entry = f.entry(index)
    del f.files[f"entries/{index}.json"]
    entry["index"] = index + 1
    while f"entries/{entry['index']}.json" in f.files:
        entry["index"] += 1
    f.set_entry(entry)
    f.set_proof_lines([{**x, "index": entry["index"]} if x["index"] == index else x for x in f.proof_lines()])
    f.rehash()


def swap_proofs(f: Forge, g: Genuine) -> None:
    lines = f.proof_lines()
    lines[0]["proof"], lines[1]["proof"] = lines[1]["proof"], lines[0]["proof"]
    f.set_proof_lines(lines)
    f.rehash()


def change_checkpoint_size(f: Forge, g: Genuine) -> None:
    lines = f.files["checkpoint.txt"].decode().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    f.files["checkpoint.txt"] = "\n".join(lines).encode()
    f.rehash()


def respell_signature(f: Forge, g: Genuine) -> None:
    """The same signature bytes in another base64 spelling (an unused low bit of the last digit set)."""
    import base64 as b64

    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    note = f.files["checkpoint.txt"]
    _, _, line = note.rstrip(b"\n").rpartition(b"\n")
    blob = line.rsplit(b" ", 1)[1]
    assert blob.endswith(b"=") and not blob.endswith(b"==")
    last = alphabet.index(blob[-2:-1])
    respelled = blob[:-2] + alphabet[last | 1 : (last | 1) + 1] + b"="
    assert respelled != blob and b64.b64decode(respelled) == b64.b64decode(blob)
    f.files["checkpoint.txt"] = note.replace(blob, respelled)


def other_key_signs(f: Forge, g: Genuine) -> None:
    f.reseal(keys_json="keep")


def jsonl_payload(f: Forge, g: Genuine) -> None:
    f.edit_jsonl("data/decisions.jsonl", lambda r: r["payload"]["output"].update(label="approved?"))


def jsonl_index(f: Forge, g: Genuine) -> None:
    f.edit_jsonl("data/decisions.jsonl", lambda r: r.update(ledger_index=r["ledger_index"] + 1))


def jsonl_drop(f: Forge, g: Genuine) -> None:
    lines = f.files["data/decisions.jsonl"].decode().splitlines()
    f.files["data/decisions.jsonl"] = "".join(line + "\n" for line in lines[1:]).encode()


def jsonl_duplicate(f: Forge, g: Genuine) -> None:
    data = f.files["data/decisions.jsonl"]
    f.files["data/decisions.jsonl"] = data + data.splitlines(keepends=True)[0]


def explanations_jsonl(f: Forge, g: Genuine) -> None:
    f.edit_jsonl("data/explanations.jsonl", lambda r: r["payload"].update(method="lime"))


def parquet_edit(f: Forge, g: Genuine) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(f.files["data/decisions.parquet"]))
    labels = table.column("label").to_pylist()
    labels[0] = "approved" if labels[0] != "approved" else "declined"
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
    out = io.BytesIO()
    pq.write_table(table, out)
    f.files["data/decisions.parquet"] = out.getvalue()


def html_edit(f: Forge, g: Genuine) -> None:
    html = f.files["report/report.html"]
    f.files["report/report.html"] = html.replace(b"Decision x-0", b"Decision x-9", 1)
    assert f.files["report/report.html"] != html


def pdf_edit(f: Forge, g: Genuine) -> None:
    pdf = f.files["report/report.pdf"]
    f.files["report/report.pdf"] = pdf.replace(b"%%EOF", b"% edited\n%%EOF")


def card_edit(f: Forge, g: Genuine) -> None:
    name = next(n for n in f.files if n.startswith("models/"))
    card = json.loads(f.files[name])
    card["artifact_sha256"] = "0" * 64
    f.files[name] = json.dumps(card, indent=2, sort_keys=True).encode()


def card_remove(f: Forge, g: Genuine) -> None:
    del f.files[next(n for n in f.files if n.startswith("models/"))]


def manifest_field(field: str, value: Any) -> Tamper:
    def change(f: Forge, g: Genuine) -> None:
        manifest = f.json("manifest.json")
        manifest[field] = value
        f.files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()

    return change


def replace_verify_py(f: Forge, g: Genuine) -> None:
    f.files["verify.py"] = b"print('bundle verified')\n"


def member(name: str, data: bytes = b"hello\n") -> Tamper:
    def add(f: Forge, g: Genuine) -> None:
        f.files[name] = data

    return add


def duplicate(name: str) -> Tamper:
    def add(f: Forge, g: Genuine) -> None:
        f.extra_members.append((name, f.files[name].replace(b"x-0", b"x-9")))

    return add


def zip_bomb(f: Forge, g: Genuine) -> None:
    f.files["data/explanations.jsonl"] = b"\n" * (64 << 20)


def declared_huge(f: Forge, g: Genuine) -> None:
    f.raw = patch_declared_size(f.bytes(), "report/report.html", 0xFFFFFFF0)


def encrypted_flag(f: Forge, g: Genuine) -> None:
    f.raw = set_flag(f.bytes(), "report/report.html", 0)


def symlink(f: Forge, g: Genuine) -> None:
    f.raw = symlink_member(f, "report/report.html", b"/etc/passwd")


def prepend(f: Forge, g: Genuine) -> None:
    f.raw = b"MZ" + b"\x00" * 62 + f.bytes()


def append(f: Forge, g: Genuine) -> None:
    f.raw = f.bytes() + b"trailing data"


def remove_export_entry(f: Forge, g: Genuine) -> None:
    f.files.pop("export.json", None)
    f.files.pop("keys.json")


def export_list_edit(f: Forge, g: Genuine) -> None:
    export = f.export_entry()
    if export is None:
        f.files["proofs.jsonl"] += b"\n\n"
        return
    export["payload"]["decisions"][0]["decision_id"] = "x-other"
    import rfc8785

    f.files["export.json"] = rfc8785.dumps(export)


def insider(change: Tamper, *, rerendered: bool = False) -> Tamper:
    """A dishonest exporter: make the change, then seal it with the deployment's own key."""

    def forge(f: Forge, g: Genuine) -> None:
        change(f, g)
        if rerendered:
            rerender(f)
        f.reseal(key=g.private, keys_json="keep")

    return forge


def leave_out_decision(f: Forge, g: Genuine) -> None:
    """Drop a decision's entries but keep it in the export entry's list (what the filter matched)."""
    export = f.export_entry()
    index = _decision(f, 1)
    decision_id = f.entry(index)["payload"]["decision_id"]
    for i in f.entry_indices():
        if f.entry(i)["payload"].get("decision_id") == decision_id:
            f.files.pop(f"entries/{i}.json")
            f.drop_jsonl("data/decisions.jsonl", lambda r, i=i: r["ledger_index"] != i)
    if export is not None:
        import rfc8785

        f.files["export.json"] = rfc8785.dumps(export)
    rerender(f)


def add_unlisted_entry(f: Forge, g: Genuine) -> None:
    """An entry of the ledger the filter did not match, slipped in with a valid proof."""
    entry = f.entry(_decision(f))
    entry["index"] = min(set(range(10_000)) - set(f.entry_indices()))  # a gap: an entry the filter did not match
    entry["payload"]["decision_id"] = "x-slipped-in"
    f.set_entry(entry)


def _set_export(f: Forge, change: Callable[[dict[str, Any]], None]) -> None:
    import rfc8785

    export = f.export_entry()
    assert export is not None
    change(export["payload"])
    f.files["export.json"] = rfc8785.dumps(export)


def other_filter(f: Forge, g: Genuine) -> None:
    """The export entry and manifest claim a filter the bundle's decisions do not match."""
    _set_export(f, lambda p: p.update(filter={"subject_refs": ["s-1"]}))
    manifest = f.json("manifest.json")
    manifest["filter"] = {"subject_refs": ["s-1"]}
    f.files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    rerender(f)


def explanation_elsewhere(f: Forge, g: Genuine) -> None:
    """The export entry files one decision's explanation under another decision."""

    def move(p: dict[str, Any]) -> None:
        a, b = p["decisions"][0], p["decisions"][1]
        b["explanations"].append(a["explanations"].pop())

    _set_export(f, move)


def not_a_zip(f: Forge, g: Genuine) -> None:
    f.raw = b"PK\x05\x06" + b"\x00" * 18 + b"not really"


def then(*changes: Callable[[Forge, Genuine], Any]) -> Tamper:
    def run(f: Forge, g: Genuine) -> None:
        for change in changes:
            change(f, g)

    return run


TAMPERS: dict[str, tuple[Tamper, bool]] = {  # name: (change, re-hash the manifest afterwards)
    "re-signed by a fresh key, keys.json replaced": (lambda f, g: f.reseal(), False),
    "re-signed by a fresh key, key appended to keys.json": (lambda f, g: f.reseal(keys_json="append"), False),
    "re-signed by a fresh key under another name": (lambda f, g: f.reseal(name="forger.example/log"), False),
    "full forgery: an output flipped, new tree, proofs, checkpoint": (
        then(flip_output, lambda f, g: f.reseal()),
        False,
    ),
    "explanation removed with its file, proof line and JSONL record": (remove_explanation, True),
    "explanation removed, then a full forgery": (
        then(remove_explanation, lambda f, g: rerender(f), lambda f, g: f.reseal()),
        False,
    ),
    "decision removed with its explanations and outcome": (remove_decision, True),
    "decision removed, then a full forgery": (
        then(remove_decision, lambda f, g: rerender(f), lambda f, g: f.reseal()),
        False,
    ),
    "entry added with a duplicated proof line": (add_entry_dup_proof, False),
    "entry added with a borrowed proof": (add_entry_forged_proof, False),
    "proof line duplicated": (dup_proof_line, False),
    "proof lines reordered": (reorder_proofs, False),
    "byte changed in an entry": (change_entry_byte, False),
    "entry moved to another index": (move_entry, False),
    "proofs swapped": (swap_proofs, False),
    "checkpoint tree size changed": (change_checkpoint_size, False),
    "checkpoint signed by another key, keys.json untouched": (other_key_signs, False),
    "checkpoint signature re-spelled in base64": (respell_signature, False),
    "JSONL payload edited": (jsonl_payload, True),
    "JSONL ledger_index edited": (jsonl_index, True),
    "JSONL record dropped": (jsonl_drop, True),
    "JSONL record duplicated": (jsonl_duplicate, True),
    "explanations JSONL edited": (explanations_jsonl, True),
    "Parquet edited": (parquet_edit, True),
    "Parquet edited, manifest not re-hashed": (parquet_edit, False),
    "report.html edited": (html_edit, True),
    "report.pdf edited": (pdf_edit, True),
    "model card artifact_sha256 edited": (card_edit, True),
    "model card removed": (card_remove, True),
    "manifest filter edited": (manifest_field("filter", {"model": "credit@2"}), False),
    "manifest tree size edited": (manifest_field("tree_size", 3), False),
    "verify.py replaced by one that always passes": (replace_verify_py, True),
    "FORMAT.md removed": (lambda f, g: f.files.pop("FORMAT.md") and None, True),
    "unlisted member": (member("extra.txt"), False),
    "listed member outside the layout": (member("notes/extra.txt"), True),
    "absolute path": (member("/etc/cron.d/evil"), True),
    "'..' path": (member("../../evil.sh"), True),
    "backslash path": (member("data\\..\\..\\evil"), True),
    "directory member": (member("data/", b""), True),
    "duplicate member: a second report.html": (duplicate("report/report.html"), False),
    "duplicate member: a second decisions.jsonl": (duplicate("data/decisions.jsonl"), False),
    "zip bomb: 64 MiB of newlines in a listed member": (zip_bomb, True),
    "member declaring 4 GiB": (declared_huge, False),
    "encrypted member": (encrypted_flag, False),
    "symlink member": (symlink, False),
    "data prepended to the archive": (prepend, False),
    "data appended to the archive": (append, False),
    "export entry and keys.json removed": (remove_export_entry, True),
    "export entry's decision list edited": (export_list_edit, False),
    "not a zip archive": (not_a_zip, False),
    "insider: JSONL record edited and sealed with the deployment's key": (insider(jsonl_payload), False),
    "insider: Parquet edited and sealed": (insider(parquet_edit), False),
    "insider: report.html edited and sealed": (insider(html_edit), False),
    "insider: report.pdf edited and sealed": (insider(pdf_edit), False),
    "insider: model card edited and sealed": (insider(card_edit), False),
    "insider: a matched decision left out and sealed": (insider(leave_out_decision), False),
    "insider: an entry the filter did not match added and sealed": (insider(add_unlisted_entry), False),
    "insider: a filter the decisions do not match, sealed": (insider(other_filter), False),
    "insider: an explanation listed under another decision, sealed": (insider(explanation_elsewhere), False),
}


def forged_bundle(genuine: Genuine, how: str, tmp_path: Path) -> Path:
    change, rehash = TAMPERS[how]
    forge = Forge.open(genuine.data)
    change(forge, genuine)
    if rehash:
        forge.rehash()
    path = tmp_path / "forged.zip"
    path.write_bytes(forge.bytes())
    assert path.read_bytes() != genuine.data
    return path


def test_the_suite_has_at_least_30_kinds():
    assert len(TAMPERS) >= 30


def test_the_genuine_bundle_verifies_in_a_bare_python_with_the_pinned_key(genuine, tmp_path):
    path = tmp_path / "bundle.zip"
    path.write_bytes(genuine.data)
    assert stdlib_verify(path, [genuine.key]) == Answer(0, "bundle verified")
    assert cli_verify(path, [genuine.key]) == Answer(0, "bundle verified")


@pytest.mark.parametrize("how", list(TAMPERS))
def test_each_forgery_is_refused_by_both_verifiers_alike(genuine, tmp_path, how):
    path = forged_bundle(genuine, how, tmp_path)
    ours, theirs = cli_verify(path, [genuine.key]), stdlib_verify(path, [genuine.key])
    assert ours == theirs, f"the verifiers disagree: rationale verify {ours}, verify.py {theirs}"
    assert theirs.code == 1 and theirs.verdict.startswith("FAILED"), theirs
    unpinned = stdlib_verify(path, [])
    assert unpinned.code != 0 and unpinned == cli_verify(path, []), unpinned


def _core_answer(path: Path, keys: list[str]) -> int:
    from audit.bundle.core import core

    return int(core().verify(str(path), keys, out=lambda line: None))


def _members(data: bytes) -> dict[str, bytes] | None:
    try:
        return Forge.open(data).files
    except Exception:
        return None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6))
def test_random_byte_edits_of_the_archive_never_verify_changed_content(genuine, tmp_path, edits):
    """Bytes of the zip overwritten anywhere: either the bundle is refused, or (a timestamp, a version field)
    every member still holds exactly the genuine bytes. Never a traceback."""
    data = bytearray(genuine.data)
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / "edited.zip"
    path.write_bytes(bytes(data))
    if _core_answer(path, [genuine.key]) == 0:
        assert _members(bytes(data)) == Forge.open(genuine.data).files


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(min_value=0),
    where=st.floats(0, 1, exclude_max=True),
    how=st.sampled_from(["flip", "insert", "delete"]),
    rehash=st.booleans(),
)
def test_any_edit_of_any_member_is_refused(genuine, tmp_path, which, where, how, rehash):
    """One byte of one member flipped, inserted or deleted, with or without re-hashing the manifest."""
    forge = Forge.open(genuine.data)
    names = sorted(forge.files)
    name = names[which % len(names)]
    data = bytearray(forge.files[name])
    at = int(where * len(data)) if data else 0
    if how == "flip" and data:
        data[at] ^= 0x20
    elif how == "insert" or not data:
        data[at:at] = b" "
    else:
        del data[at]
    forge.files[name] = bytes(data)
    if rehash and name != "manifest.json":
        forge.rehash()
    path = tmp_path / "edited.zip"
    path.write_bytes(forge.bytes())
    assert _core_answer(path, [genuine.key]) == 1, (name, how, at)
