"""The projection runner: follows the event store and applies new events to the
read model in batches, each batch with its tracking position in one transaction.

It is the read model's only writer: on PostgreSQL, processes compete for a
:class:`~projections.postgres_live.ProjectorLock` and the others stand by.
After a restart it resumes from the tracked position, so every event is
applied exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from steptrail.domain.store import JobStore
from steptrail.projections.deletion import prefill as prefill_deletions
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.postgres_live import ProjectorLock
from steptrail.projections.projector import Positioned, Undecodable
from steptrail.projections.readmodel import ReadModel, StaleBatch

log = logging.getLogger("steptrail.projection")

BATCH_NOTIFICATIONS = 200
POLL_SECONDS = 0.5  # saves in this process wake the runner at once; others are polled


def read_events(
    store: JobStore, after: int, limit: int, stop: int | None = None
) -> list[Positioned]:
    """Up to ``limit`` stored events after position ``after`` (none beyond
    ``stop``), decoded by the store's mapper (so upcasting applies). One that
    cannot be decoded is passed on as :class:`Undecodable`, to be recorded."""
    notifications = store.recorder.select_notifications(
        after, limit, stop=stop, inclusive_of_start=False
    )
    return [(n.id, _decode(store, n)) for n in notifications]


def _decode(store: JobStore, notification: Any) -> Any:
    try:
        return store.mapper.to_domain_event(notification)
    except Exception as e:
        return Undecodable(
            notification.originator_id,
            notification.originator_version,
            notification.topic,
            f"cannot decode: {type(e).__name__}: {e}",
        )


class ProjectionRunner:
    def __init__(
        self,
        store: JobStore,
        readmodel: ReadModel,
        notifier: PositionNotifier,
        poll_seconds: float = POLL_SECONDS,
        lock: ProjectorLock | None = None,
    ) -> None:
        self.store = store
        self.lock = lock
        self.readmodel = readmodel
        self.notifier = notifier
        self.poll_seconds = poll_seconds
        self.error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._applied: list[Callable[[Sequence[Positioned]], None]] = []
        store.on_saved(lambda _position: self._wake.set())

    def on_applied(self, listener: Callable[[Sequence[Positioned]], None]) -> None:
        """Call ``listener(events)`` after each batch this runner applies."""
        self._applied.append(listener)

    def wake(self, _payload: object = None) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="steptrail-projection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.lock is None or self.lock.owned:
            while self.process_batch():  # leave the model current for the next start
                pass
        if self.lock is not None:
            self.lock.release()

    @property
    def active(self) -> bool:
        """Whether this process is the one applying events."""
        return self.lock is None or self.lock.held()

    def catch_up(self) -> int:
        """Apply everything stored so far (if this process projects); return
        the position the read model is at."""
        while self.active and self.process_batch():
            pass
        position = self.readmodel.position()
        self.notifier.publish(position)
        return position

    def process_batch(self) -> int:
        """Apply the next batch of events; return how many were applied."""
        position = self.readmodel.position()
        if position == 0:  # an empty model: job numbers as the live model gave them
            prefill_deletions(self.store, self.readmodel.db, 0, None)
        events = read_events(self.store, position, BATCH_NOTIFICATIONS)
        if not events:
            self.notifier.publish(position)
            return 0
        self.readmodel.apply(position, events)
        self.notifier.publish(events[-1][0])
        for listener in self._applied:
            try:
                listener(events)
            except Exception:  # a listener (the console) never holds the projection up
                log.exception("a listener of the projection failed at position %s", events[-1][0])
        return len(events)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if not self.active:
                self._stop.wait(1.0)  # standby: another process projects
                continue
            try:
                applied = self.process_batch()
                self.error = None
            except StaleBatch:
                continue  # another runner moved the model; read from there
            except Exception as e:
                # Never skip an event: report, wait, and try the same batch again.
                self.error = f"{type(e).__name__}: {e}"
                log.exception("projection failed at position %s", self.readmodel.position())
                self._stop.wait(1.0)
                continue
            if not applied:
                self._wake.wait(self.poll_seconds)
