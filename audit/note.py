"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, and tlog-checkpoint bodies.

A note is its text (ending in a newline), a blank line, then signature lines
``— <key name> <base64(4-byte key hash || 64-byte signature)>``. The key hash is the first 4 bytes of
SHA-256(name || 0x0A || 0x01 || public key), 0x01 being the Ed25519 algorithm byte.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import SignatureError

ALG_ED25519 = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash and a space


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public_key).digest()[:4]


def key_id(name: str, public_key: bytes) -> str:
    return key_hash(name, public_key).hex()


def verifier_key(name: str, public_key: bytes) -> str:
    """The C2SP verifier-key string: ``<name>+<hex key hash>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(ALG_ED25519 + public_key).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError("a key name is non-empty and has no spaces or '+'")


def sign_note(text: str, *, name: str, private_key: Ed25519PrivateKey) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text ends with one newline and has no blank line")
    _check_name(name)
    public = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(text.encode())
    line = f"{SIG_PREFIX}{name} {base64.b64encode(key_hash(name, public) + signature).decode()}\n"
    return f"{text}\n{line}"


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    text: str
    key_id: str
    key_name: str


def open_note(note: str, *, keys: Sequence[tuple[str, bytes]]) -> VerifiedNote:
    """Return the text if a known key signed it; raise SignatureError otherwise."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise SignatureError("malformed signed note: no signature block")
    text += "\n"
    known = {(name, key_hash(name, pub)): pub for name, pub in keys}
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise SignatureError("malformed signature line")
        name, _, blob = line[len(SIG_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:
            raise SignatureError("signature is not base64") from exc
        if len(raw) != 68:
            continue
        public = known.get((name, raw[:4]))
        if public is None:
            continue  # a signature by a key we do not know is ignored, per the spec
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], text.encode())
        except InvalidSignature as exc:
            raise SignatureError(f"invalid signature by key {raw[:4].hex()} ({name})") from exc
        return VerifiedNote(text=text, key_id=raw[:4].hex(), key_name=name)
    raise SignatureError("the note carries no signature by a known key")


def ed25519_signers(note: str) -> list[tuple[str, str]]:
    """(key name, hex key hash) of each Ed25519-sized signature line, unverified: to name who signed."""
    _, sep, signatures = note.rpartition("\n\n")
    found: list[tuple[str, str]] = []
    for line in signatures.split("\n") if sep else []:
        name, _, blob = line[len(SIG_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            continue
        if line.startswith(SIG_PREFIX) and len(raw) == 68:
            found.append((name, raw[:4].hex()))
    return found


def checkpoint_text(origin: str, tree_size: int, root: bytes) -> str:
    """C2SP tlog-checkpoint body: origin, decimal size, base64 root hash, each on its own line."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise SignatureError("malformed checkpoint body")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise SignatureError("malformed checkpoint tree size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError as exc:
        raise SignatureError("malformed checkpoint root hash") from exc
    if len(root) != 32:
        raise SignatureError("checkpoint root hash is not 32 bytes")
    return origin, int(size_text), root
