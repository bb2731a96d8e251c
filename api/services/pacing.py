"""How many explanation jobs to claim and to compute at once, learned from how long they take.

One setting cannot suit every method: a TreeSHAP row costs about a millisecond, so it wants batches of
hundreds to spread the fixed cost of a claim and a ledger append; a KernelSHAP row costs tens of
milliseconds and an anchor seconds, so a large batch would keep every result waiting for the slowest and
leave the other explain processes idle. The pacer keeps a moving average of seconds per explanation for
each model version and method, and sizes from it:

- a claim covers about ``claim_seconds`` of work for all the worker's processes, so one worker does not
  hoard a burst of slow jobs that others could share;
- a chunk (one call to the explainer, recorded as soon as it returns) covers about ``chunk_seconds``, and a
  claimed batch is cut so that every process gets a share.

Until a pair has been measured, a claim takes the configured batch size and the first chunks are small.
"""

from __future__ import annotations

import math
import threading

Key = tuple[int, str]  # (model version id, method)

# the first chunks of a pair not yet measured: small, so that a slow method shows itself quickly
PROBE_ROWS = 4
_DECAY = 0.5  # how much of the past's weight (in rows) each new measurement leaves


class Pacer:
    """Seconds per explanation by (model version, method); thread-safe, shared by a pool's workers."""

    def __init__(self, *, chunk_seconds: float = 0.5, claim_seconds: float = 4.0) -> None:
        self.chunk_seconds = chunk_seconds
        self.claim_seconds = claim_seconds
        self._per_row: dict[Key, tuple[float, float]] = {}  # (seconds per row, weight in rows)
        self._lock = threading.Lock()

    def seconds_per_row(self, key: Key) -> float | None:
        with self._lock:
            known = self._per_row.get(key)
        return None if known is None else known[0]

    def observe(self, key: Key, rows: int, seconds: float) -> None:
        """Fold in one computed chunk of ``rows`` explanations that took ``seconds``.

        Weighted by rows: a call's fixed cost (the explainer's construction, the trip to the child) inflates
        a small chunk's figure, so a large chunk's figure should count for more."""
        if rows < 1 or seconds < 0:
            return
        sample = seconds / rows
        with self._lock:
            old, weight = self._per_row.get(key, (0.0, 0.0))
            weight *= _DECAY
            self._per_row[key] = ((old * weight + sample * rows) / (weight + rows), weight + rows)

    def claim_limit(self, key: Key, *, cap: int, parallel: int) -> int:
        """Jobs to claim: about ``claim_seconds`` of work for ``parallel`` processes, at most ``cap``."""
        per_row = self.seconds_per_row(key)
        if per_row is None or per_row <= 0:
            return cap
        return max(1, min(cap, math.ceil(self.claim_seconds * parallel / per_row)))

    def chunk_size(self, key: Key, *, remaining: int, parallel: int) -> int:
        """Rows for the next call: a fair share of what is left, and no more than ``chunk_seconds`` of it."""
        share = max(1, math.ceil(remaining / max(1, parallel)))
        per_row = self.seconds_per_row(key)
        if per_row is None:
            return min(share, PROBE_ROWS)
        if per_row <= 0:
            return share
        return max(1, min(share, math.floor(self.chunk_seconds / per_row)))


__all__ = ["PROBE_ROWS", "Key", "Pacer"]
