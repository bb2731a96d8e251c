"""The composition root: the only place that turns settings into live objects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.clock import Clock, utc_now
from api.metrics import Metrics
from api.services.key_cache import KeyCache
from api.services.model_cache import ModelCache
from api.settings import Settings
from audit.keys import Keyring
from audit.ledger import Ledger
from explain.base import Budget
from storage.blobs import BlobStore
from storage.db import Database


@dataclass
class Services:
    """Long-lived collaborators shared by routes, the CLI and workers of one process."""

    settings: Settings
    db: Database
    blobs: BlobStore
    ledger: Ledger
    models: ModelCache
    clock: Clock
    keyring: Keyring
    metrics: Metrics = field(default_factory=Metrics)
    access_recorder: Any = None  # api/services/access_recorder.py, started on the first recorded read
    key_cache: KeyCache = field(init=False)
    _listeners: list[Callable[[int], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.key_cache = KeyCache(self.settings.key_cache_seconds)

    @property
    def default_budget(self) -> Budget:
        return Budget(
            max_model_calls=self.settings.budget_max_model_calls, max_seconds=self.settings.budget_max_seconds
        )

    def on_jobs_queued(self, listener: Callable[[int], None]) -> None:
        """Register a callback run after jobs are committed, with how many (wakes the local pool, or
        dispatches to Celery)."""
        with self._lock:
            self._listeners.append(listener)

    def jobs_queued(self, count: int = 1) -> None:
        for listener in list(self._listeners):
            listener(count)

    def close(self) -> None:
        if self.access_recorder is not None:
            self.access_recorder.stop()
        self.db.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None, check_schema: bool = True) -> Services:
    """Wire a process's services. Refuses to start on a stale schema, naming the command that fixes it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.effective_database_url)
    if check_schema:
        db.check_schema()
    blobs = BlobStore(settings.blob_dir)
    the_clock = clock or utc_now
    keyring = Keyring(settings.key_dir, name=settings.origin, clock=the_clock)
    keyring.ensure(supplied=settings.signing_key_file)
    return Services(
        settings=settings,
        db=db,
        blobs=blobs,
        ledger=Ledger(clock=the_clock),
        models=ModelCache(
            blobs=blobs, freeze_after_load=settings.gc_freeze, trusted_types=settings.extra_trusted_types
        ),
        clock=the_clock,
        keyring=keyring,
    )
