"""Ledger appends, roots and proofs on the in-memory store, checked against a naive RFC 9162 MTH."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_bytes
from audit.entry import EntryDraft, StoredEntry
from audit.errors import NonCanonicalValueError, ProofError
from audit.ledger import Ledger
from audit.memory_store import MemoryLedgerStore
from audit.merkle import (
    inclusion_path,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)


def naive_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k << 1 < len(leaves):
        k <<= 1
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def fixed_clock() -> datetime:
    return datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def build(n: int, *, batch: int = 7) -> tuple[Ledger, MemoryLedgerStore]:
    ledger, store = Ledger(clock=fixed_clock), MemoryLedgerStore()
    for start in range(0, n, batch):
        ledger.append(store, [EntryDraft("t", {"i": i}) for i in range(start, min(n, start + batch))])
    return ledger, store


def test_entry_bytes_are_rfc8785_and_hash_as_rfc9162_leaves():
    entry = StoredEntry.build(index=3, draft=EntryDraft("x", {"b": 1.5, "a": "é"}), recorded_at=fixed_clock())
    assert entry.canonical == (
        b'{"index":3,"payload":{"a":"\xc3\xa9","b":1.5},"recorded_at":"2026-03-03T12:00:00.000000Z","type":"x"}'
    )
    assert entry.leaf_hash == hashlib.sha256(b"\x00" + entry.canonical).digest()
    assert entry.payload == {"a": "é", "b": 1.5}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_with_the_path(bad):
    with pytest.raises(NonCanonicalValueError) as err:
        EntryDraft("x", {"inputs": {"income": bad}})
    assert err.value.path == "payload.inputs.income"
    with pytest.raises(NonCanonicalValueError):
        canonical_bytes({"v": [1, bad]})


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100])
def test_roots_and_proofs_match_the_naive_tree(n):
    ledger, store = build(n)
    leaves = [e.leaf_hash for e in store.entries]
    for size in range(1, n + 1):
        root = ledger.root(store, size)
        assert root == naive_mth(leaves[:size]) == root_from_leaves(leaves[:size])
        for index in range(size):
            proof = ledger.inclusion_proof(store, index=index, tree_size=size)
            verify_inclusion(leaf=leaves[index], index=index, tree_size=size, proof=proof, root=root)
        for first in range(1, size + 1):
            proof = ledger.consistency_proof(store, first=first, second=size)
            verify_consistency(
                first=first, second=size, proof=proof, first_root=naive_mth(leaves[:first]), second_root=root
            )


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_any_proof_verifies_and_a_wrong_one_does_not(n, data):
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_path(index, n, lambda s, e: naive_mth(leaves[s:e]))
    root = naive_mth(leaves)
    verify_inclusion(leaf=leaves[index], index=index, tree_size=n, proof=proof, root=root)
    other = (index + 1) % n
    with pytest.raises(ProofError):
        verify_inclusion(leaf=leaves[other], index=index, tree_size=n, proof=proof, root=root)


def test_proofs_beyond_the_ledger_are_refused():
    ledger, store = build(5)
    with pytest.raises(ProofError):
        ledger.inclusion_proof(store, index=0, tree_size=6)
    with pytest.raises(ProofError):
        ledger.inclusion_proof(store, index=5, tree_size=5)


def test_a_prover_over_many_entries_keeps_a_bounded_cache_and_the_same_proofs(monkeypatch):
    from audit.tree import SubtreeReader

    ledger, store = build(700, batch=50)
    leaves = [e.leaf_hash for e in store.entries]
    monkeypatch.setattr(SubtreeReader, "MAX_CACHED", 40)  # tiny, so the trimming runs many times
    monkeypatch.setattr(SubtreeReader, "KEEP_LEVEL", 6)
    kept = sum(-(-650 // 2**level) for level in range(6, 11))  # subtrees of 64+ leaves are never dropped
    prove = ledger.inclusion_prover(store, tree_size=650)
    reader = prove.__closure__[next(i for i, n in enumerate(prove.__code__.co_freevars) if n == "reader")].cell_contents
    root = naive_mth(leaves[:650])
    for index in [*range(650), 3, 640, 17]:  # forward, then back to nodes trimmed away long ago
        proof = prove(index)
        assert proof == ledger.inclusion_proof(store, index=index, tree_size=650)
        verify_inclusion(leaf=leaves[index], index=index, tree_size=650, proof=proof, root=root)
        assert len(reader.cache) <= 40 + kept + 10  # the bound, the large subtrees, one proof's worth of nodes
