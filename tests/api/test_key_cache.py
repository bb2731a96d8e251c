"""The API-key cache never answers with a key older than its window, nor with one forgotten (revoked) after
it was read, whatever the order of reads, revocations and time (hypothesis drives the order)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from api.services.key_cache import KeyCache
from storage.access_store import ApiKeyRecord

KEYS = ["k0", "k1", "k2"]


def _record(key_id: str) -> ApiKeyRecord:
    return ApiKeyRecord(key_id, "owner", "data_scientist", key_id.encode(), datetime.now(UTC), "tests", None, None)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.sampled_from(KEYS)),  # a request that reads its key from the database
        st.tuples(st.just("slow_read"), st.sampled_from(KEYS)),  # ... and a revocation lands during the read
        st.tuples(st.just("revoke"), st.sampled_from(KEYS)),
        st.tuples(st.just("wait"), st.floats(0, 1.5)),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(steps, st.integers(1, 3))
def test_a_remembered_key_is_never_stale_nor_revoked(steps, capacity):
    now = [0.0]
    cache = KeyCache(1.0, capacity=capacity, clock=lambda: now[0])
    revoked: set[str] = set()
    read_at: dict[str, float] = {}
    for op, arg in steps:
        if op == "wait":
            now[0] += arg
        elif op in ("read", "slow_read"):
            key = str(arg)
            if key in revoked:
                continue  # the database refuses it: nothing is remembered
            generation = cache.generation
            if op == "slow_read":
                revoked.add(key)
                cache.forget(key)
            cache.put(key.encode(), _record(key), read_at_generation=generation)
            read_at[key] = now[0]
        elif op == "revoke":
            revoked.add(str(arg))
            cache.forget(str(arg))
        else:
            found = cache.get(str(arg).encode())
            if found is not None:
                assert found.key_id not in revoked
                assert now[0] - read_at[found.key_id] < 1.0
    assert len(cache._entries) <= capacity


def test_a_zero_window_remembers_nothing():
    cache = KeyCache(0.0)
    cache.put(b"k", _record("k"), read_at_generation=cache.generation)
    assert cache.get(b"k") is None
