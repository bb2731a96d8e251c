"""`rationale verify --bundle`: the offline check of verify.py, done with the project's own code
(``cryptography`` for Ed25519, audit.merkle for RFC 9162) — two independent implementations of one format."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from audit.checkpoint import open_checkpoint
from audit.errors import AuditError
from audit.merkle import verify_inclusion
from audit.port import StoredKey

_INDEX = re.compile(rb'\{"index":(0|[1-9][0-9]*),')


@dataclass
class BundleReport:
    ok: bool = True
    checks: list[str] = field(default_factory=list)
    failure: str | None = None

    def lines(self) -> list[str]:
        return [f"ok  {c}" for c in self.checks] + ([f"FAILED  {self.failure}"] if self.failure else [])


class _Failed(Exception):
    pass


def verify_bundle(path: Path) -> BundleReport:
    report = BundleReport()
    try:
        with zipfile.ZipFile(path) as bundle:
            _verify(bundle, report)
    except _Failed as failure:
        report.ok, report.failure = False, str(failure)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        report.ok, report.failure = False, f"the bundle is malformed: {exc}"
    return report


def _verify(bundle: zipfile.ZipFile, report: BundleReport) -> None:
    manifest = json.loads(bundle.read("manifest.json"))
    listed: dict[str, dict[str, object]] = manifest["files"]
    names = set(bundle.namelist()) - {"manifest.json"}
    if names - set(listed):
        raise _Failed(f"file {sorted(names - set(listed))[0]} is not listed in manifest.json")
    for name, meta in sorted(listed.items()):
        if name not in names:
            raise _Failed(f"file {name} listed in manifest.json is missing")
        if hashlib.sha256(bundle.read(name)).hexdigest() != meta["sha256"]:
            raise _Failed(f"file {name} does not match its SHA-256 in manifest.json (edited)")
    report.checks.append(f"files: {len(listed)} files match manifest.json")
    keys = [
        StoredKey(k["key_id"], k["name"], __import__("base64").b64decode(k["public_key"]), "")
        for k in json.loads(bundle.read("keys.json"))["keys"]
    ]
    try:
        opened = open_checkpoint(bundle.read("checkpoint.txt").decode(), keys=keys, origin=manifest["origin"])
    except AuditError as exc:
        raise _Failed(f"checkpoint: {exc}") from exc
    if opened.tree_size != manifest["tree_size"]:
        raise _Failed("checkpoint tree size differs from manifest.json")
    report.checks.append(f"checkpoint: tree size {opened.tree_size}, signed by key {opened.key_id}")
    entries = 0
    for line in bundle.read("proofs.jsonl").decode().splitlines():
        item = json.loads(line)
        index = item["index"]
        data = bundle.read(f"entries/{index}.json")
        match = _INDEX.match(data)
        if not match or int(match.group(1)) != index:
            raise _Failed(f"entry {index}: its bytes do not carry index {index}")
        leaf = hashlib.sha256(b"\x00" + data).digest()
        if leaf.hex() != item["leaf_hash"]:
            raise _Failed(f"entry {index}: bytes do not hash to the listed leaf hash")
        try:
            verify_inclusion(
                leaf=leaf,
                index=index,
                tree_size=opened.tree_size,
                proof=[bytes.fromhex(h) for h in item["proof"]],
                root=opened.root_hash,
            )
        except AuditError as exc:
            raise _Failed(f"entry {index}: inclusion proof does not lead to the checkpoint root ({exc})") from exc
        entries += 1
    if entries != sum(1 for n in names if n.startswith("entries/")):
        raise _Failed("an entry file has no inclusion proof in proofs.jsonl")
    report.checks.append(f"entries: {entries} entries included in the checkpoint")
