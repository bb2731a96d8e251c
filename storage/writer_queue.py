"""This process's SQLite writers, one at a time, with the request path ahead of background work.

SQLite admits one writer. The API process has two kinds: the request path (decisions being logged, a
client waiting on each) and background work (the embedded workers claiming jobs and recording explanation
batches, renewing leases). A plain mutex lets whoever grabs it first go; while a backlog of explanations
is recorded, the worker threads release and retake it back to back, and a lone decision request waited
tens of milliseconds at its median and hundreds at its 99th percentile behind them.

Here the slot is handed on at release, never grabbed: a waiting request-path writer is served before any
background one, so a request waits at most for the one transaction already running (and for requests
ahead of it). A background writer that has waited ``patience`` seconds is served first, so a steady stream
of requests delays explanations but cannot starve them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

DEFAULT_PATIENCE = 0.25


@dataclass(slots=True)
class _Waiter:
    ident: int
    background: bool
    since: float = field(default_factory=time.monotonic)


class WriterQueue:
    """A reentrant mutex handed on at release: to a background writer overdue by ``patience``, else to the
    first foreground writer waiting, else to the first background one (arrival order within each)."""

    def __init__(self, *, patience: float = DEFAULT_PATIENCE) -> None:
        self.patience = patience
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._waiting: list[_Waiter] = []  # arrival order

    def acquire(self, *, background: bool = False) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:  # a unit of work nested in this thread's own
                self._depth += 1
                return
            if self._owner is None and not self._waiting:
                self._owner, self._depth = me, 1
                return
            # the slot is handed on by release, never grabbed: a writer that has just released it cannot
            # take it back ahead of those already waiting
            self._waiting.append(_Waiter(me, background))
            try:
                while self._owner != me:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: leave the line, or pass the slot on
                if self._owner == me:
                    self._depth = 1
                    self._hand_on()
                else:
                    self._waiting = [w for w in self._waiting if w.ident != me]
                raise
            self._depth = 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a writer slot this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._hand_on()

    @property
    def waiting_foreground(self) -> int:
        with self._cond:
            return sum(1 for w in self._waiting if not w.background)

    def _hand_on(self) -> None:
        following = self._next()
        self._owner = None if following is None else following.ident
        if following is not None:
            self._waiting.remove(following)
            self._cond.notify_all()

    def _next(self) -> _Waiter | None:
        if not self._waiting:
            return None
        now = time.monotonic()
        for waiter in self._waiting:
            if waiter.background and now - waiter.since >= self.patience:
                return waiter
        for waiter in self._waiting:
            if not waiter.background:
                return waiter
        return self._waiting[0]


__all__ = ["DEFAULT_PATIENCE", "WriterQueue"]
