"""Explanations computed in child processes of the embedded pool.

shap's TreeSHAP loop is C code that keeps the GIL, and KernelSHAP, LIME and anchors are mostly Python: in
one process they stall everything else the service does (taking HTTP requests, recording decisions,
appending results to the ledger). The embedded pool's threads therefore hand the pure computation —
inputs in, results out — to a few child processes, and keep every database and ledger write in the
parent, so a child holds no lease, no connection and no state worth losing: if it dies, the batch is
returned to the queue and a new child takes its place.

Children load model versions from the blob store themselves (by content hash), once per version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.services.explaining import ComputeRequest, ComputeUnavailableError, Explained, compute
from api.settings import available_cores
from explain import errors
from explain.errors import ExplainError

log = logging.getLogger("rationale.workers")


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: str
    message: str


# Errors a child reports by class name; the parent raises the same class with the same message.
_ERRORS: dict[str, type[ExplainError]] = {
    cls.__name__: cls
    for cls in (
        errors.ExplainError,
        errors.ArtifactError,
        errors.UnsupportedModelError,
        errors.UnknownMethodError,
        errors.BudgetExceededError,
        errors.ExplainerFailedError,
    )
}


class ComputePool:
    """A process pool for explanation batches; thread-safe; restarts itself after a child dies."""

    def __init__(self, *, processes: int, blob_dir: Path, trusted_types: frozenset[str] = frozenset()) -> None:
        if processes < 1:
            raise ValueError("a compute pool needs at least one process")
        self.processes = processes
        self._blob_dir = blob_dir
        self._trusted_types = trusted_types  # RATIONALE_SKOPS_TRUSTED_TYPES, for the children's model loads
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._stopped = False

    def start(self) -> None:
        """Start the children and import the explainer libraries in them before the first batch."""
        executor = self._ensure()
        for _ in range(self.processes):
            executor.submit(_warm_child)

    def explain(self, request: ComputeRequest) -> list[Explained]:
        """Run one batch in a child; raises the child's ExplainError, or ComputeUnavailableError."""
        executor = self._ensure()
        try:
            future: Future[list[Explained] | _Failure] = executor.submit(_explain_in_child, request)
        except BrokenProcessPool as exc:
            self._discard(executor)
            raise ComputeUnavailableError(f"explanation process died: {exc}") from exc
        except RuntimeError as exc:  # shut down between _ensure and submit
            raise ComputeUnavailableError(f"the explanation processes are stopping: {exc}") from exc
        try:
            outcome = future.result()
        except BrokenProcessPool as exc:
            self._discard(executor)
            raise ComputeUnavailableError(f"explanation process died: {exc}") from exc
        if isinstance(outcome, _Failure):
            raise _ERRORS.get(outcome.kind, errors.ExplainerFailedError)(outcome.message)
        return outcome

    def stop(self, timeout: float = 10.0) -> None:
        """Let a running batch finish for up to ``timeout`` seconds, then kill the children: a batch cut
        short this way is not lost, its jobs' leases lapse and another worker runs them."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._stopped = True
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)

    def child_pids(self) -> list[int]:
        """Process ids of the live children (for operators, and for the crash test)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.is_alive()]

    def _ensure(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._stopped:
                raise ComputeUnavailableError("the explanation processes are stopping")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    # spawn, not fork: the parent runs threads (HTTP, workers, heartbeat) that fork would copy
                    # mid-flight, locks included
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_child,
                    initargs=(
                        str(self._blob_dir),
                        os.getpid(),
                        sorted(self._trusted_types),
                        threads_per_child(self.processes),
                    ),
                )
            return self._executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
        log.warning("an explanation process died; starting a new one for the next batch")


# ---- in the child ---------------------------------------------------------------------------------------

_models: Any = None  # the child's ModelCache
_threads = 1  # native threads (BLAS, OpenMP) each child may run
_modules_when_limited = -1


def threads_per_child(processes: int) -> int:
    """The cores divided among the children: BLAS and OpenMP pools start one thread per core in every
    process, and N children each spinning up the machine's core count of threads fight over the cores
    (measured: KernelSHAP in two children ran at half the speed of one process per core)."""
    return max(1, available_cores() // max(1, processes))


def _limit_threads() -> None:
    """Cap the native thread pools of every library loaded so far; again once more libraries are loaded
    (explainers import theirs on first use)."""
    global _modules_when_limited
    if len(sys.modules) == _modules_when_limited:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=_threads)
    _modules_when_limited = len(sys.modules)


def _init_child(blob_dir: str, parent_pid: int, trusted_types: list[str], threads: int = 1) -> None:
    global _models, _threads
    _threads = threads
    _die_with(parent_pid)
    from api.services.model_cache import ModelCache
    from storage.blobs import BlobStore

    _models = ModelCache(blobs=BlobStore(Path(blob_dir)), trusted_types=frozenset(trusted_types))


def _die_with(parent_pid: int) -> None:
    """Linux: be killed when the parent dies, even by SIGKILL, rather than finish a batch nobody awaits."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the child exits when it finds its pipe closed
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _warm_child() -> None:
    from api.heap import freeze_long_lived
    from api.workers.warmup import import_explainers

    import_explainers()
    _limit_threads()
    freeze_long_lived()


def _explain_in_child(request: ComputeRequest) -> list[Explained] | _Failure:
    try:
        loaded = _models.get(request.model)
        _limit_threads()
        return compute(request, loaded)
    except ExplainError as exc:  # custom constructors do not survive pickling: send class name and message
        return _Failure(type(exc).__name__, str(exc))
