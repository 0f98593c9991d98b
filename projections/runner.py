"""The projection runner: follows the event store and applies new events to the
read model in batches, each batch with its tracking position in one transaction.

It is the read model's only writer. After a restart it resumes from the
tracked position, so every event is applied exactly once.
"""

from __future__ import annotations

import logging
import threading

from domain.store import JobStore
from projections.notifier import PositionNotifier
from projections.readmodel import ReadModel

log = logging.getLogger("steptrail.projection")

BATCH_NOTIFICATIONS = 200
POLL_SECONDS = 0.5  # saves in this process wake the runner at once; others are polled


class ProjectionRunner:
    def __init__(
        self,
        store: JobStore,
        readmodel: ReadModel,
        notifier: PositionNotifier,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.readmodel = readmodel
        self.notifier = notifier
        self.poll_seconds = poll_seconds
        self.error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        store.on_saved(lambda _position: self._wake.set())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="steptrail-projection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def catch_up(self) -> int:
        """Apply everything stored so far; return the position reached."""
        while self.process_batch():
            pass
        return self.readmodel.position()

    def process_batch(self) -> int:
        """Apply the next batch of events; return how many were applied."""
        position = self.readmodel.position()
        notifications = self.store.recorder.select_notifications(
            position, BATCH_NOTIFICATIONS, inclusive_of_start=False
        )
        if not notifications:
            self.notifier.publish(position)
            return 0
        events = [(n.id, self.store.mapper.to_domain_event(n)) for n in notifications]
        self.readmodel.apply(position, events)
        self.notifier.publish(notifications[-1].id)
        return len(notifications)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                applied = self.process_batch()
                self.error = None
            except Exception as e:
                # Never skip an event: report, wait, and try the same batch again.
                self.error = f"{type(e).__name__}: {e}"
                log.exception("projection failed at position %s", self.readmodel.position())
                self._stop.wait(1.0)
                continue
            if not applied:
                self._wake.wait(self.poll_seconds)
