"""Complete-subtree hashes kept beside the leaves, so roots and proofs need O(log n) reads at any size.

Node (level, index) is MTH of leaves [index·2^level, (index+1)·2^level); level 0 is the stored leaf hash.
Appending a batch stores every node it completes in one ``put_nodes`` call.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit.errors import AuditError
from audit.merkle import EMPTY_ROOT, node_hash
from audit.port import LedgerStore


def nodes_completed(start: int, leaves: Sequence[bytes], store: LedgerStore) -> list[tuple[int, int, bytes]]:
    """Nodes (level >= 1) completed by appending ``leaves`` at positions start, start+1, ..."""
    end = start + len(leaves)
    known: dict[tuple[int, int], bytes] = {(0, start + i): h for i, h in enumerate(leaves)}
    out: list[tuple[int, int, bytes]] = []
    level = 1
    while (1 << level) <= end:
        first = start >> level  # lowest node index that could complete now
        last = (end >> level) - 1
        for idx in range(first, last + 1):
            if ((idx + 1) << level) <= start:
                continue  # completed before this batch
            left_key, right_key = (level - 1, 2 * idx), (level - 1, 2 * idx + 1)
            missing = [k for k in (left_key, right_key) if k not in known]
            if missing:
                known.update(_fetch(store, missing))
            digest = node_hash(known[left_key], known[right_key])
            known[(level, idx)] = digest
            out.append((level, idx, digest))
        level += 1
    return out


def _fetch(store: LedgerStore, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    found: dict[tuple[int, int], bytes] = {}
    inner = [k for k in keys if k[0] > 0]
    if inner:
        found.update(store.get_nodes(inner))
    for level, idx in keys:
        if level == 0:
            hashes = store.leaf_hashes(idx, idx + 1)
            if hashes:
                found[(0, idx)] = hashes[0]
    for key in keys:
        if key not in found:
            raise AuditError(f"tree node {key} is missing from the store")
    return found


class SubtreeReader:
    """Answers MTH(D[start:end]) from stored nodes, fetching each needed node set in one query."""

    # Bounded cache: past this many nodes, only subtrees of 2**KEEP_LEVEL leaves or more are kept. Those are
    # the ones proofs all over the ledger share (a few thousand even at 10M entries); the small ones are
    # read again if a later proof needs them. An export proving a million entries stays in constant memory.
    MAX_CACHED = 65_536
    KEEP_LEVEL = 10

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.cache: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def cover(start: int, end: int) -> list[tuple[int, int]]:
        """The aligned perfect subtrees the RFC's split of [start, end) bottoms out in."""
        keys: list[tuple[int, int]] = []
        stack = [(start, end)]
        while stack:
            s, e = stack.pop()
            n = e - s
            if n & (n - 1) == 0 and s % n == 0:
                keys.append((n.bit_length() - 1, s // n))
                continue
            k = 1
            while k << 1 < n:
                k <<= 1
            stack.append((s + k, e))
            stack.append((s, s + k))
        return keys

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        keys = [k for s, e in ranges for k in self.cover(s, e) if k not in self.cache]
        if keys:
            if len(self.cache) + len(keys) > self.MAX_CACHED:
                self.cache = {k: v for k, v in self.cache.items() if k[0] >= self.KEEP_LEVEL}
            self.cache.update(_fetch(self.store, list(dict.fromkeys(keys))))

    def __call__(self, start: int, end: int) -> bytes:
        if start >= end:
            return EMPTY_ROOT
        return self._hash(start, end)

    def _hash(self, start: int, end: int) -> bytes:
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            key = (n.bit_length() - 1, start // n)
            if key not in self.cache:
                self.cache.update(_fetch(self.store, [key]))
            return self.cache[key]
        k = 1
        while k << 1 < n:
            k <<= 1
        return node_hash(self._hash(start, start + k), self._hash(start + k, end))
