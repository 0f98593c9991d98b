"""A step that fans out: ``ctx.map(fn, items)`` runs ``fn(child_ctx, item)``
for every item as a child step job.

A child is a StepJob of its own (seq-numbered lines, counts, progress, status)
that records its parent step and its index. The parent queues its children in
one transaction with its own ``ChildrenQueued`` (so whoever closes the parent
can close them), then runs them in its worker process, at most
``concurrency`` at once, each on a thread of its own where the child is the
current step: plain ``logging`` lands in the child. The waiting parent lends
its worker slot to its children, so a server with one worker process never
deadlocks on a fan-out.

A child's id is derived from the job, the step, the map's number within the
step, the item's index and the child's attempt, and not from the parent's
attempt: a retried step (after a failure, a crash or a SIGKILL) finds the
children its earlier attempts ran, keeps the results of those that
succeeded and runs the others again as new attempts.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from steptrail.domain.aggregates import (
    ABANDONED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SKIPPED,
    STEP_FINAL,
    SUCCEEDED,
    StepJob,
    child_job_id_for,
    children_of,
)
from steptrail.domain.context import Cancelled, StepContext
from steptrail.domain.steprecorder import Flusher, StepRecorder
from steptrail.domain.steprun import guarded_call
from steptrail.domain.store import JobStore
from steptrail.domain.values import cut, safe_str

MAX_LABEL_CHARS = 200
QUEUE_PER_SAVE = 1000  # children queued per transaction
LISTED_FAILURES = 10  # failed children named in the step's error
POLL_SECONDS = 0.05  # how often a child claimed elsewhere is looked at


class FanOutError(Exception):
    """More children failed than the map allows."""


@dataclass(frozen=True)
class FanOutHost:
    """What a worker process lends a fan-out: its store connection, its
    flusher (children's lines are saved like any step's) and its name."""

    store: JobStore
    flusher: Flusher
    worker_id: str


def function_ref(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, which any worker process
    can import; anything else (a lambda, a closure, a method) is refused."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not callable(fn) or module is None or "<" in qualname or "." in qualname:
        raise TypeError(
            f"ctx.map needs a module-level function of a jobs module, got {fn!r}"
            " (a lambda, closure or method cannot be run as a child)"
        )
    if resolve_function(f"{module}:{qualname}") is not fn:
        raise TypeError(f"ctx.map: {module}.{qualname} is not importable as that name")
    return f"{module}:{qualname}"


def resolve_function(ref: str) -> Callable[..., Any] | None:
    module_name, _, name = ref.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
    fn = getattr(module, name, None)
    return fn if callable(fn) else None


def _item_json(index: int, item: Any) -> str:
    try:
        return orjson.dumps(item).decode()
    except TypeError as e:
        raise TypeError(f"ctx.map: item {index} is not a JSON value: {e}") from None


def _label(item: Any) -> str:
    return cut(item if isinstance(item, str) else safe_str(item), MAX_LABEL_CHARS)


class ChildContext(StepContext):
    """What a child sees: a step context, plus its item and index."""

    item: Any
    index: int


def _get(store: JobStore, child_id: Any) -> StepJob | None:
    try:
        step: StepJob = store.repository.get(child_id)
    except AggregateNotFoundError:
        return None
    return step


def close_children(store: JobStore, parent_step_job_id: str, status: str, reason: str) -> int:
    """End every child of a step that has not ended (its process died, or
    was stopped): queued and running children become ``status``. Returns how
    many were closed. A child whose runner writes first is left to it."""
    parent = _get(store, UUID(parent_step_job_id))
    if parent is None:
        return 0
    closed = 0
    for child_id in children_of(parent):
        child = _get(store, UUID(child_id))
        if child is None or child.status in STEP_FINAL:
            continue
        child.complete(status, reason)
        try:
            store.save(child)
        except IntegrityError:
            continue
        closed += 1
    return closed


class FanOut:
    """One ``ctx.map`` call, in the parent step's worker process."""

    def __init__(
        self,
        host: FanOutHost,
        parent: StepRecorder,
        definition: str,
        params: dict[str, Any],
    ) -> None:
        self.host = host
        self.store = host.store
        self.parent = parent
        self.definition = definition
        self.params = params
        self._lock = threading.Lock()
        self._todo: deque[StepJob] = deque()
        self._outcomes: dict[int, StepJob] = {}  # index -> its last attempt, ended

    def run(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        concurrency: int,
        retries: int,
        max_failures: int,
        cancel: threading.Event,
    ) -> list[Any]:
        ref = function_ref(fn)
        if concurrency < 1 or retries < 0 or max_failures < 0:
            raise ValueError("ctx.map: concurrency >= 1, retries >= 0, max_failures >= 0")
        items = list(items)
        item_json = [_item_json(i, item) for i, item in enumerate(items)]
        map_no = self._next_map_no()
        self._queue_all(map_no, ref, items, item_json)
        workers = [
            threading.Thread(
                target=contextvars.Context().run,
                args=(self._work, fn, retries, cancel),
                name=f"steptrail-child-{i}",
                daemon=True,
            )
            for i in range(min(concurrency, len(self._todo)) or 0)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        if cancel.is_set() or self.parent.stopped:
            raise Cancelled("cancelled")
        return self._results(len(items), max_failures)

    # queueing

    def _next_map_no(self) -> int:
        """Maps are numbered in the order a step calls them (0, 1, ...): the
        same step code run again numbers them the same way."""
        n = self.parent.maps_started
        self.parent.maps_started = n + 1
        return n

    def _queue_all(self, map_no: int, ref: str, items: list[Any], item_json: list[str]) -> None:
        """Find each item's last attempt: an ended success is kept, a queued
        one runs as it is, anything else runs again as a new attempt."""
        step = self.parent.step
        new: list[StepJob] = []
        for index, item in enumerate(items):
            last = self._last_attempt(step, map_no, index)
            if last is not None and last.status in (SUCCEEDED, SKIPPED):
                self._outcomes[index] = last
            elif last is not None and last.status == QUEUED:
                self._todo.append(last)
            else:
                if last is not None and last.status == RUNNING:  # its process died
                    self._close(last, ABANDONED, "abandoned: its step ran again")
                attempt = 1 if last is None else last.attempt + 1
                child = StepJob.queue_child(
                    step,
                    map_no,
                    index,
                    attempt,
                    label=_label(item),
                    function=ref,
                    item_json=item_json[index],
                )
                new.append(child)
                self._todo.append(child)
        for i in range(0, len(new), QUEUE_PER_SAVE):
            self._save_queued(new[i : i + QUEUE_PER_SAVE])

    def _last_attempt(self, step: StepJob, map_no: int, index: int) -> StepJob | None:
        last = None
        attempt = 1
        while True:
            child_id = child_job_id_for(step.manager_id, step.step_index, map_no, index, attempt)
            found = _get(self.store, child_id)
            if found is None:
                return last
            last, attempt = found, attempt + 1

    def _save_queued(self, children: list[StepJob]) -> None:
        with self._lock:  # the parent's aggregate is shared by the child threads
            self.parent.step.children_queued([str(c.id) for c in children])
            self.parent.save_along(*children)

    def _close(self, child: StepJob, status: str, reason: str) -> None:
        child.complete(status, reason)
        with contextlib.suppress(IntegrityError):  # its runner wrote first: its end is its own
            self.store.save(child)

    # running

    def _take(self, cancel: threading.Event) -> StepJob | None:
        with self._lock:
            if cancel.is_set() or self.parent.stopped:
                # Every child not started yet ends now, in one transaction.
                left = list(self._todo)
                self._todo.clear()
                for child in left:
                    child.complete(CANCELLED, "cancelled before it started")
                    self._outcomes[child.child_index] = child
                if left:
                    self.store.save(*left)
                return None
            return self._todo.popleft() if self._todo else None

    def _work(self, fn: Callable[..., Any], retries: int, cancel: threading.Event) -> None:
        while (child := self._take(cancel)) is not None:
            first = child.attempt
            while True:
                child = self._run_child(fn, child, cancel)
                retry = child.status not in (SUCCEEDED, SKIPPED, CANCELLED)
                if not retry or child.attempt - first >= retries or cancel.is_set():
                    break
                child = self._requeue(child)
            with self._lock:
                self._outcomes[child.child_index] = child

    def _requeue(self, failed: StepJob) -> StepJob:
        child = StepJob.queue_child(
            self.parent.step,
            failed.map_no,
            failed.child_index,
            failed.attempt + 1,
            label=failed.label,
            function=failed.function,
            item_json=failed.item_json,
        )
        self._save_queued([child])
        return child

    def _run_child(
        self, fn: Callable[..., Any], child: StepJob, cancel: threading.Event
    ) -> StepJob:
        child.claim(self.host.worker_id)
        try:
            self.store.save(child)
        except IntegrityError:  # claimed by another process: wait for its end
            return self._wait_for(child.id, cancel)
        recorder = StepRecorder(self.store, child, self.host.flusher.wake)
        recorder.masker = self.parent.masker  # the job's secrets, and the step's
        self.host.flusher.add(recorder)
        try:
            ctx = ChildContext(recorder, self.definition, dict(self.params), cancel)
            ctx.item = orjson.loads(child.item_json)
            ctx.index = child.child_index
            status, error, tb, value = guarded_call(
                recorder, lambda: fn(ctx, ctx.item), f"{self.definition}.{child.step_name}"
            )
            result_json = None
            if status == SUCCEEDED:
                try:
                    result_json = orjson.dumps(value).decode()
                except TypeError as e:
                    status, error = FAILED, f"the result is not a JSON value: {e}"
            recorder.close()
        finally:
            self.host.flusher.remove(recorder)
        child = recorder.step
        if recorder.lost:
            return self._wait_for(child.id, cancel)
        if recorder.failure is not None:
            status, error, result_json = FAILED, recorder.failure, None
        if result_json is not None:
            child.store_result(result_json)
        child.complete(status, error, tb)
        try:
            self.store.save(child)
        except IntegrityError:
            return self._wait_for(child.id, cancel)
        return child

    def _wait_for(self, child_id: Any, cancel: threading.Event) -> StepJob:
        """A child another writer holds: its end, as that writer records it."""
        while True:
            child = _get(self.store, child_id)
            assert child is not None
            if child.status in STEP_FINAL:
                return child
            time.sleep(POLL_SECONDS)

    # the answer

    def _results(self, total: int, max_failures: int) -> list[Any]:
        failed = [
            c for _, c in sorted(self._outcomes.items()) if c.status not in (SUCCEEDED, SKIPPED)
        ]
        if len(failed) > max_failures:
            named = ", ".join(
                f"#{c.child_index} {c.label!r} ({c.status}: {c.error})"
                for c in failed[:LISTED_FAILURES]
            )
            more = len(failed) - LISTED_FAILURES
            raise FanOutError(
                f"{len(failed)} of {total} children failed: {named}"
                + (f" and {more} more" if more > 0 else "")
            )
        return [
            orjson.loads(c.result_json) if c.result_json is not None else None
            for _, c in sorted(self._outcomes.items())
        ]
