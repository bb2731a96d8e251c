"""A forger's toolkit for export bundles: edit members, re-hash the manifest, rebuild a whole Merkle tree and
re-sign the checkpoint (with a fresh key, or — as a dishonest exporter — with the deployment's own key).

It works on the bytes of a bundle, as a forger in transit would, and needs nothing from the deployment but
(for the insider cases) its signing key.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.merkle import inclusion_path, leaf_hash, root_from_leaves
from audit.note import checkpoint_text, sign_note, verifier_key

SEALING = ("manifest.json", "export.json", "proofs.jsonl", "checkpoint.txt", "rotations.jsonl")


@dataclass
class Forge:
    """A bundle being forged: its members in archive order, or raw archive bytes for zip-level tricks."""

    files: dict[str, bytes]
    raw: bytes | None = None
    extra_members: list[tuple[str, bytes]] = field(default_factory=list)  # appended, duplicates allowed

    @classmethod
    def open(cls, data: bytes) -> Forge:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return cls({n: z.read(n) for n in z.namelist()})

    # --- reading -------------------------------------------------------------------------------------
    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def entry_indices(self) -> list[int]:
        return sorted(int(n[8:-5]) for n in self.files if n.startswith("entries/"))

    def entry(self, index: int) -> dict[str, Any]:
        return json.loads(self.files[f"entries/{index}.json"])

    def of_type(self, kind: str) -> list[int]:
        return [i for i in self.entry_indices() if self.entry(i)["type"] == kind]

    def export_entry(self) -> dict[str, Any] | None:
        return json.loads(self.files["export.json"]) if "export.json" in self.files else None

    def proof_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.files["proofs.jsonl"].decode().splitlines() if line]

    # --- editing -------------------------------------------------------------------------------------
    def set_entry(self, document: dict[str, Any]) -> None:
        self.files[f"entries/{document['index']}.json"] = rfc8785.dumps(document)

    def set_proof_lines(self, lines: list[dict[str, Any]]) -> None:
        self.files["proofs.jsonl"] = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)

    def drop_jsonl(self, name: str, keep: Callable[[dict[str, Any]], bool]) -> None:
        lines = [line for line in self.files[name].decode().splitlines() if line and keep(json.loads(line))]
        self.files[name] = "".join(line + "\n" for line in lines).encode()

    def edit_jsonl(self, name: str, change: Callable[[dict[str, Any]], None], *, which: int = 0) -> None:
        lines = self.files[name].decode().splitlines()
        record = json.loads(lines[which])
        change(record)
        lines[which] = json.dumps(record, sort_keys=True, separators=(",", ":"))
        self.files[name] = "".join(line + "\n" for line in lines).encode()

    def remove_entry(self, index: int) -> None:
        """Remove an entry with its file, its proof line and the JSONL records that name it."""
        self.files.pop(f"entries/{index}.json", None)
        self.set_proof_lines([x for x in self.proof_lines() if x["index"] != index])
        for name in ("data/decisions.jsonl", "data/explanations.jsonl"):
            if name in self.files:
                self.drop_jsonl(name, lambda r: r.get("ledger_index") != index)
        export = self.export_entry()
        if export is not None:  # keep the export entry's lists consistent with what is left
            payload = export["payload"]
            payload["decisions"] = [
                {
                    **d,
                    "explanations": [i for i in d["explanations"] if i != index],
                    "outcomes": [i for i in d["outcomes"] if i != index],
                }
                for d in payload["decisions"]
                if d["index"] != index
            ]
            self.files["export.json"] = rfc8785.dumps(export)

    def rehash(self, also: tuple[str, ...] = ()) -> None:
        """What a forger does to an unsigned manifest: list every member again with its new hash and size
        (sealing members only where already listed, or named in ``also``)."""
        manifest = self.json("manifest.json")
        old = {*manifest["files"], *also}
        manifest["files"] = {
            n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for n, d in sorted(self.files.items())
            if n != "manifest.json" and (n in old or n not in SEALING)
        }
        if "indices" in manifest:
            manifest["indices"] = self.entry_indices()
        self.files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"

    def reseal(
        self,
        *,
        key: Ed25519PrivateKey | None = None,
        name: str | None = None,
        keys_json: str = "replace",
        also: tuple[str, ...] = (),
    ) -> Ed25519PrivateKey:
        """Full forgery: re-hash the manifest, point the export entry at it, build a new tree over the
        bundle's entries and key rotations (the leaves it does not hold are filler), new proofs, a checkpoint
        signed by ``key`` (a fresh one by default), and keys.json replaced by (or appended with) that key."""
        key = key or Ed25519PrivateKey.generate()
        note = self.files["checkpoint.txt"].decode()
        origin, size_text = note.split("\n")[:2]
        size = int(size_text)
        name = name or note.split("\n\n")[1].split(" ")[1]
        public = key.public_key().public_bytes_raw()
        forged = {
            "key_id": hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4].hex(),
            "name": name,
            "algorithm": "ed25519",
            "public_key": base64.b64encode(public).decode(),
            "verifier_key": verifier_key(name, public),
        }
        if keys_json != "keep":
            keys = self.json("keys.json")
            keys["keys"] = [*keys["keys"], forged] if keys_json == "append" else [forged]
            self.files["keys.json"] = json.dumps(keys, indent=2).encode()
        self.rehash(also)
        export = self.export_entry()
        if export is not None:
            export["payload"]["manifest_sha256"] = hashlib.sha256(self.files["manifest.json"]).hexdigest()
            self.files["export.json"] = rfc8785.dumps(export)
        leaves = [hashlib.sha256(os.urandom(8)).digest() for _ in range(size)]
        present = {i: self.files[f"entries/{i}.json"] for i in self.entry_indices()}
        if export is not None:
            present[export["index"]] = self.files["export.json"]
        rotations = [json.loads(line) for line in self.files.get("rotations.jsonl", b"").splitlines()]
        for i, data in [*present.items(), *((r["index"], r["entry"].encode()) for r in rotations)]:
            leaves[i] = leaf_hash(data)
        root = root_from_leaves(leaves)

        def subtree(start: int, end: int) -> bytes:
            return root_from_leaves(leaves[start:end])

        def proof(index: int) -> list[str]:
            return [h.hex() for h in inclusion_path(index, size, subtree)]

        self.set_proof_lines([{"index": i, "leaf_hash": leaves[i].hex(), "proof": proof(i)} for i in sorted(present)])
        if rotations:
            lines = [{"index": r["index"], "entry": r["entry"], "proof": proof(r["index"])} for r in rotations]
            self.files["rotations.jsonl"] = b"".join(
                json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines
            )
        note = sign_note(checkpoint_text(origin, size, root), name=name, private_key=key)
        self.files["checkpoint.txt"] = note.encode()
        self.rehash()  # the sealing members too, where a manifest lists them
        return key

    # --- writing -------------------------------------------------------------------------------------
    def bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        buffer = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
            warnings.simplefilter("ignore")  # duplicate names are the point of some forgeries
            for name, data in [*self.files.items(), *self.extra_members]:
                z.writestr(zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
        return buffer.getvalue()


def edit_byte(data: bytes, at: int, how: str, value: int = 0) -> bytes:
    """One byte at ``at`` flipped (case bit), set to ``value``, deleted, or ``value`` inserted before it."""
    edited = bytearray(data)
    if how == "flip":
        edited[at] ^= 0x20
    elif how == "insert":
        edited[at:at] = bytes([value])
    elif how == "delete":
        del edited[at]
    else:
        edited[at] = value
    return bytes(edited)


def patch_declared_size(archive: bytes, member: str, size: int) -> bytes:
    """Make a member claim ``size`` uncompressed bytes in its local header and central directory entry
    (ZIP64 is not involved: sizes up to 4 GiB - 1)."""
    data = bytearray(archive)
    name = member.encode()
    local = data.find(b"PK\x03\x04" + b"\x00" * 0)  # first local header
    while local != -1:
        name_len, _ = struct.unpack_from("<HH", data, local + 26)
        if bytes(data[local + 30 : local + 30 + name_len]) == name:
            struct.pack_into("<I", data, local + 22, size)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46 : central + 46 + name_len]) == name:
            struct.pack_into("<I", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def set_flag(archive: bytes, member: str, bit: int) -> bytes:
    """Set a general-purpose flag bit (0: encrypted) on a member in both of its headers."""
    data = bytearray(archive)
    name = member.encode()
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        at = data.find(signature)
        while at != -1:
            name_len = struct.unpack_from("<H", data, at + name_len_at)[0]
            if bytes(data[at + name_at : at + name_at + name_len]) == name:
                flags = struct.unpack_from("<H", data, at + flag_at)[0]
                struct.pack_into("<H", data, at + flag_at, flags | (1 << bit))
            at = data.find(signature, at + 4)
    return bytes(data)


def symlink_member(forge: Forge, name: str, target: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for member, data in forge.files.items():
            if member == name:
                info = zipfile.ZipInfo(member, date_time=(2000, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = (0o120777 << 16) | 0
                z.writestr(info, target)
            else:
                z.writestr(zipfile.ZipInfo(member, date_time=(2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
