"""Writing export bundles: entries as their stored bytes, proofs against one checkpoint, a manifest last.

Entries are streamed into the zip one by one (bounded memory); each file's SHA-256 is computed as it is
written, and manifest.json, listing them all, is written last.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from audit.entry import StoredEntry
from audit.note import verifier_key
from audit.port import StoredCheckpoint, StoredKey

FORMAT = "rationale-bundle/1"
ASSETS = ("verify.py", "FORMAT.md")


@dataclass(frozen=True, slots=True)
class BundleSummary:
    path: Path
    sha256: str
    size: int
    entries: int


class _Zip:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.files: dict[str, dict[str, Any]] = {}

    def add(self, name: str, data: bytes | Path) -> None:
        info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))  # reproducible archives
        info.compress_type = zipfile.ZIP_DEFLATED
        if isinstance(data, Path):  # streamed from disk: large exports never sit in memory whole
            digest, size = hashlib.sha256(), 0
            with open(data, "rb") as source, self.zip.open(info, "w", force_zip64=True) as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
                    target.write(block)
            self.files[name] = {"sha256": digest.hexdigest(), "size": size}
            return
        self.zip.writestr(info, data)
        self.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def asset(name: str) -> bytes:
    return resources.files("audit.bundle").joinpath("assets", name).read_bytes()


def write_bundle(
    path: Path,
    *,
    entries: Iterable[StoredEntry],
    proof_for: Callable[[int], Sequence[bytes]],
    checkpoint: StoredCheckpoint,
    keys: Sequence[StoredKey],
    origin: str,
    extra_files: Mapping[str, bytes | Path],
    metadata: Mapping[str, Any],
    progress: Callable[[int], None] | None = None,
) -> BundleSummary:
    archive = _Zip(path)
    count = 0
    proofs_path = path.with_suffix(".proofs.tmp")
    try:
        with open(proofs_path, "wb") as proofs:
            for entry in entries:
                archive.add(f"entries/{entry.index}.json", entry.canonical)
                proof = [h.hex() for h in proof_for(entry.index)]
                line = {"index": entry.index, "leaf_hash": entry.leaf_hash.hex(), "proof": proof}
                proofs.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
                count += 1
                if progress is not None:
                    progress(1)
        archive.add("proofs.jsonl", proofs_path)
        archive.add("checkpoint.txt", checkpoint.note.encode("utf-8"))
        key_list = [
            {
                "key_id": k.key_id,
                "name": k.name,
                "algorithm": "ed25519",
                "public_key": __import__("base64").b64encode(k.public_key).decode(),
                "verifier_key": verifier_key(k.name, k.public_key),
            }
            for k in keys
        ]
        archive.add("keys.json", json.dumps({"keys": key_list}, indent=2).encode())
        for name, data in extra_files.items():
            archive.add(name, data)
        for name in ASSETS:
            archive.add(name, asset(name))
        manifest = {
            "format": FORMAT,
            "origin": origin,
            "tree_size": checkpoint.tree_size,
            "entries": count,
            **metadata,
            "files": archive.files,
        }
        info = zipfile.ZipInfo("manifest.json", date_time=(2000, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.zip.writestr(info, json.dumps(manifest, indent=2, sort_keys=True))
    finally:
        archive.zip.close()
        proofs_path.unlink(missing_ok=True)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return BundleSummary(path=path, sha256=digest.hexdigest(), size=path.stat().st_size, entries=count)
