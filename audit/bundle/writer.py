"""Writing export bundles (assets/FORMAT.md): content first, then the seal.

Content members (entries as their stored bytes, views, model cards, verify.py, FORMAT.md) are streamed into
the zip, each hashed as it is written; their list becomes manifest.json, whose SHA-256 the caller commits in
an export.created entry. Only then are the sealing members added: that entry, the inclusion proofs, the
signed checkpoint that covers it and the key rotations in its tree. The archive is plain: no duplicate names, no data
descriptors, fixed timestamps, members back to back — what verify.py insists on.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.bundle.core import core

FORMAT = "rationale-bundle/2"
ASSETS = ("verify.py", "FORMAT.md")
SEALING = ("manifest.json", "export.json", "proofs.jsonl", "checkpoint.txt")
ROTATIONS = "rotations.jsonl"  # sealing too, and only when the ledger holds key rotations


@dataclass(frozen=True, slots=True)
class BundleSummary:
    path: Path
    sha256: str
    size: int
    entries: int


class BundleWriter:
    """A bundle being written; ``files`` maps every content member to its SHA-256 and size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.files: dict[str, dict[str, Any]] = {}
        self.entries = 0
        self._names: set[str] = set()

    def _info(self, name: str) -> zipfile.ZipInfo:
        if name in self._names or not core()._LAYOUT.match(name):
            raise ValueError(f"bundle member {name!r} is a duplicate or outside the layout")
        self._names.add(name)
        info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))  # reproducible archives
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o100644 << 16
        return info

    def _write(self, name: str, data: bytes | Path) -> tuple[str, int]:
        info = self._info(name)
        if isinstance(data, Path):  # streamed from disk: large views never sit in memory whole
            digest, size = hashlib.sha256(), 0
            with open(data, "rb") as source, self.zip.open(info, "w", force_zip64=True) as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
                    target.write(block)
            return digest.hexdigest(), size
        self.zip.writestr(info, data)
        return hashlib.sha256(data).hexdigest(), len(data)

    def add(self, name: str, data: bytes | Path) -> None:
        """A content member, listed in the manifest."""
        sha, size = self._write(name, data)
        self.files[name] = {"sha256": sha, "size": size}
        if name.startswith("entries/"):
            self.entries += 1

    def manifest(
        self,
        *,
        export_id: str,
        origin: str,
        created_at: str,
        flt: Mapping[str, Any],
        tree_size: int,
        indices: Sequence[int],
    ) -> bytes:
        """manifest.json's bytes: what the export entry commits to by its SHA-256."""
        manifest = {
            "format": FORMAT,
            "export_id": export_id,
            "origin": origin,
            "created_at": created_at,
            "filter": dict(flt),
            "tree_size": tree_size,
            "indices": list(indices),
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"

    def seal(
        self, *, manifest: bytes, export_entry: bytes, proofs: Path, checkpoint: str, rotations: bytes | None = None
    ) -> BundleSummary:
        """Add the sealing members (``rotations.jsonl`` only when the ledger has key rotations) and close;
        returns the bundle's SHA-256."""
        self._write("manifest.json", manifest)
        self._write("export.json", export_entry)
        self._write("proofs.jsonl", proofs)
        self._write("checkpoint.txt", checkpoint.encode("utf-8"))
        if rotations is not None:
            self._write(ROTATIONS, rotations)
        self.zip.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return BundleSummary(
            path=self.path, sha256=digest.hexdigest(), size=self.path.stat().st_size, entries=self.entries
        )

    def abort(self) -> None:
        self.zip.close()
        self.path.unlink(missing_ok=True)
