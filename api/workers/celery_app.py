"""The distributed executor: Celery workers on Redis running the same JobRunner as the local pool.

A Celery message is only a wake-up call ("there are jobs"): the database stays the source of truth for job
state. Tasks are acknowledged late and rejected when their worker is lost, so a killed worker's message is
delivered again; and even when a message is lost, the job's lease lapses and the next run reclaims it.
Results are written with fencing and unique keys, so redelivery never duplicates a ledger entry.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from api.settings import Settings

log = logging.getLogger("rationale.celery")

TASK_NAME = "rationale.run_jobs"
MAX_WAKEUPS = 32  # wake-ups sent for one burst of jobs: more workers than this share a burst by the sweep
_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def make_celery(settings: Settings) -> Celery:
    app = Celery("rationale", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": max(60, int(settings.lease_seconds * 2))},
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, acks_late=True)
    def run_jobs(max_batches: int = 1000) -> int:
        """Run micro-batches until no job is claimable; returns how many jobs were recorded."""
        runner = _runner()
        done = 0
        for _ in range(max_batches):
            report = runner.run_batch()
            if not report.claimed:
                break
            done += report.succeeded + report.failed
        return done

    return app


def _runner() -> Any:
    """Services and a runner per worker process, built after the fork (engines are never shared)."""
    from api.container import build_services
    from api.services.explaining import JobRunner, new_owner

    with _state_lock:
        if _state.get("pid") != os.getpid():
            services = build_services(Settings())
            runner = JobRunner(services, owner=new_owner("celery"))
            _state.update(pid=os.getpid(), runner=runner)
            threading.Thread(target=_heartbeat, args=(runner,), daemon=True, name="lease-heartbeat").start()
        return _state["runner"]


def _heartbeat(runner: Any) -> None:
    """Renew the leases of the batch in flight, so a long batch is not taken over while it runs."""
    interval = max(0.05, runner.services.settings.lease_seconds / 3)
    while True:
        threading.Event().wait(interval)
        if runner.in_flight:
            try:
                runner.renew(runner.in_flight)
            except Exception:
                log.warning("could not renew leases", exc_info=True)


@worker_process_init.connect
def _reset_after_fork(**_: Any) -> None:
    _state.clear()


class CeleryDispatcher:
    """Used by the API in celery mode: wakes workers after jobs commit, and re-wakes while work remains."""

    def __init__(self, settings: Settings, services: Any) -> None:
        self.app = make_celery(settings)
        self.services = services
        self.batch_size = min([settings.batch_size, *settings.method_batch_sizes.values()])  # wake enough workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, count: int = 1) -> None:
        """One wake-up per micro-batch of ``count`` jobs (up to MAX_WAKEUPS), so that a burst queued by one
        request is shared by as many workers as it has batches; a worker runs batches until none is left,
        so a surplus wake-up costs one empty claim."""
        wakeups = min(MAX_WAKEUPS, max(1, math.ceil(count / self.batch_size)))
        try:
            for _ in range(wakeups):
                self.app.send_task(TASK_NAME)
        except Exception:  # broker away: jobs are safe in the database; the sweep re-sends
            log.warning("could not reach the Celery broker; jobs stay queued", exc_info=True)

    def start(self, *, sweep_seconds: float) -> None:
        self.services.on_jobs_queued(self.wake)
        self._thread = threading.Thread(target=self._sweep, args=(sweep_seconds,), daemon=True, name="dispatch")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _sweep(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                with self.services.db.unit_of_work(write=False) as uow:
                    depth = uow.jobs.depth()
            except Exception:
                continue
            if depth:
                self.wake(depth)


def run_celery_worker(settings: Settings, *, concurrency: int | None) -> int:
    """`rationale worker` in celery mode: a prefork worker consuming wake-ups from the broker."""
    from api.heap import freeze_long_lived
    from api.workers.warmup import import_explainers

    import_explainers()  # before the fork: every child starts with shap loaded, not its first job
    if settings.gc_freeze:  # and the children's collectors do not walk (or copy) what it loaded
        freeze_long_lived()
    app = make_celery(settings)
    argv = [
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency or settings.workers or 1}",
        "--pool=prefork",
    ]
    app.worker_main(argv)
    return 0
