"""Where a log line is born and stored: the running step's recorder.

A :class:`StepRecorder` holds one running StepJob aggregate in memory (its only
writer). Lines are appended to a buffer by any thread; the :class:`Flusher`
moves them into the aggregate, which numbers them, and saves them as StepLogged
events. The flush is a group commit: the first line after a quiet spell wakes
the flusher at once (a quiet step's line is stored within milliseconds), and
while a save runs the next lines gather into the next event (under load, few
large events).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from steptrail.domain.aggregates import CLOSES_GROUP, StepJob
from steptrail.domain.masking import Masker
from steptrail.domain.store import JobStore
from steptrail.domain.values import (
    MAX_PROGRESS_MESSAGE,
    cut,
    describe_exception,
    finite_number,
    text,
)

LINES_PER_EVENT = 1000  # measured: ~500-1000 lines per event is the sweet spot
MAX_BUFFERED = 20_000  # a step logging faster than we store waits (backpressure)
HEARTBEAT_TICK = 0.25  # how often the flusher looks at heartbeats when nothing is logged
GATHER_SECONDS = 0.01  # after a save, lines gather this long before the next one
HEARTBEAT_INTERVAL = 1.0  # StepProgress is re-recorded at least this often: the lease

log = logging.getLogger(__name__)


class StepRecorder:
    """Owns one running StepJob: buffers lines, records progress, saves.

    Two ways to stop owning it: ``lost`` (another writer changed the step: a
    reaper closed it) and ``failure`` (the store refused a save: disk full, a
    locked or read-only file). Either asks the step to stop; a failure also
    becomes the step's error."""

    def __init__(
        self,
        store: JobStore,
        step: StepJob,
        wake_flusher: Callable[[], None],
    ) -> None:
        self.store = store
        self.step = step
        self.lost = False
        self.failure: str | None = None
        self.closed = False  # set by close(): nothing is stored after the last lines
        self.unstored = 0  # lines that could not be stored after a failure
        self._wake_flusher = wake_flusher
        # Appended by any thread, taken by the flusher: deque's append and
        # popleft are atomic, so the logging hot path takes no lock.
        self._buffer: deque[list[Any]] = deque()
        self._unsaved: list[list[Any]] = []  # raw lines in pending events
        self._lock = threading.RLock()  # guards the aggregate and its saves
        self._last_progress_at = time.monotonic()
        self._warned: set[str] = set()
        self.masker = Masker()  # secrets of this step: masked in every later line
        self.maps_started = 0  # ctx.map calls so far (domain/fanout.py numbers them)

    @property
    def stopped(self) -> bool:
        """Whether the step should stop: its events can no longer be stored."""
        return self.lost or self.failure is not None

    def append(
        self,
        ts: float,
        level: str,
        logger: str,
        message: str,
        fields: Any,
        group: str | int | None = None,
    ) -> None:
        """Called from logging, on any thread, with values already made storable;
        ``group``: the name of the group the line opens, or CLOSES_GROUP."""
        if self.closed or self.stopped:
            self._not_stored(level, logger, message)
            return
        self._buffer.append([ts, level, logger, message, fields, group])
        size = len(self._buffer)
        # 2: an end of group held back (see _take_buffered_lines) may be first
        if size <= 2 or size == LINES_PER_EVENT:
            self._wake_flusher()
        elif size >= MAX_BUFFERED:
            self.flush()

    def progress(self, current: object, total: object, message: object) -> None:
        """Record progress. A value that is not a finite real number is not
        stored: a bad ``current`` keeps the last one, a bad ``total`` becomes
        unknown, and the step gets one WARNING line saying so."""
        number = finite_number(current)
        limit = None if total is None else finite_number(total)
        with self._lock:
            if number is None:
                self._warn("current", current)
                number = self.step.progress["current"]
            if total is not None and limit is None:
                self._warn("total", total)
            self._take_buffered_lines()  # lines logged before this progress come first
            self.step.report_progress(
                number, limit, self.masker.text(text(message, MAX_PROGRESS_MESSAGE))
            )
            self._last_progress_at = time.monotonic()

    def _warn(self, what: str, value: object) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        logging.getLogger("steptrail.progress").warning(
            "progress %s must be a finite number, got %s: %s",
            what,
            type(value).__name__,
            value,
        )

    def flush(self, heartbeat: bool = False) -> None:
        """Save buffered lines (and a heartbeat when due) in one transaction."""
        with self._lock:
            if self.stopped or self.closed:
                return
            self._take_buffered_lines()
            if heartbeat and time.monotonic() - self._last_progress_at >= HEARTBEAT_INTERVAL:
                p = self.step.progress
                self.step.report_progress(p["current"], p["total"], p["message"])
                self._last_progress_at = time.monotonic()
            self._save()

    def close(self) -> None:
        """Store every line logged so far; lines logged after this are refused
        (a thread the step started and did not join, logging on)."""
        with self._lock:
            self.closed = True
            if self.lost:
                return
            self._take_buffered_lines()
            self._save()  # after a failure: one more try, the space may be back
            if self.failure is not None:
                self.unstored += len(self._buffer)
                self._buffer.clear()

    def save_along(self, *others: Aggregate) -> None:
        """Save other aggregates (a step's queued children) in the same
        transaction as this step's pending events, its lines so far first."""
        with self._lock:
            if self.stopped:
                raise RuntimeError(self.failure or "the step is no longer stored")
            self._take_buffered_lines()
            try:
                self.store.save(self.step, *others)
            except Exception as e:
                self._store_failed(e)
                raise
            self._unsaved = []

    def end_group(self) -> None:
        """Close the innermost group without a line of its own (the end of a
        ``with ctx.group(...)`` block)."""
        if not (self.closed or self.stopped):
            self._buffer.append([CLOSES_GROUP])

    def _take_buffered_lines(self) -> None:
        take = self._buffer.popleft
        raw = [take() for _ in range(len(self._buffer))]
        chunk: list[list[Any]] = []
        lines = 0
        for entry in raw:
            chunk.append(entry)
            lines += len(entry) > 1  # an end of group alone is no line
            if lines == LINES_PER_EVENT:
                self._log(chunk)
                chunk, lines = [], 0
        if lines:
            self._log(chunk)
        elif chunk:  # ends of groups wait for the next line: no event without lines
            self._buffer.extendleft(reversed(chunk))

    def _log(self, chunk: list[list[Any]]) -> None:
        self.step.log(chunk)
        self._unsaved += chunk

    def _save(self) -> None:
        if not self.step.pending_events:
            return
        try:
            self.store.save(self.step)
        except IntegrityError:
            # Another writer changed the step (a reaper closed it): it is no
            # longer ours, and the step ends at its next cancellation check.
            self.lost = True
            self._said("step %s was changed by another writer; giving it up", self.step.id)
            return
        except Exception as e:
            self._store_failed(e)
            return
        self._unsaved = []

    def _store_failed(self, error: Exception) -> None:
        """The store refused a save (disk full, read-only, locked). The
        aggregate dropped its pending events and no longer matches the store:
        a fresh copy is loaded and the unsaved lines go back to the buffer,
        so a later save (the step's completion) can still store them."""
        self.failure = f"could not store the step's events: {describe_exception(error)}"
        self._said("step %s: %s", self.step.id, self.failure)
        unsaved, self._unsaved = self._unsaved, []
        self._buffer.extendleft(reversed(unsaved))
        try:
            self.step = self.store.repository.get(self.step.id)
        except Exception:
            self.lost = True  # the store is unreadable too: whoever reaps it closes it

    def _not_stored(self, level: str, logger: str, message: str) -> None:
        self.unstored += 1
        if self.unstored == 1:
            self._said(
                "step %s is no longer stored; not stored: %s %s: %s",
                self.step.id,
                level,
                logger,
                cut(message, 200),
            )

    @staticmethod
    def _said(msg: str, *args: object) -> None:
        # outside the step's context: the step can no longer store it
        contextvars.Context().run(log.warning, msg, *args)


class Flusher:
    """One thread per process that saves every running step's lines and heartbeats."""

    def __init__(self) -> None:
        self._recorders: set[StepRecorder] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steptrail-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def add(self, recorder: StepRecorder) -> None:
        with self._lock:
            self._recorders.add(recorder)

    def remove(self, recorder: StepRecorder) -> None:
        with self._lock:
            self._recorders.discard(recorder)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(HEARTBEAT_TICK)
            self._wake.clear()
            with self._lock:
                recorders = list(self._recorders)
            for recorder in recorders:
                try:
                    recorder.flush(heartbeat=True)
                except Exception:  # one broken step must not stop the others' heartbeats
                    log.exception("flushing step %s failed", recorder.step.id)
            self._stop.wait(GATHER_SECONDS)
