"""Whole-ledger verification from the stored bytes: every leaf, tree node, checkpoint and stored key.

Reports the first place that does not match, naming the table and the position. Leaf hashes are recomputed
from the stored canonical bytes (never from a re-serialization); each entry's own "index" field must equal
its position, so a deleted, inserted or reordered entry is caught even if its neighbours' hashes were
rewritten too.

Trust comes from outside the database: checkpoints must be signed by one of the ``anchors`` the caller was
given out of band, or by a key that a ``key.rotated`` entry signed by an already-trusted key introduced
(``audit.trust``). Keys in the keys table are data to check: each must be trusted by the end of the walk.
Each checkpoint's root must match the entries, and a consistency proof from the stored tree must lead from
its predecessor's signed root to its own, so the published checkpoints form one unbroken history.

Verification is total: any value in any ledger column gives a ``Failure``, never an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from audit.canonical import canonical_bytes
from audit.checkpoint import OpenedCheckpoint, open_checkpoint
from audit.entry import StoredEntry, parse_timestamp
from audit.errors import AuditError, CorruptRowError, SignatureError
from audit.ledger import Ledger
from audit.merkle import EMPTY_ROOT, node_hash, verify_consistency
from audit.note import ed25519_signers, key_hash
from audit.port import LedgerStore, StoredCheckpoint
from audit.trust import ROTATION_TYPE, TrustSet, VerifierKey

# What corrupted stored values can raise on their way through the checks (CorruptRowError is an AuditError).
_DATA_ERRORS = (AuditError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError)
_TABLE_OF = {
    "entry": "ledger_entries",
    "tree": "ledger_nodes",
    "checkpoint": "ledger_checkpoints",
    "key": "signing_keys",
}
_WHAT_OF = {table: what for what, table in _TABLE_OF.items()}


@dataclass(frozen=True, slots=True)
class Failure:
    what: str  # "entry", "tree", "checkpoint" or "key"
    position: int  # entry index, checkpoint tree size, or row position in its table (-1: unknown)
    message: str
    table: str = ""  # the table holding the row at fault


@dataclass(frozen=True, slots=True)
class VerificationReport:
    ok: bool
    entries_checked: int
    checkpoints_checked: int
    root_hex: str | None
    failure: Failure | None = None
    trusted_keys: tuple[str, ...] = ()  # full verifier keys trusted at the end: anchors, then rotated-in keys


class _Frontier:
    """The compact Merkle range of the leaves seen so far, extended a run of leaves at a time.

    Each level is hashed in one comprehension over the whole run (not leaf by leaf up a stack: a third of
    the walk's time at 10^5 entries), and every perfect subtree it completes is kept, per level, for
    ``_check_nodes`` to compare with the stored tree.
    """

    def __init__(self) -> None:
        self.count = 0
        self.pending: dict[int, bytes] = {}  # level -> the left node waiting for its sibling (bit set in count)
        self.completed: dict[int, list[tuple[int, list[bytes]]]] = {}  # level -> runs of (first idx, hashes)

    def extend(self, leaves: list[bytes]) -> None:
        level, first, nodes = 0, self.count, leaves
        self.count += len(leaves)
        sha256 = hashlib.sha256
        while nodes:
            if first & 1:  # this level's pending left node pairs with the run's first node
                nodes = [self.pending.pop(level), *nodes]
                first -= 1
            n = len(nodes)
            if n & 1:
                self.pending[level] = nodes[-1]
            if n < 2:
                break
            lefts, rights = nodes[0 : n - 1 : 2], nodes[1:n:2]
            parents = [sha256(b"\x01" + a + b).digest() for a, b in zip(lefts, rights, strict=True)]
            level += 1
            first >>= 1
            self.completed.setdefault(level, []).append((first, parents))
            nodes = parents

    def root(self) -> bytes:
        if not self.count:
            return EMPTY_ROOT
        levels = sorted(self.pending)
        digest = self.pending[levels[0]]
        for level in levels[1:]:
            digest = node_hash(self.pending[level], digest)
        return digest


class _Stop(Exception):
    """Carries the first failure out of the walk."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


def _fail(what: str, position: int, message: str) -> _Stop:
    return _Stop(Failure(what, position, message, _TABLE_OF[what]))


def _json_string(text: str) -> bytes:
    """RFC 8785 spelling of a string; the common plain-ASCII case without the encoder."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode("ascii") + b'"'
    return canonical_bytes(text)


def _unused_clock() -> datetime:
    """The prover only reads the tree; a Ledger needs a clock for appends it will not make."""
    return datetime.now(UTC)


def verify_ledger(
    store: LedgerStore,
    *,
    anchors: Iterable[VerifierKey],
    progress: Callable[[int, int], None] | None = None,
    batch: int = 10_000,
) -> VerificationReport:
    """Verify everything the store holds against ``anchors``; never raises for bad data."""
    walk = _Walk(store, TrustSet(anchors), progress, batch)
    try:
        root = walk.run()
    except _Stop as stop:
        return walk.report(stop.failure)
    except CorruptRowError as exc:
        what = _WHAT_OF.get(exc.table, "entry")
        return walk.report(Failure(what, exc.position, str(exc), exc.table))
    except _DATA_ERRORS as exc:
        message = f"{walk.table} at {walk.position}: unreadable ({type(exc).__name__}: {exc})"
        return walk.report(Failure(_WHAT_OF.get(walk.table, "entry"), walk.position, message, walk.table))
    return VerificationReport(
        True, walk.position, walk.checked_cps, root.hex() if root else None, None, walk.trusted_texts()
    )


class _Walk:
    def __init__(
        self, store: LedgerStore, trust: TrustSet, progress: Callable[[int, int], None] | None, batch: int
    ) -> None:
        self.store = store
        self.trust = trust
        self.progress = progress
        self.batch = batch
        self.position = 0
        self.checked_cps = 0
        self.table = "ledger_entries"
        self.frontier = _Frontier()
        self.previous: OpenedCheckpoint | None = None
        self.prover = Ledger(clock=_unused_clock)

    def report(self, failure: Failure) -> VerificationReport:
        return VerificationReport(False, self.position, self.checked_cps, None, failure, self.trusted_texts())

    def trusted_texts(self) -> tuple[str, ...]:
        return tuple(k.text for k in self.trust.valid_from)

    def run(self) -> bytes | None:
        store = self.store
        size = store.size()
        self.table = "ledger_checkpoints"
        checkpoints = list(store.iter_checkpoints())
        for cp in checkpoints:
            if cp.tree_size < 1:
                raise _fail(
                    "checkpoint", cp.tree_size, f"checkpoint {cp.tree_size}: a checkpoint covers 1 entry or more"
                )
        pending = iter(checkpoints)
        next_cp = next(pending, None)
        sha256 = hashlib.sha256
        position = 0
        leaves: list[bytes] = []
        collect, rotation = leaves.append, ROTATION_TYPE
        last_stamp: str | None = None
        last_type: str | None = None
        tail = b""
        for start in range(0, size, self.batch):
            end = min(size, start + self.batch)
            self.table = "ledger_entries"
            try:
                for index, kind, stamp, canonical, leaf in store.iter_rows(start, end):
                    if index != position:
                        raise _fail("entry", position, f"entry {position} is missing (found {index} in its place)")
                    if not canonical.startswith(b'{"index":%d,"payload":' % position):
                        raise _fail("entry", position, f"entry {position}: its bytes do not carry index {position}")
                    if sha256(b"\x00" + canonical).digest() != leaf:
                        raise _fail("entry", position, f"entry {position}: stored bytes do not hash to its leaf hash")
                    if stamp != last_stamp or kind != last_type:  # entries of one append share both
                        last_stamp, last_type = stamp, kind
                        tail = b"".join(
                            (b',"recorded_at":', _json_string(stamp), b',"type":', _json_string(kind), b"}")
                        )
                    if not canonical.endswith(tail):
                        message = f"entry {position}: its type or recorded_at column differs from its bytes"
                        raise _fail("entry", position, message)
                    if kind == rotation:
                        problem = self.trust.apply(StoredEntry(index, kind, stamp, canonical, leaf))
                        if problem:
                            raise _fail("entry", position, problem)
                    collect(leaf)
                    position += 1
                    while next_cp is not None and next_cp.tree_size == position:
                        self.position = position
                        self._absorb(leaves)
                        self._check_nodes()
                        self._check_checkpoint(next_cp)
                        self.table = "ledger_entries"
                        next_cp = next(pending, None)
            except BaseException:
                self.position = position  # where the walk stopped, for the report
                raise
            self.position = position
            if position != end:
                raise _fail("entry", position, f"entry {position} is missing")
            self._absorb(leaves)
            self._check_nodes()
            if self.progress is not None:
                self.progress(position, size)
        entries, nodes = self.store.row_counts()
        if entries != size:
            self.table = "ledger_entries"
            message = f"ledger_entries holds {entries} rows for {size} entries (rows outside 0..{size - 1})"
            raise _fail("entry", size, message)
        if next_cp is not None:
            self.table = "ledger_checkpoints"
            try:
                signed = open_checkpoint(next_cp.note, keys=[k.as_stored() for k in self.trust.for_size(size)])
            except SignatureError:
                signed = None
            if signed is None or signed.tree_size != next_cp.tree_size:
                where = f"checkpoint {next_cp.tree_size}"
                raise _fail(
                    "checkpoint",
                    next_cp.tree_size,
                    f"{where} is beyond the ledger ({size} entries) and its signed note does not say that size",
                )
            self.table = "ledger_entries"
            raise _fail(
                "entry",
                size,
                f"entries {size}.. are missing: checkpoint at tree size {next_cp.tree_size} but the ledger has only "
                f"{size} entries (entries were removed)",
            )
        expected = size - bin(size).count("1")  # complete subtrees of 2 or more leaves
        if nodes != expected:
            self.table = "ledger_nodes"
            raise _fail("tree", size, f"ledger_nodes holds {nodes} rows; a tree of {size} entries has {expected}")
        self._check_keys()
        if self.progress is not None:
            self.progress(position, size)
        return self.frontier.root() if size else None

    def _absorb(self, leaves: list[bytes]) -> None:
        """Hash the leaves collected since the last call into the frontier, and empty the list."""
        if leaves:
            self.frontier.extend(leaves)
            leaves.clear()

    def _check_nodes(self) -> None:
        """Compare the subtree hashes completed so far with the stored ones, then forget them."""
        self.table = "ledger_nodes"
        completed = self.frontier.completed
        mismatched: dict[tuple[int, int], bytes] = {}
        stored: dict[tuple[int, int], bytes] = {}
        for level, runs in completed.items():
            lo = runs[0][0]
            hi = runs[-1][0] + len(runs[-1][1])
            found = self.store.node_range(level, lo, hi)
            for first, hashes in runs:
                if [found.get(i) for i in range(first, first + len(hashes))] != hashes:  # the rare case
                    mismatched.update({(level, first + k): h for k, h in enumerate(hashes)})
                    stored.update({(level, i): h for i, h in found.items()})
        # name the first bad node in leaf order (the one covering the earliest last leaf, lowest level first)
        for key in sorted(mismatched, key=lambda k: ((k[1] + 1) << k[0], k[0])):
            if stored.get(key) != mismatched[key]:
                level, idx = key
                first_leaf = idx << level
                state = "missing" if key not in stored else "does not match its leaves"
                raise _fail(
                    "tree", first_leaf, f"tree node over entries {first_leaf}..{((idx + 1) << level) - 1} is {state}"
                )
        completed.clear()
        self.table = "ledger_entries"

    def _check_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self.table = "ledger_checkpoints"
        size = checkpoint.tree_size
        where = f"checkpoint {size}"
        trusted = self.trust.for_size(size)
        try:
            opened = open_checkpoint(checkpoint.note, keys=[k.as_stored() for k in trusted])
        except SignatureError as exc:
            raise _fail("checkpoint", size, f"{where}: {self._unanchored(checkpoint, exc)}") from None
        if opened.tree_size != size:
            raise _fail("checkpoint", size, f"{where}: its signed note says tree size {opened.tree_size}")
        if opened.root_hash != checkpoint.root_hash:
            raise _fail("checkpoint", size, f"{where}: stored root differs from the signed root")
        if checkpoint.key_id != opened.key_id:
            raise _fail("checkpoint", size, f"{where}: stored key id {checkpoint.key_id!r} is not the signer's")
        try:
            parse_timestamp(checkpoint.published_at)
        except ValueError:
            raise _fail("checkpoint", size, f"{where}: published_at is not an RFC 3339 UTC time") from None
        if opened.root_hash != self.frontier.root():
            raise _fail("checkpoint", size, f"{where}: signed root does not match the entries (log rewritten)")
        previous = self.previous
        if previous is not None:
            try:
                proof = self.prover.consistency_proof(self.store, first=previous.tree_size, second=size)
                verify_consistency(
                    first=previous.tree_size,
                    second=size,
                    proof=proof,
                    first_root=previous.root_hash,
                    second_root=opened.root_hash,
                )
            except AuditError as exc:
                message = f"{where} is not consistent with checkpoint {previous.tree_size}: {exc}"
                raise _fail("checkpoint", size, message) from None
        self.previous = opened
        self.checked_cps += 1

    def _unanchored(self, checkpoint: StoredCheckpoint, exc: SignatureError) -> str:
        """Why a checkpoint's signature is not accepted, naming each signer by its full verifier key."""
        signers = ed25519_signers(checkpoint.note)
        if not signers or "no signature by a known key" not in str(exc):
            return str(exc)
        try:  # the keys table only helps name the signer; a damaged one is reported at the end of the walk
            keys = self.store.keys()
        except CorruptRowError:
            keys = []
        stored = {(k.name, k.key_id): k for k in keys}
        names = []
        for name, kid in signers:
            key = stored.get((name, kid))
            if key is not None and key_hash(key.name, key.public_key).hex() == kid:
                vkey = VerifierKey.of(key)
                if vkey in self.trust:
                    names.append(f"{vkey.text} (trusted only from tree size {self.trust.valid_from[vkey]})")
                else:
                    names.append(vkey.text)
            else:
                names.append(f"{name}+{kid}+? (not in the keys table either)")
        return (
            f"signed by {', '.join(names)}: not a trust anchor, and no key rotation entry signed by a trusted key "
            "introduces it before this checkpoint"
        )

    def _check_keys(self) -> None:
        self.table = "signing_keys"
        keys = self.store.keys()
        stored = {key.key_id for key in keys}
        self.table = "ledger_checkpoints"
        for checkpoint in self.store.iter_checkpoints():  # a deleted key row is destroyed data: name it
            if checkpoint.key_id not in stored:
                raise _fail(
                    "key",
                    checkpoint.tree_size,
                    f"signing_keys: key {checkpoint.key_id!r}, which signed checkpoint {checkpoint.tree_size}, "
                    "is missing from the keys table (a row was deleted)",
                )
        self.table = "signing_keys"
        for position, key in enumerate(keys):
            if len(key.public_key) != 32:
                raise _fail("key", position, f"signing_keys {position}: key {key.key_id!r} is not 32 bytes")
            vkey = VerifierKey.of(key)
            if key.key_id != vkey.key_id:
                raise _fail("key", position, f"signing_keys {position}: key id {key.key_id!r} is not {vkey.text}'s")
            if vkey not in self.trust:
                raise _fail(
                    "key",
                    position,
                    f"signing_keys {position}: key {vkey.text} is neither a trust anchor nor introduced by a key "
                    "rotation entry signed by a trusted key",
                )
            try:
                parse_timestamp(key.created_at)
            except ValueError:
                raise _fail(
                    "key", position, f"signing_keys {position}: created_at is not an RFC 3339 UTC time"
                ) from None
