"""C2SP tlog-cosignature v1 with Ed25519 (https://c2sp.org/tlog-cosignature), and verifier keys.

A cosignature is a signed-note signature line ``— <cosigner name> base64(key ID || timestamped_signature)``
added to a checkpoint by a witness that checked the checkpoint is consistent with everything it cosigned
before. For Ed25519 (signature type 0x04):

- key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
- timestamped_signature = u64 big-endian POSIX seconds || 64-byte Ed25519 signature
- the signed message is ``cosignature/v1\\n`` ``time <seconds>\\n`` followed by the whole checkpoint body
  (the note text, final newline included, no signature lines).

The message does not name the cosigner, so one key must never serve two cosigner names.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import QuorumError, SignatureError

ALG_ED25519 = 0x01  # plain signed-note Ed25519 (the log's checkpoint signatures)
ALG_COSIGNATURE_V1 = 0x04  # timestamped Ed25519 checkpoint cosignatures
SIG_PREFIX = "\u2014 "
MAX_TIMESTAMP = 2**63 - 1
HEADER = "cosignature/v1\n"


def _key_hash(name: str, alg: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def check_key_name(name: str) -> None:
    """signed-note: key names are non-empty, with no Unicode space and no '+'."""
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise SignatureError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A parsed C2SP verifier key (vkey): ``<name>+<hex key ID>+<base64(type || public key)>``."""

    name: str
    alg: int
    public_key: bytes

    @property
    def key_hash(self) -> bytes:
        return _key_hash(self.name, self.alg, self.public_key)

    @property
    def key_id(self) -> str:
        return self.key_hash.hex()

    def __str__(self) -> str:
        material = base64.b64encode(bytes([self.alg]) + self.public_key).decode()
        return f"{self.name}+{self.key_id}+{material}"


