"""API keys remembered for a second, so that a request does not pay a database read and a thread hop for
its key (about 1.5 ms of a lone client's 8 ms on SQLite, issue #17).

What is remembered is a key that was found and usable; a refused key is never remembered, so unknown keys
always go to the database. Expiry is checked against the clock on every use. A revocation made through this
process (the API) forgets the key at once; one made elsewhere (`rationale access revoke`, another API
process) takes effect here within ``seconds`` (``RATIONALE_KEY_CACHE_SECONDS``; 0 reads the key on every
request). Entries are keyed by the SHA-256 of the presented key, never by the secret itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from storage.access_store import ApiKeyRecord


class KeyCache:
    """Found keys by the digest of the presented secret, each for ``seconds``; at most ``capacity``."""

    def __init__(self, seconds: float, *, capacity: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, ApiKeyRecord]] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every forget: a key read before a revocation is not remembered after it

    def get(self, digest: bytes) -> ApiKeyRecord | None:
        """The key read less than ``seconds`` ago, or None (then read it from the database)."""
        if self.seconds <= 0:
            return None
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            if self._clock() - found[0] >= self.seconds:
                del self._entries[digest]
                return None
            return found[1]

    def put(self, digest: bytes, record: ApiKeyRecord, *, read_at_generation: int) -> None:
        """Remember a key read while ``generation`` was ``read_at_generation`` (unless a revocation came since)."""
        if self.seconds <= 0:
            return
        with self._lock:
            if self.generation != read_at_generation:
                return
            self._entries[digest] = (self._clock(), record)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, key_id: str) -> None:
        """Drop a key at once (it was revoked through this process)."""
        with self._lock:
            self.generation += 1
            for digest in [d for d, (_, r) in self._entries.items() if r.key_id == key_id]:
                del self._entries[digest]
