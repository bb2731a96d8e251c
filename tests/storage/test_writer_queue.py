"""The writer slot: one writer at a time, the request path ahead of background work, background never starved.

The attack on today's latency: a backlog of explanations recorded back to back by worker threads, and a lone
decision request that must wait for a write slot. With a plain mutex the worker that just released the slot
usually takes it again, and the request waited hundreds of milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.db import Database
from storage.writer_queue import WriterQueue

HOLD = 0.03  # seconds a background writer keeps the slot each time


@contextmanager
def _held(queue: WriterQueue, *, background: bool) -> Iterator[None]:
    queue.acquire(background=background)
    try:
        yield
    finally:
        queue.release()


def _hammer(take: Callable[[], AbstractContextManager[object]], stop: threading.Event) -> threading.Thread:
    """A thread taking the slot (``take()``) back to back, each time for HOLD, until ``stop``."""

    def run() -> None:
        while not stop.is_set():
            with take():
                time.sleep(HOLD)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_waiting_foreground_writer_goes_before_a_waiting_background_one():
    queue = WriterQueue(patience=10.0)
    order: list[str] = []
    queue.acquire()
    waiting = threading.Barrier(2)

    def take(name: str, background: bool) -> None:
        waiting.wait() if not background else None
        queue.acquire(background=background)
        order.append(name)
        queue.release()

    back = threading.Thread(target=take, args=("background", True))
    back.start()
    time.sleep(0.05)  # the background writer is waiting first
    front = threading.Thread(target=take, args=("foreground", False))
    front.start()
    waiting.wait()
    deadline = time.monotonic() + 5
    while queue.waiting_foreground == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    queue.release()
    back.join(5)
    front.join(5)
    assert order == ["foreground", "background"]


def test_background_work_is_delayed_by_a_stream_of_requests_but_not_starved():
    queue = WriterQueue(patience=0.1)
    stop = threading.Event()
    # three request-path writers: one of them is always waiting
    streams = [_hammer(lambda: _held(queue, background=False), stop) for _ in range(3)]
    try:
        time.sleep(0.05)
        started = time.monotonic()
        queue.acquire(background=True)
        waited = time.monotonic() - started
        queue.release()
    finally:
        stop.set()
        for thread in streams:
            thread.join(5)
    assert waited < 0.1 + 5 * HOLD, f"the background writer waited {waited:.3f} s"


def test_the_slot_is_reentrant_in_its_thread_and_only_its_holder_releases_it():
    queue = WriterQueue()
    queue.acquire(background=True)
    queue.acquire()  # a unit of work nested in this thread's own
    got = threading.Event()

    def other() -> None:
        queue.acquire()
        got.set()
        queue.release()

    thread = threading.Thread(target=other)
    thread.start()
    queue.release()
    assert not got.wait(0.1), "the slot was given away while its holder was still inside"
    refused: list[BaseException] = []

    def stranger() -> None:
        try:
            queue.release()
        except RuntimeError as exc:
            refused.append(exc)

    intruder = threading.Thread(target=stranger)
    intruder.start()
    intruder.join(5)
    assert len(refused) == 1 and "does not hold" in str(refused[0])
    queue.release()
    assert got.wait(5)
    thread.join(5)


@settings(max_examples=25, deadline=None)
@given(
    writers=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=1, max_value=4), st.floats(min_value=0, max_value=0.003)),
        min_size=2,
        max_size=6,
    ),
    patience=st.sampled_from([0.0, 0.005, 0.05]),
)
def test_one_writer_at_a_time_and_every_writer_gets_in(writers, patience):
    queue = WriterQueue(patience=patience)
    inside = [0]
    most = [0]
    done: list[int] = []
    guard = threading.Lock()

    def writer(n: int, background: bool, times: int, hold: float) -> None:
        for _ in range(times):
            queue.acquire(background=background)
            try:
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(hold)
                with guard:
                    inside[0] -= 1
            finally:
                queue.release()
        done.append(n)

    threads = [threading.Thread(target=writer, args=(i, *w)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(done) == list(range(len(writers)))
    assert most[0] == 1
    assert queue.waiting_foreground == 0


def test_a_request_path_write_waits_for_at_most_the_background_write_already_running(database: Database):
    """Two worker threads writing back to back (a backlog being recorded); a request's write comes next."""
    if database.dialect != "sqlite":  # PostgreSQL has no process-wide writer slot: writers run side by side
        stop = threading.Event()
        workers = [_hammer(lambda: database.unit_of_work(background=True), stop) for _ in range(2)]
        try:
            with database.unit_of_work() as uow:
                assert uow.jobs.depth() == 0
        finally:
            stop.set()
            for t in workers:
                t.join(5)
        return
    stop = threading.Event()
    workers = [_hammer(lambda: database.unit_of_work(background=True), stop) for _ in range(2)]
    waits = []
    try:
        time.sleep(0.05)
        for _ in range(30):
            started = time.monotonic()
            with database.unit_of_work() as uow:
                waits.append(time.monotonic() - started)
                uow.jobs.depth()
            time.sleep(0.005)
    finally:
        stop.set()
        for t in workers:
            t.join(5)
    # one background transaction (HOLD plus its commit) at most, with room for a slow machine
    assert max(waits) < 3 * HOLD + 0.05, f"waits {[round(w, 3) for w in waits]}"
