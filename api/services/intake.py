"""Single-decision intake: concurrent one-decision requests are recorded together (group commit).

Each ``POST /v1/decisions`` carrying one decision used to pay a whole transaction, a ledger append and a
model call of its own. Here one writer thread per process takes every request waiting in its queue, validates
each on its own, predicts them in one vectorised call per model, and records them in ONE transaction with ONE
ledger append (``api.services.decisions.record_prepared``, the path batches use), then answers each request.

Batching is natural, with no fixed sleep: the first request after an idle period is committed at once, and
requests that arrive while a group is being committed form the next group. Under sustained concurrency the
writer may wait a short, bounded window (``RATIONALE_INTAKE_WINDOW_MS``) for as many requests as the previous
group held, so that clients returning in step are not split into a group of one and a group of the rest; a
lone client never waits, since its previous group held one request.

Guarantees: a request is answered only after its group committed (a crash mid-group loses no acknowledged
decision: unacknowledged ones are simply retried by the client under the same ``decision_id``); a bad decision
fails alone with its own 4xx and the others are recorded; the same ``decision_id`` twice in one group with the
same body is one record, with another body the later one gets 409. The event loop never blocks: it only puts
the request on a queue and awaits a future the writer thread completes.

Several API processes may each run their own intake on PostgreSQL (the ledger append takes a transaction-level
advisory lock, so groups from different processes serialise and indexes stay gapless). SQLite has one writer at
a time: several processes work but queue on the database lock, so run one API process on SQLite.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from api.container import Services
from api.schemas import DecisionCreate
from api.services.decisions import (
    PreparedDecision,
    RecordedDecision,
    predict_outputs,
    prepare_decision,
    record_prepared,
)
from api.services.model_cache import LoadedModel
from storage.errors import ConflictError

log = logging.getLogger("rationale.intake")

DEFAULT_MAX_GROUP = 256
DEFAULT_WINDOW_MS = 2.0
MODELS_KEPT = 16


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a request gets back: its decision, and the explanation queue depth read in its group's transaction."""

    decision: RecordedDecision
    queue_depth: int


_Pending = tuple[DecisionCreate, "concurrent.futures.Future[Recorded]"]
_STOP = object()


class Intake:
    """One writer thread that records queued single-decision requests in groups."""

    def __init__(
        self, services: Services, *, max_group: int = DEFAULT_MAX_GROUP, window_ms: float = DEFAULT_WINDOW_MS
    ) -> None:
        self.services = services
        self.max_group = max(1, max_group)
        self.window = max(0.0, window_ms) / 1000.0
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # model versions are immutable once registered: the writer keeps those it has resolved, instead of
        # a read transaction per group (a few entries; unknown references are never kept)
        self._loaded_by_ref: dict[str, LoadedModel] = {}
        self.groups = 0  # counters for tests and the bench: how many groups, how many requests in them
        self.requests = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rationale-intake", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests already queued, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def pending(self) -> int:
        """Requests queued and not yet taken by the writer."""
        return self._queue.qsize()

    async def submit(self, item: DecisionCreate) -> Recorded:
        """Queue one validated request body and wait (without blocking the loop) until its group committed.

        Requests queued before ``start`` wait for it (tests use this to form one group deterministically)."""
        future: concurrent.futures.Future[Recorded] = concurrent.futures.Future()
        self._queue.put((item, future))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        last_size = 1
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group: list[_Pending] = [first]  # type: ignore[list-item]
            stopping = self._collect(group, target=last_size)
            last_size = len(group)
            self._record(group)
            if stopping:
                return

    def _collect(self, group: list[_Pending], *, target: int) -> bool:
        """Take what is already waiting; under concurrency wait up to the window for ``target`` requests."""
        deadline = time.monotonic() + self.window if target > 1 else 0.0
        while len(group) < self.max_group:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if len(group) >= target or remaining <= 0:
                    return False
                try:
                    pending = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return False
            if pending is _STOP:
                return True
            group.append(pending)  # type: ignore[arg-type]
        return False

    def _record(self, group: list[_Pending]) -> None:
        self.groups += 1
        self.requests += len(group)
        # a request whose client went away before its group started is dropped (it was never acknowledged)
        live = [(item, f) for item, f in group if f.set_running_or_notify_cancel()]
        if not live:
            return
        if len(self._loaded_by_ref) > MODELS_KEPT:
            self._loaded_by_ref.clear()
        loaded_by_ref = self._loaded_by_ref
        prepared: list[PreparedDecision] = []
        owners: list[concurrent.futures.Future[Recorded]] = []
        for item, future in live:
            try:
                prepared.append(prepare_decision(self.services, item, where="", loaded_by_ref=loaded_by_ref))
                owners.append(future)
            except Exception as exc:  # this request's own 4xx; the rest of the group goes on
                future.set_exception(exc)
        if not prepared:
            return
        try:
            outputs = predict_outputs(prepared)
            self._commit(prepared, outputs, owners)
        except ConflictError:
            # another API process recorded one of these ids between our look-up and our insert (PostgreSQL):
            # nothing of the group was written; record one by one, so only that request sees the other's record
            for p, output, future in zip(prepared, outputs, owners, strict=True):
                try:
                    self._commit([p], [output], [future])
                except Exception as exc:
                    future.set_exception(exc)
        except Exception as exc:  # nothing of the group was committed: every request in it fails
            log.warning("intake group of %d failed: %s", len(prepared), type(exc).__name__)
            for future in owners:
                future.set_exception(exc)

    def _commit(
        self,
        prepared: list[PreparedDecision],
        outputs: list[dict[str, Any]],
        owners: list[concurrent.futures.Future[Recorded]],
    ) -> None:
        """One transaction for the group; each request is answered only once it committed."""
        results, depth = record_prepared(self.services, prepared, outputs, isolate=True, read_depth=True)
        assert depth is not None
        for future, result in zip(owners, results, strict=True):
            if isinstance(result, RecordedDecision):
                future.set_result(Recorded(result, depth))
            else:
                future.set_exception(result)


__all__ = ["Intake", "Recorded"]
