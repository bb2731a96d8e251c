"""Checkpoint-signing keys on disk: generated on first start, or supplied by the operator; rotatable.

Each private key is a PEM file (mode 0600) named by its key id; ``active`` names the one that signs.
Rotation adds a key and switches ``active``; old public keys stay published so old checkpoints verify.
The public halves of every key here are trust anchors for this deployment's own verification: they come
from the operator's disk, not from the database. A rotation is also recorded in the ledger, signed by the
outgoing key (``audit.trust.KeyRotation``), so that verifiers holding only an older key can follow it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entry import format_timestamp
from audit.errors import AuditError
from audit.note import key_id
from audit.port import StoredKey


class Keyring:
    def __init__(self, directory: Path, *, name: str, clock: Callable[[], datetime]) -> None:
        self.directory = Path(directory)
        self.name = name
        self.clock = clock

    @property
    def _index_path(self) -> Path:
        return self.directory / "keys.json"

    def _index(self) -> dict[str, object]:
        if not self._index_path.exists():
            return {"active": None, "keys": {}}
        data: dict[str, object] = json.loads(self._index_path.read_text())
        return data

    def _write_index(self, index: dict[str, object]) -> None:
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
        os.replace(tmp, self._index_path)

    def ensure(self, *, supplied: Path | None = None) -> StoredKey:
        """The active key, creating one (or importing ``supplied``) if there is none yet."""
        index = self._index()
        if index.get("active"):
            return self.active()
        return self._add(self._load_pem(supplied.read_bytes()) if supplied else Ed25519PrivateKey.generate())

    def rotate(self, *, supplied: Path | None = None) -> StoredKey:
        """Add a key and make it the active one at once (``prepare`` + ``activate``)."""
        return self._add(self._load_pem(supplied.read_bytes()) if supplied else Ed25519PrivateKey.generate())

    def prepare(self, *, supplied: Path | None = None) -> StoredKey:
        """Add the next key without activating it: the rotation entry is written first, then ``activate``."""
        private = self._load_pem(supplied.read_bytes()) if supplied else Ed25519PrivateKey.generate()
        if self._index().get("active") == key_id(self.name, private.public_key().public_bytes_raw()):
            raise AuditError("the supplied key is already the active signing key")
        return self._add(private, activate=False)

    def activate(self, kid: str) -> StoredKey:
        index = self._index()
        if kid not in (index.get("keys") or {}):  # type: ignore[operator]
            raise AuditError(f"no key {kid} in the keyring")
        self._write_index({**index, "active": kid})
        return self.public(kid)

    def _add(self, private: Ed25519PrivateKey, *, activate: bool = True) -> StoredKey:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        public = private.public_key().public_bytes_raw()
        kid = key_id(self.name, public)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        index = self._index()
        keys = dict(index.get("keys") or {})  # type: ignore[call-overload]
        keys.setdefault(kid, {"name": self.name, "created_at": format_timestamp(self.clock())})
        self._write_index({"active": kid if activate else index.get("active"), "keys": keys})
        return self.public(kid)

    @staticmethod
    def _load_pem(data: bytes) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError("the supplied signing key is not an Ed25519 private key")
        return key

    def private(self, kid: str | None = None) -> Ed25519PrivateKey:
        kid = kid or self._active_id()
        return self._load_pem((self.directory / f"{kid}.pem").read_bytes())

    def _active_id(self) -> str:
        active = self._index().get("active")
        if not isinstance(active, str):
            raise AuditError("no signing key yet")
        return active

    def active(self) -> StoredKey:
        return self.public(self._active_id())

    def public(self, kid: str) -> StoredKey:
        meta = (self._index().get("keys") or {})[kid]  # type: ignore[index]
        public = self.private(kid).public_key().public_bytes_raw()
        return StoredKey(key_id=kid, name=meta["name"], public_key=public, created_at=meta["created_at"])

    def all_public(self) -> list[StoredKey]:
        keys = self._index().get("keys") or {}
        assert isinstance(keys, dict)
        return [self.public(k) for k in keys]
