"""Publishing signed checkpoints: on demand, and every N entries or T seconds in the background."""

from __future__ import annotations

import logging
import threading
import time

from api.container import Services
from audit.checkpoint import publish_checkpoint
from audit.port import StoredCheckpoint

log = logging.getLogger("rationale.checkpoints")


def publish_now(services: Services) -> StoredCheckpoint | None:
    """Sign the current tree head (None while the ledger is empty); no-op if nothing changed."""
    with services.db.unit_of_work() as uow:
        if uow.ledger.size() == 0:
            return None
        return publish_checkpoint(
            uow.ledger,
            ledger=services.ledger,
            keyring=services.keyring,
            origin=services.settings.origin,
            clock=services.clock,
            anchors=[k.as_stored() for k in services.settings.trust_anchors],
        )


class CheckpointPublisher:
    """A background thread: publishes when N entries or T seconds have passed since the last checkpoint."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _due(self) -> bool:
        settings = self.services.settings
        with self.services.db.unit_of_work(write=False) as uow:
            size = uow.ledger.size()
            latest = uow.ledger.latest_checkpoint()
        published = latest.tree_size if latest else 0
        if size == published:
            return False
        waited = time.monotonic() - self._last
        return size - published >= settings.checkpoint_every_entries or waited >= settings.checkpoint_every_seconds

    def _run(self) -> None:
        tick = min(1.0, self.services.settings.checkpoint_every_seconds)
        while not self._stop.wait(tick):
            try:
                if self._due():
                    publish_now(self.services)
                    self._last = time.monotonic()
            except Exception:
                log.exception("checkpoint publication failed; will retry")
