"""Whole-ledger verification from the stored bytes: every leaf, every tree node, every checkpoint.

Reports the first place that does not match. Leaf hashes are recomputed from the stored canonical bytes
(never from a re-serialization); each entry's own "index" field must equal its position, so a deleted,
inserted or reordered entry is caught even if its neighbours' hashes were rewritten too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from audit.checkpoint import open_checkpoint
from audit.errors import AuditError
from audit.merkle import EMPTY_ROOT, node_hash
from audit.port import LedgerStore, StoredCheckpoint, StoredKey

_INDEX = re.compile(rb'\{"index":(0|[1-9][0-9]*),"payload":')


@dataclass(frozen=True, slots=True)
class Failure:
    what: str  # "entry", "tree" or "checkpoint"
    position: int  # entry index, or checkpoint tree size
    message: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    ok: bool
    entries_checked: int
    checkpoints_checked: int
    root_hex: str | None
    failure: Failure | None = None


class _Stack:
    """The compact Merkle range of leaves seen so far; emits each perfect subtree as it completes."""

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes]] = []  # (level, hash)
        self.count = 0

    def push(self, leaf: bytes, completed: dict[tuple[int, int], bytes]) -> None:
        level, digest = 0, leaf
        self.count += 1
        while self.items and self.items[-1][0] == level:
            _, left = self.items.pop()
            digest = node_hash(left, digest)
            level += 1
            completed[(level, (self.count >> level) - 1)] = digest
        self.items.append((level, digest))

    def root(self) -> bytes:
        if not self.items:
            return EMPTY_ROOT
        digest = self.items[-1][1]
        for _, left in reversed(self.items[:-1]):
            digest = node_hash(left, digest)
        return digest


def verify_ledger(
    store: LedgerStore,
    *,
    keys: Sequence[StoredKey],
    progress: Callable[[int, int], None] | None = None,
    batch: int = 10_000,
) -> VerificationReport:
    size = store.size()
    checkpoints = list(store.iter_checkpoints())
    stack = _Stack()
    position = 0
    pending = iter(checkpoints)
    next_cp = next(pending, None)
    checked_cps = 0

    def fail(what: str, where: int, message: str) -> VerificationReport:
        return VerificationReport(False, position, checked_cps, None, Failure(what, where, message))

    sha256 = hashlib.sha256
    completed: dict[tuple[int, int], bytes] = {}

    def bad_node() -> Failure | None:
        """Compare the subtree hashes completed so far with the stored ones, then forget them."""
        stored: dict[tuple[int, int], bytes] = {}
        by_level: dict[int, list[int]] = {}
        for level, idx in completed:
            by_level.setdefault(level, []).append(idx)
        for level, indexes in by_level.items():
            found = store.node_range(level, min(indexes), max(indexes) + 1)
            stored.update({(level, i): h for i, h in found.items()})
        for key in sorted(completed, key=lambda k: ((k[1] + 1) << k[0], k[0])):
            if stored.get(key) != completed[key]:
                level, idx = key
                first = idx << level
                state = "missing" if key not in stored else "does not match its leaves"
                return Failure("tree", first, f"tree node over entries {first}..{((idx + 1) << level) - 1} is {state}")
        completed.clear()
        return None

    for start in range(0, size, batch):
        end = min(size, start + batch)
        for entry in _entries(store, start, end):
            if entry.index != position:
                return fail("entry", position, f"entry {position} is missing (found {entry.index} in its place)")
            match = _INDEX.match(entry.canonical)
            if match is None or int(match.group(1)) != position:
                return fail("entry", position, f"entry {position}: its bytes do not carry index {position}")
            leaf = sha256(b"\x00" + entry.canonical).digest()
            if leaf != entry.leaf_hash:
                return fail("entry", position, f"entry {position}: stored bytes do not hash to its leaf hash")
            stack.push(leaf, completed)
            position += 1
            while next_cp is not None and next_cp.tree_size == position:
                node_failure = bad_node()
                if node_failure:
                    return VerificationReport(False, position, checked_cps, None, node_failure)
                problem = _check_checkpoint(next_cp, stack.root(), keys)
                if problem:
                    return fail("checkpoint", next_cp.tree_size, problem)
                checked_cps += 1
                next_cp = next(pending, None)
        if position != end:
            return fail("entry", position, f"entry {position} is missing")
        node_failure = bad_node()
        if node_failure:
            return VerificationReport(False, position, checked_cps, None, node_failure)
        if progress is not None:
            progress(position, size)
    if next_cp is not None:
        return fail(
            "checkpoint",
            next_cp.tree_size,
            f"checkpoint at tree size {next_cp.tree_size} but the ledger has only {size} entries "
            "(entries were removed)",
        )
    if progress is not None:
        progress(position, size)
    root = stack.root() if size else None
    return VerificationReport(True, position, checked_cps, root.hex() if root else None)


def _entries(store: LedgerStore, start: int, end: int) -> Iterator:  # type: ignore[type-arg]
    yield from store.iter_range(start, end)


def _check_checkpoint(checkpoint: StoredCheckpoint, root: bytes, keys: Sequence[StoredKey]) -> str | None:
    try:
        opened = open_checkpoint(checkpoint.note, keys=keys)
    except AuditError as exc:
        return f"checkpoint {checkpoint.tree_size}: {exc}"
    if opened.tree_size != checkpoint.tree_size:
        return f"checkpoint {checkpoint.tree_size}: its signed note says tree size {opened.tree_size}"
    if opened.root_hash != checkpoint.root_hash:
        return f"checkpoint {checkpoint.tree_size}: stored root differs from the signed root"
    if opened.root_hash != root:
        return f"checkpoint {checkpoint.tree_size}: signed root does not match the entries (log rewritten)"
    return None
