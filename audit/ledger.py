"""The ledger service: append entries with gapless indexes, and answer roots and RFC 9162 proofs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from audit.entry import EntryDraft, StoredEntry
from audit.errors import ProofError
from audit.merkle import SubtreeHash, consistency_path, inclusion_path
from audit.port import LedgerStore
from audit.tree import SubtreeReader, nodes_completed


class Ledger:
    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def append(self, store: LedgerStore, drafts: Sequence[EntryDraft]) -> list[StoredEntry]:
        """Append in the caller's transaction; all entries share one timestamp and consecutive indexes."""
        if not drafts:
            return []
        start = store.lock_and_size()
        moment = self.clock()
        entries = [StoredEntry.build(index=start + i, draft=d, recorded_at=moment) for i, d in enumerate(drafts)]
        store.append(entries)  # the store refuses an index that does not follow its last (LedgerGapError)
        store.put_nodes(nodes_completed(start, [e.leaf_hash for e in entries], store))
        return entries

    def root(self, store: LedgerStore, tree_size: int) -> bytes:
        self._check_size(store, tree_size)
        reader = SubtreeReader(store)
        reader.prefetch([(0, tree_size)])
        return reader(0, tree_size)

    def inclusion_proof(self, store: LedgerStore, *, index: int, tree_size: int) -> list[bytes]:
        self._check_size(store, tree_size)
        return inclusion_path(index, tree_size, _prefetched(store, lambda f: inclusion_path(index, tree_size, f)))

    def inclusion_prover(self, store: LedgerStore, *, tree_size: int) -> Callable[[int], list[bytes]]:
        """Proofs of many entries against one tree size, sharing the nodes they have in common (exports)."""
        self._check_size(store, tree_size)
        reader = SubtreeReader(store)

        def prove(index: int) -> list[bytes]:
            ranges: list[tuple[int, int]] = []

            def record(start: int, end: int) -> bytes:
                ranges.append((start, end))
                return b"\x00" * 32

            inclusion_path(index, tree_size, record)
            reader.prefetch(ranges)  # reads only the nodes not seen by an earlier proof
            return inclusion_path(index, tree_size, reader)

        return prove

    def consistency_proof(self, store: LedgerStore, *, first: int, second: int) -> list[bytes]:
        self._check_size(store, second)
        return consistency_path(first, second, _prefetched(store, lambda f: consistency_path(first, second, f)))

    @staticmethod
    def _check_size(store: LedgerStore, tree_size: int) -> None:
        size = store.size()
        if tree_size < 0 or tree_size > size:
            raise ProofError(f"tree size {tree_size} is outside the ledger (size {size})")


def _prefetched(store: LedgerStore, proof: Callable[[SubtreeHash], list[bytes]]) -> SubtreeReader:
    """A reader holding every node a proof needs, read in one batch: a dry run records the ranges."""
    ranges: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        ranges.append((start, end))
        return b"\x00" * 32

    proof(record)
    reader = SubtreeReader(store)
    reader.prefetch(ranges)
    return reader
