"""An in-memory LedgerStore: the fake for tests and for tools that hold a ledger in hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from audit.entry import StoredEntry
from audit.errors import EntryNotFoundError, LedgerGapError
from audit.port import EntryRow, StoredCheckpoint, StoredKey


class MemoryLedgerStore:
    def __init__(self) -> None:
        self.entries: list[StoredEntry] = []
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.checkpoints: list[StoredCheckpoint] = []
        self.public_keys: dict[str, StoredKey] = {}
        self.lock = threading.RLock()

    def lock_and_size(self) -> int:
        return len(self.entries)

    def size(self) -> int:
        return len(self.entries)

    def append(self, entries: Sequence[StoredEntry]) -> None:
        for entry in entries:
            if entry.index != len(self.entries):
                raise LedgerGapError(f"append at {entry.index} into a ledger of {len(self.entries)}")
            self.entries.append(entry)

    def read(self, index: int) -> StoredEntry:
        if not 0 <= index < len(self.entries):
            raise EntryNotFoundError(f"no ledger entry at index {index}")
        return self.entries[index]

    def iter_range(self, start: int, end: int) -> Iterator[StoredEntry]:
        yield from self.entries[start:end]

    def iter_rows(self, start: int, end: int) -> Iterator[EntryRow]:
        for e in self.entries[start:end]:
            yield e.index, e.type, e.recorded_at, e.canonical, e.leaf_hash

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return [e.leaf_hash for e in self.entries[start:end]]

    def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, idx, digest in nodes:
            self.nodes[(level, idx)] = digest

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        return {i: self.nodes[(level, i)] for i in range(start, end) if (level, i) in self.nodes}

    def row_counts(self) -> tuple[int, int]:
        return len(self.entries), len(self.nodes)

    def iter_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        for (level, idx), digest in sorted(self.nodes.items()):
            yield level, idx, digest

    def append_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self.checkpoints.append(checkpoint)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return max(self.checkpoints, key=lambda c: c.tree_size) if self.checkpoints else None

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.tree_size == tree_size:
                return checkpoint
        raise EntryNotFoundError(f"no checkpoint at tree size {tree_size}")

    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]:
        yield from sorted(self.checkpoints, key=lambda c: c.tree_size)

    def add_key(self, key: StoredKey) -> None:
        self.public_keys.setdefault(key.key_id, key)

    def keys(self) -> list[StoredKey]:
        return list(self.public_keys.values())
