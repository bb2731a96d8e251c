"""Trust anchors and key rotation: which checkpoint-signing keys a verifier accepts, and from when.

A verifier starts from keys it was given out of band (the operator's keyring, ``RATIONALE_TRUSTED_KEYS``,
``rationale verify --key``, a regulator's pinned key) — never from keys read from the database, which are data
to check. The ledger extends that set only through ``key.rotated`` entries signed by a key already trusted:
a chain from one pinned key reaches every later key.

A rotation entry's payload (version 1)::

    {"version": 1, "previous": "<verifier key>", "next": "<verifier key>", "signature": "<base64>"}

where each verifier key is the C2SP string ``<name>+<hex key hash>+<base64(0x01 || 32-byte key)>`` and
``signature`` is the outgoing (``previous``) key's Ed25519 signature over exactly these ASCII bytes::

    "rationale key rotation v1\\n" || previous || "\\n" || next || "\\n"

A key introduced by the rotation entry at index ``r`` may sign checkpoints of tree size ``r + 1`` and more
(a checkpoint it signs must commit to the entry that introduced it); anchors may sign any size. Rotation
does not revoke the outgoing key: its old checkpoints stay valid (a stolen key is what witnesses are for).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.entry import StoredEntry
from audit.errors import AuditError
from audit.note import ALG_ED25519, key_hash, verifier_key
from audit.port import StoredKey

ROTATION_TYPE = "key.rotated"
ROTATION_CONTEXT = b"rationale key rotation v1\n"
ROTATION_VERSION = 1
_VKEY = re.compile(r"([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)")


class KeyFormatError(AuditError, ValueError):
    """A verifier-key string is not a valid C2SP Ed25519 verifier key."""


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A checkpoint-signing public key and the name it signs under: what a verifier trusts."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> str:
        return key_hash(self.name, self.public_key).hex()

    @property
    def text(self) -> str:
        """The full C2SP verifier-key string, the form printed wherever a key is named."""
        return verifier_key(self.name, self.public_key)

    def __str__(self) -> str:
        return self.text

    def as_stored(self) -> StoredKey:
        """This key in the form ``open_checkpoint`` takes."""
        return StoredKey(self.key_id, self.name, self.public_key, "")

    @classmethod
    def of(cls, key: StoredKey) -> VerifierKey:
        return cls(key.name, key.public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse and check a C2SP verifier-key string; raises KeyFormatError saying what is wrong."""
        shown = text if len(text) <= 120 else text[:117] + "..."
        match = _VKEY.fullmatch(text.strip())
        if match is None:
            raise KeyFormatError(f"{shown!r} is not a verifier key (<name>+<8 hex digits>+<base64 key>)")
        name, hash_hex, encoded = match.groups()
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFormatError(f"{shown!r}: the key is not valid base64") from exc
        if len(raw) != 33 or raw[:1] != ALG_ED25519:
            raise KeyFormatError(f"{shown!r}: not an Ed25519 key (0x01 followed by 32 bytes)")
        key = cls(name, raw[1:])
        if key.key_id != hash_hex:
            raise KeyFormatError(f"{shown!r}: the key hash does not match the name and key")
        return key


def parse_verifier_keys(text: str) -> tuple[VerifierKey, ...]:
    """A list of verifier keys separated by commas or whitespace (the ``RATIONALE_TRUSTED_KEYS`` form)."""
    return tuple(VerifierKey.parse(part) for part in re.split(r"[,\s]+", text) if part)


def rotation_message(previous: VerifierKey, next_key: VerifierKey) -> bytes:
    """The exact bytes the outgoing key signs."""
    return ROTATION_CONTEXT + previous.text.encode("ascii") + b"\n" + next_key.text.encode("ascii") + b"\n"


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The payload of a ``key.rotated`` entry: ``previous`` hands over to ``next``."""

    previous: VerifierKey
    next: VerifierKey
    signature: bytes

    @classmethod
    def sign(cls, *, previous: Ed25519PrivateKey, name: str, next_key: VerifierKey) -> KeyRotation:
        outgoing = VerifierKey(name, previous.public_key().public_bytes_raw())
        return cls(outgoing, next_key, previous.sign(rotation_message(outgoing, next_key)))

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": ROTATION_VERSION,
            "previous": self.previous.text,
            "next": self.next.text,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> KeyRotation:
        """Raises KeyFormatError when the payload is not a version-1 rotation."""
        if not isinstance(payload, dict) or set(payload) != {"version", "previous", "next", "signature"}:
            raise KeyFormatError("a key rotation holds exactly version, previous, next and signature")
        if payload["version"] != ROTATION_VERSION or isinstance(payload["version"], bool):
            raise KeyFormatError(f"unknown key rotation version {payload['version']!r}")
        fields = (payload["previous"], payload["next"], payload["signature"])
        if not all(isinstance(f, str) for f in fields):
            raise KeyFormatError("a key rotation's keys and signature are strings")
        try:
            signature = base64.b64decode(payload["signature"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFormatError("the rotation signature is not base64") from exc
        return cls(VerifierKey.parse(payload["previous"]), VerifierKey.parse(payload["next"]), signature)

    def signature_valid(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.previous.public_key).verify(
                self.signature, rotation_message(self.previous, self.next)
            )
        except (InvalidSignature, ValueError):
            return False
        return True


class TrustSet:
    """The keys a verifier accepts, each from the smallest tree size it may sign."""

    def __init__(self, anchors: Iterable[VerifierKey]) -> None:
        self.valid_from: dict[VerifierKey, int] = dict.fromkeys(anchors, 0)
        self.anchors = frozenset(self.valid_from)

    def __contains__(self, key: object) -> bool:
        return key in self.valid_from

    def for_size(self, tree_size: int) -> list[VerifierKey]:
        return [k for k, first in self.valid_from.items() if first <= tree_size]

    def apply(self, entry: StoredEntry) -> str | None:
        """Extend the set through a ``key.rotated`` entry; returns why it is refused, or None.

        A rotation whose outgoing key is not trusted is not an error in itself (the verifier may have pinned
        a later key only): it extends nothing. One that is malformed, or whose signature by a trusted key
        does not verify, is reported.
        """
        where = f"entry {entry.index} (key rotation)"
        try:
            rotation = KeyRotation.from_payload(json.loads(entry.canonical).get("payload"))
        except (KeyFormatError, ValueError, AttributeError, RecursionError) as exc:
            return f"{where}: {exc}"
        trusted_from = self.valid_from.get(rotation.previous)
        if trusted_from is None or trusted_from > entry.index:
            return None
        if not rotation.signature_valid():
            return f"{where}: the signature by the outgoing key {rotation.previous.text} does not verify"
        self.valid_from.setdefault(rotation.next, entry.index + 1)
        return None