def parse_verifier_key(text: str, *, alg: int | None = None) -> VerifierKey:
    """Parse and check a vkey (the key ID must match name and key); ``alg`` demands one signature type.

    Raises SignatureError naming what is wrong.
    """
    name, _, rest = text.strip().partition("+")
    hex_id, sep, material = rest.partition("+")  # base64 may itself contain '+'
    if not sep:
        raise SignatureError("a verifier key is <name>+<hex key id>+<base64 key>")
    check_key_name(name)
    try:
        raw = base64.b64decode(material, validate=True)
    except ValueError as exc:
        raise SignatureError("verifier key material is not base64") from exc
    if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise SignatureError("verifier key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
    key = VerifierKey(name=name, alg=raw[0], public_key=raw[1:])
    if alg is not None and key.alg != alg:
        raise SignatureError(f"verifier key {name} has signature type 0x{key.alg:02x}, expected 0x{alg:02x}")
    if hex_id.lower() != key.key_id or len(hex_id) != 8:
        raise SignatureError(f"verifier key {name}: key id {hex_id} does not match the key")
    return key


def cosigner_key(name: str, public_key: bytes) -> VerifierKey:
    check_key_name(name)
    if len(public_key) != 32:
        raise SignatureError("an Ed25519 public key is 32 bytes")
    return VerifierKey(name=name, alg=ALG_COSIGNATURE_V1, public_key=public_key)


def cosigned_message(body: str, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 cosignature/v1 signs."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise SignatureError("cosignature timestamp out of range")
    return f"{HEADER}time {timestamp}\n{body}".encode()


def cosign(body: str, *, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """One cosignature line (ending in a newline) over checkpoint ``body`` at ``timestamp`` (POSIX seconds)."""
    if not body.endswith("\n"):
        raise SignatureError("a checkpoint body ends with a newline")
    if timestamp <= 0:
        raise SignatureError("a witness cosignature carries a non-zero timestamp")
    key = cosigner_key(name, private_key.public_key().public_bytes_raw())
    signature = private_key.sign(cosigned_message(body, timestamp))
    blob = key.key_hash + timestamp.to_bytes(8, "big") + signature
    return f"{SIG_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True, slots=True)
class SignatureLine:
    name: str
    key_hash: bytes
    signature: bytes  # the bytes after the key hash
    line: str  # as found, with its newline


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A cosignature that verified: who made it, when it says it was made, and the line itself."""

    key: VerifierKey
    timestamp: int
    line: str


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """The note text (with its final newline) and its signature lines, per C2SP signed-note.

    The text is separated from the signatures by the last blank line. Raises SignatureError if malformed.
    """
    text, sep, block = note.rpartition("\n\n")
    if not sep or not block.endswith("\n"):
        raise SignatureError("malformed signed note: no signature block")
    lines: list[SignatureLine] = []
    for line in block[:-1].split("\n"):
        lines.append(parse_signature_line(line + "\n"))
    return text + "\n", lines


def parse_signature_line(line: str) -> SignatureLine:
    if not line.startswith(SIG_PREFIX) or not line.endswith("\n") or "\n" in line[:-1]:
        raise SignatureError("malformed signature line")
    name, _, blob = line[len(SIG_PREFIX) : -1].partition(" ")
    check_key_name(name)
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError as exc:
        raise SignatureError("signature is not base64") from exc
    if len(raw) < 5:
        raise SignatureError("signature too short")
    return SignatureLine(name=name, key_hash=raw[:4], signature=raw[4:], line=line)


def verify_cosignature_line(body: str, line: SignatureLine, key: VerifierKey) -> Cosignature:
    """Check one cosignature/v1 line by ``key`` over checkpoint ``body``; raise SignatureError if it fails."""
    if (line.name, line.key_hash) != (key.name, key.key_hash) or key.alg != ALG_COSIGNATURE_V1:
        raise SignatureError(f"the signature line is not by cosigner {key}")
    if len(line.signature) != 8 + 64:
        raise SignatureError(f"cosignature by {key.name} is not 8 + 64 bytes")
    timestamp = int.from_bytes(line.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise SignatureError(f"cosignature by {key.name} has a timestamp beyond 2^63-1")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(line.signature[8:], cosigned_message(body, timestamp))
    except InvalidSignature as exc:
        raise SignatureError(f"invalid cosignature by {key}") from exc
    return Cosignature(key=key, timestamp=timestamp, line=line.line)


def find_cosignatures(body: str, lines: Sequence[SignatureLine], keys: Sequence[VerifierKey]) -> list[Cosignature]:
    """The valid cosignatures by configured ``keys`` (one per key), lines by unknown keys ignored.

    A line whose name and key ID match a configured key but whose signature fails raises SignatureError,
    as signed-note requires for a known key.
    """
    wanted = {(k.name, k.key_hash): k for k in keys if k.alg == ALG_COSIGNATURE_V1}
    found: dict[tuple[str, bytes], Cosignature] = {}
    for line in lines:
        key = wanted.get((line.name, line.key_hash))
        if key is None:
            continue
        found.setdefault((key.name, key.key_hash), verify_cosignature_line(body, line, key))
    return list(found.values())


def check_quorum(note: str, *, keys: Sequence[VerifierKey], quorum: int) -> list[Cosignature]:
    """The cosignatures of a cosigned checkpoint note when at least ``quorum`` configured witnesses signed it.

    Raises QuorumError (how many of how many) when fewer did, SignatureError when a known witness's line
    does not verify. This checks cosignatures only: the log's own signature is checked separately.
    """
    if quorum < 0:
        raise QuorumError("a quorum is zero or more witnesses")
    if quorum > len({(k.name, k.key_hash) for k in keys}):
        raise QuorumError(f"quorum {quorum} exceeds the {len(keys)} witness keys configured")
    body, lines = split_note(note)
    found = find_cosignatures(body, lines, keys)
    if len(found) < quorum:
        names = ", ".join(c.key.name for c in found) or "none"
        raise QuorumError(
            f"{len(found)} of the required {quorum} witnesses cosigned this checkpoint (cosigned by: {names})"
        )
    return found


def add_signature_lines(note: str, lines: Sequence[str]) -> str:
    """Append signature lines to a signed note (each ends in a newline), skipping ones already present."""
    _, existing = split_note(note)
    present = {s.line for s in existing}
    extra = [line for line in lines if line not in present]
    return note + "".join(extra)


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    cosignatures: tuple[Cosignature, ...]


def open_witnessed_checkpoint(
    note: str, *, log_keys: Sequence[VerifierKey], witness_keys: Sequence[VerifierKey], quorum: int
) -> WitnessedCheckpoint:
    """A cosigned checkpoint note as served by ``GET /v1/ledger/checkpoint``, accepted only when a pinned
    log key signed it and at least ``quorum`` pinned witnesses cosigned it (for clients holding the keys
    out of band: bundles, monitors, scripts). Raises SignatureError or QuorumError."""
    from audit.note import open_note, parse_checkpoint_text

    opened = open_note(note, keys=[(k.name, k.public_key) for k in log_keys if k.alg == ALG_ED25519])
    origin, size, root = parse_checkpoint_text(opened.text)
    found = check_quorum(note, keys=witness_keys, quorum=quorum)
    return WitnessedCheckpoint(origin=origin, tree_size=size, root_hash=root, cosignatures=tuple(found))
