"""A C2SP tlog-witness (https://c2sp.org/tlog-witness): the add-checkpoint protocol and its state machine.

A witness is configured with the public key(s) of each log it watches. For every origin it remembers the
last checkpoint it cosigned, and cosigns a new one only when

1. the note carries a valid signature by a configured key of that log (else 403; unknown origin: 404),
2. the client's ``old`` size is the size it last cosigned (else 409 with that size; a smaller tree can
   never pass: ``old`` above the new size is a 400, ``old`` below the cosigned size a 409),
3. a consistency proof from the last cosigned tree to the new one verifies (RFC 9162 §2.1.4), or, at
   equal sizes, the roots are identical (else 422: a fork, signed with the log's real key or not).

Checking and recording the new size happen atomically (a compare-and-set on the old size), so two racing
requests can never roll the witness back. Pure code over a ``WitnessStateStore`` port: ``storage``
implements it for SQLite/PostgreSQL, ``MemoryWitnessStore`` here for tests.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.cosignature import (
    ALG_ED25519,
    VerifierKey,
    cosign,
    cosigner_key,
    split_note,
)
from audit.errors import (
    InconsistentCheckpointError,
    MalformedRequestError,
    ProofError,
    SignatureError,
    SizeConflictError,
    UnknownLogError,
    UntrustedCheckpointError,
)
from audit.merkle import EMPTY_ROOT, verify_consistency
from audit.note import parse_checkpoint_text

log = logging.getLogger("rationale.witness")

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


# -- the wire format -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client believes the witness holds, a proof, the note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note as sent (text, blank line, signature lines)


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise MalformedRequestError(f"{what} is not a decimal with no leading zeroes")
    return int(text)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: str) -> bytes:
    """The request body: ``old <size>``, one base64 hash per line, an empty line, then the checkpoint."""
    if old_size < 0 or len(proof) > MAX_PROOF_LINES:
        raise MalformedRequestError("old size is negative or the proof has more than 63 hashes")
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n", checkpoint]
    return "".join(lines).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body strictly; raise MalformedRequestError (HTTP 400) when it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequestError("the request is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep or not note.endswith("\n"):
        raise MalformedRequestError("expected an old-size line, proof lines, an empty line and a checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise MalformedRequestError("the first line is not `old <size>`")
    old_size = _decimal(lines[0][4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedRequestError("more than 63 consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except ValueError as exc:
            raise MalformedRequestError("a proof line is not base64") from exc
        if len(digest) != 32 or base64.b64encode(digest).decode() != line:
            raise MalformedRequestError("a proof line is not one base64 SHA-256 hash")
        proof.append(digest)
    return AddCheckpoint(old_size=old_size, proof=tuple(proof), checkpoint=note)


def format_size(size: int) -> bytes:
    """The body of a 409 response: the witness's size in decimal and a newline."""
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n"):
        raise MalformedRequestError("a size response is a decimal and a newline")
    return _decimal(text[:-1], "witness size")


def origin_hash(origin: str) -> str:
    """The monitoring path segment: lowercase hex SHA-256 of the origin."""
    return hashlib.sha256(origin.encode()).hexdigest()


# -- the state ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessedHead:
    """The latest checkpoint a witness cosigned for one log, as the note it now serves (log + cosignature)."""

    origin: str
    tree_size: int
    root_hash: bytes
    note: str
    cosigned_at: int  # POSIX seconds


class WitnessStateStore(Protocol):
    def latest(self, origin: str) -> WitnessedHead | None:
        """The last head cosigned for ``origin``, or None if never."""
        ...

    def advance(self, *, old_size: int, head: WitnessedHead) -> int | None:
        """Record ``head`` if the stored size for its origin is still ``old_size`` (0 when none): None on
        success, else the size that is stored now. Must be atomic against concurrent callers."""
        ...


class MemoryWitnessStore:
    """An in-memory ``WitnessStateStore`` (tests, benchmarks)."""

    def __init__(self) -> None:
        self._heads: dict[str, WitnessedHead] = {}
        self._lock = threading.Lock()

    def latest(self, origin: str) -> WitnessedHead | None:
        return self._heads.get(origin)

    def advance(self, *, old_size: int, head: WitnessedHead) -> int | None:
        with self._lock:
            current = self._heads.get(head.origin)
            size = current.tree_size if current else 0
            if size != old_size:
                return size
            self._heads[head.origin] = head
            return None


# -- the witness -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogConfig:
    origin: str
    keys: tuple[VerifierKey, ...]  # Ed25519 signed-note keys (type 0x01) of the log


