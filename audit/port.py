"""The narrow store port the ledger needs. ``storage`` implements it; tests use an in-memory fake.

There is deliberately no update and no delete: the ledger only grows.
All methods run inside the caller's unit of work (one database transaction).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from audit.entry import StoredEntry

EntryRow = tuple[int, str, str, bytes, bytes]  # index, type, recorded_at, canonical, leaf_hash


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A published signed tree head, stored as the exact signed-note text that was served."""

    tree_size: int
    root_hash: bytes
    note: str
    key_id: str
    published_at: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A public checkpoint-signing key; private halves never go through the store."""

    key_id: str
    name: str
    public_key: bytes
    created_at: str


class LedgerStore(Protocol):
    def lock_and_size(self) -> int:
        """Take the append lock for the current transaction and return the committed size."""
        ...

    def size(self) -> int:
        """Number of entries visible to the current transaction."""
        ...

    def append(self, entries: Sequence[StoredEntry]) -> None:
        """Insert entries whose indexes continue the ledger with no gap (caller holds the lock)."""
        ...

    def read(self, index: int) -> StoredEntry:
        """Raise EntryNotFoundError when absent."""
        ...

    def iter_range(self, start: int, end: int) -> Iterator[StoredEntry]:
        """Entries with start <= index < end in index order, streamed in batches."""
        ...

    def iter_rows(self, start: int, end: int) -> Iterator[EntryRow]:
        """``iter_range`` as plain (index, type, recorded_at, canonical, leaf_hash) tuples: the verifier reads
        every entry once, and building a frozen object per entry was a fifth of its time."""
        ...

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Stored leaf hashes for start <= index < end in index order."""
        ...

    def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store hashes of complete subtrees as (level, index, hash); level >= 1."""
        ...

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of the requested complete subtrees that are stored."""
        ...

    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """Stored hashes at ``level`` for start <= index < end, keyed by index (one range read)."""
        ...

    def row_counts(self) -> tuple[int, int]:
        """How many entry rows and node rows are stored (an extra row anywhere changes a count)."""
        ...

    def append_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint:
        """Raise EntryNotFoundError when no checkpoint was published at that size."""
        ...

    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]:
        """All checkpoints in publication order: every published checkpoint is kept."""
        ...

    def add_key(self, key: StoredKey) -> None: ...

    def keys(self) -> list[StoredKey]: ...
