"""The embedded executor: a few threads in the API process (or in `rationale worker`) running jobs.

Each thread has its own worker identity and builds its own explainer objects, so nothing that is not
thread-safe is ever shared. The threads claim and record; the computation itself runs in a few child
processes (``explain_processes``, see compute_pool) so that it does not hold the API process's GIL.
A heartbeat renews the leases of jobs in flight; if the process dies, the leases lapse and any worker
(this one after a restart included) reclaims the jobs.
"""

from __future__ import annotations

import logging
import threading
import time

from api.container import Services
from api.services.explaining import JobRunner, new_owner
from api.services.pacing import Pacer
from api.workers.compute_pool import ComputePool

log = logging.getLogger("rationale.workers")


class LocalWorkerPool:
    def __init__(self, services: Services, *, threads: int, name: str = "local", processes: int | None = None) -> None:
        self.services = services
        processes = services.settings.explain_processes if processes is None else processes
        self.compute = (
            ComputePool(
                processes=processes,
                blob_dir=services.settings.blob_dir,
                trusted_types=services.settings.extra_trusted_types,
            )
            if processes
            else None
        )
        compute = self.compute.explain if self.compute is not None else None
        pacer = Pacer()  # one for the pool: its threads learn each method's speed together
        self.runners = [
            JobRunner(services, owner=new_owner(f"{name}{i}"), compute=compute, parallel=processes or 1, pacer=pacer)
            for i in range(threads)
        ]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self._count_lock = threading.Lock()

    def start(self) -> None:
        from api.workers.warmup import import_explainers_in_background

        if self.compute is not None:
            self.compute.start()
        else:
            import_explainers_in_background()
        self.services.on_jobs_queued(self.wake)
        for runner in self.runners:
            thread = threading.Thread(target=self._loop, args=(runner,), name=runner.owner, daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def wake(self, count: int = 1) -> None:
        """Every thread of the pool claims as much as it can, so ``count`` does not matter here."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for runner in self.runners:
            runner.close()
        if self.compute is not None:
            self.compute.stop()

    def _loop(self, runner: JobRunner) -> None:
        settings = self.services.settings
        backoff = settings.poll_seconds
        while not self._stop.is_set():
            try:
                report = runner.run_batch()
                backoff = settings.poll_seconds
            except Exception:  # database away, or a bug: log, back off, keep the thread alive
                log.exception("worker %s: batch failed; retrying", runner.owner)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if report.claimed:
                with self._count_lock:
                    self.processed += report.succeeded + report.failed
                if report.drained:  # decisions are arriving one by one: let the next micro-batch gather
                    self._stop.wait(settings.batch_window_ms / 1000)
                continue
            self._wake.wait(settings.poll_seconds)
            if self._wake.is_set() and not self._stop.is_set():
                self._wake.clear()
                self._stop.wait(settings.batch_window_ms / 1000)  # let a micro-batch gather

    def _heartbeat(self) -> None:
        interval = max(0.05, self.services.settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            for runner in self.runners:
                in_flight = runner.in_flight
                if in_flight:
                    try:
                        runner.renew(in_flight)
                    except Exception:
                        log.warning("could not renew leases of %s", runner.owner, exc_info=True)


def drain(services: Services, *, owner: str | None = None, limit: int | None = None) -> int:
    """Run queued jobs in the calling thread until none is claimable; returns how many were recorded."""
    runner = JobRunner(services, owner=owner or new_owner("drain"))
    done = 0
    while True:
        report = runner.run_batch(limit=limit)
        if not report.claimed:
            return done
        done += report.succeeded + report.failed