def logs_from_keys(keys: Iterable[VerifierKey], *, origin: str | None = None) -> dict[str, LogConfig]:
    """Group log keys by origin; by default a key's name is the log's origin (as for Rationale's logs)."""
    grouped: dict[str, list[VerifierKey]] = {}
    for key in keys:
        if key.alg != ALG_ED25519:
            raise SignatureError(f"log key {key} is not an Ed25519 signed-note key (type 0x01)")
        grouped.setdefault(origin or key.name, []).append(key)
    return {o: LogConfig(origin=o, keys=tuple(ks)) for o, ks in grouped.items()}


class Witness:
    """Checks add-checkpoint requests and cosigns the ones that extend what it cosigned before."""

    def __init__(
        self,
        *,
        name: str,
        private_key: Ed25519PrivateKey,
        logs: dict[str, LogConfig],
        store: WitnessStateStore,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self._private_key = private_key
        self.key = cosigner_key(name, private_key.public_key().public_bytes_raw())
        self.logs = logs
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def verifier_key(self) -> str:
        return str(self.key)

    def add_checkpoint(self, body: bytes) -> str:
        """Handle one request body; the cosignature line(s) on success, a WitnessError subclass otherwise."""
        request = parse_add_checkpoint(body)
        origin = request.checkpoint.split("\n", 1)[0]
        config = self.logs.get(origin)
        if config is None:
            raise UnknownLogError(f"unknown log origin {origin!r}")
        text = _open_log_note(request.checkpoint, config)
        try:
            found_origin, size, root = parse_checkpoint_text(text)
        except SignatureError as exc:
            raise MalformedRequestError(f"malformed checkpoint: {exc}") from exc
        if found_origin != origin:
            raise MalformedRequestError("malformed checkpoint origin")
        if request.old_size > size:
            raise MalformedRequestError(f"old size {request.old_size} exceeds the checkpoint size {size}")
        if size == 0 and root != EMPTY_ROOT:
            raise InconsistentCheckpointError("a checkpoint of size 0 must carry the empty tree's root")
        with self._lock:
            current = self.store.latest(origin)
            known = current.tree_size if current else 0
            if request.old_size != known:
                raise SizeConflictError(known)
            if known == 0:
                if request.proof:
                    raise InconsistentCheckpointError("a proof from size 0 must be empty")
            elif known == size:
                assert current is not None
                if request.proof or root != current.root_hash:
                    self._evidence(origin, current, request, size)
                    raise InconsistentCheckpointError(
                        f"tree size {size} with a root other than the one cosigned: a fork of the log"
                    )
            else:
                assert current is not None
                try:
                    verify_consistency(
                        first=known, second=size, proof=request.proof, first_root=current.root_hash, second_root=root
                    )
                except ProofError as exc:
                    self._evidence(origin, current, request, size)
                    raise InconsistentCheckpointError(
                        f"the consistency proof from tree size {known} to {size} does not verify: {exc}"
                    ) from exc
            timestamp = max(1, int(self.clock().timestamp()))
            line = cosign(text, name=self.name, private_key=self._private_key, timestamp=timestamp)
            head = WitnessedHead(
                origin=origin, tree_size=size, root_hash=root, note=request.checkpoint + line, cosigned_at=timestamp
            )
            stored = self.store.advance(old_size=known, head=head)
            if stored is not None:
                raise SizeConflictError(stored)
        return line

    def _evidence(self, origin: str, current: WitnessedHead, request: AddCheckpoint, size: int) -> None:
        """A validly signed checkpoint that contradicts a cosigned one is proof of log misbehaviour: log it."""
        log.error(
            "log %s signed a checkpoint inconsistent with cosigned size %d (new size %d); evidence follows:\n%s",
            origin,
            current.tree_size,
            size,
            request.checkpoint,
        )


def _open_log_note(note: str, config: LogConfig) -> str:
    """The note text if a configured key of the log signed it; UntrustedCheckpointError (403) otherwise."""
    try:
        text, lines = split_note(note)
    except SignatureError as exc:
        raise UntrustedCheckpointError(f"not a signed note: {exc}") from exc
    known = {(k.name, k.key_hash): k for k in config.keys}
    verified = False
    for line in lines:
        key = known.get((line.name, line.key_hash))
        if key is None:
            continue  # signatures by keys we do not know are ignored, per signed-note
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(line.signature, text.encode())
        except (InvalidSignature, ValueError) as exc:
            raise UntrustedCheckpointError(f"invalid signature by the log key {key}") from exc
        verified = True
    if not verified:
        raise UntrustedCheckpointError(f"the checkpoint carries no signature by a key of log {config.origin!r}")
    return text
