"""Group commit of access entries: every read waits until its entry is in the ledger, but reads share commits.

A read hands its :class:`~audit.access_payload.AccessRead` to the recorder and blocks on a future. One
background thread takes everything queued, appends it as consecutive ledger entries (plus the access-index
rows) in ONE transaction, commits, and only then releases the waiting reads with their entry indexes. While
a commit runs, the next reads queue up and share the next commit, so the cost per read falls as load rises
(no timer: a lone read is committed at once). If the commit fails, every waiting read fails with the
database's error (503): a read is never answered without its access entry.

Durability is the database's commit: on PostgreSQL a synchronous commit; on SQLite in WAL mode with
``synchronous=NORMAL`` (storage/db.py) a commit survives a crash of the process, not a power loss.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from api.container import Services
from audit.access_payload import AccessRead
from audit.entry import EntryDraft
from storage.errors import UnavailableError

log = logging.getLogger("rationale.access")
MAX_BATCH = 1000
WAIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Pending:
    draft: EntryDraft
    index_rows: tuple[tuple[str | None, str | None], ...]  # (subject_ref, decision_id)
    done: Future[int]


class AccessRecorder:
    """One per process's Services, started on first use and stopped by ``Services.close``."""

    def __init__(self, services: Services, *, start: bool = True) -> None:
        self.services = services
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="access-recorder", daemon=True)
        self._stopped = False
        self.commits = 0
        self.recorded = 0
        if start:
            self._thread.start()

    def start(self) -> None:
        """Begin committing (tests build a stopped recorder to queue reads first)."""
        self._thread.start()

    def record(self, read: AccessRead, *, index: Sequence[tuple[str | None, str | None]] = ()) -> int:
        """Append ``read`` and return its ledger index once committed. Raises the commit's error."""
        if self._stopped:
            raise UnavailableError("the service is shutting down")
        pending = _Pending(EntryDraft(read.TYPE, read.to_dict()), tuple(dict.fromkeys(index)), Future())
        self._queue.put(pending)
        try:
            return pending.done.result(timeout=WAIT_SECONDS)
        except TimeoutError:
            raise UnavailableError("the access log did not commit in time; retry shortly") from None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.services.db.unit_of_work() as uow:
                entries = self.services.ledger.append(uow.ledger, [p.draft for p in batch])
                rows = [
                    (entry.index, subject, decision)
                    for entry, pending in zip(entries, batch, strict=True)
                    for subject, decision in pending.index_rows
                ]
                uow.access.add_index(rows)
        except BaseException as exc:  # every waiting read fails with the cause; the thread lives on
            log.warning("access entries not recorded: %s", exc)
            for pending in batch:
                pending.done.set_exception(exc)
            return
        self.commits += 1
        self.recorded += len(batch)
        for entry, pending in zip(entries, batch, strict=True):
            pending.done.set_result(entry.index)


_lock = threading.Lock()


def recorder(services: Services) -> AccessRecorder:
    """The recorder of these services, started on first use (CLI commands and workers never start one)."""
    current = services.access_recorder
    if current is not None:
        return current
    with _lock:
        if services.access_recorder is None:
            services.access_recorder = AccessRecorder(services)
        return services.access_recorder
