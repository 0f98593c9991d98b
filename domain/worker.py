"""A worker process: where step code runs, away from the server.

The server process keeps the API, the stream and the projection; step code
(which may burn CPU, block, crash the interpreter or call ``os._exit``) runs
here, one step at a time. The worker writes the step's events to the store
itself and tells the server of every save over its pipe, so the projection
follows at once. The pipe carries only requests, wake-ups and results: the
store is the only channel for facts.

Messages (tuples) from the server: ``("run", StepRequest)``, ``("cancel",)``.
To the server: ``("saved", position)``, ``("done", StepResult)``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from steptrail.domain.aggregates import FAILED
from steptrail.domain.builtin_jobs import load_registry
from steptrail.domain.commands import get_step
from steptrail.domain.definitions import Registry
from steptrail.domain.fanout import FanOutHost
from steptrail.domain.logbridge import install as install_log_bridge
from steptrail.domain.steprecorder import Flusher, StepRecorder
from steptrail.domain.steprun import StepRequest, StepResult, run_step
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.domain.values import describe_exception, format_traceback


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a fresh worker interpreter needs to run steps (picklable)."""

    location: StoreLocation
    job_sources: tuple[str, ...] = ()  # --jobs modules and files, loaded in the worker too
    capture_level: int = logging.DEBUG


NICENESS = 10  # below the server: CPU-bound steps leave the API and the stream their share


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """The worker process's entry point: serve step requests until the
    server goes away (its end of the pipe closes)."""
    os.nice(NICENESS)
    # Ctrl-C in a terminal signals the whole process group: the server stops
    # its workers itself, after giving running steps the cancel grace.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Worker(conn, spec).serve()


class Worker:
    def __init__(self, conn: Connection, spec: WorkerSpec) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()
        install_log_bridge(spec.capture_level)
        self.registry: Registry = load_registry(spec.job_sources)
        self.store = JobStore(spec.location, in_worker=True)
        self.store.on_saved(lambda position: self._send(("saved", position)))
        self.flusher = Flusher()
        self.flusher.start()
        self._cancel = threading.Event()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"  # what children record
        self._requests: queue.Queue[tuple[StepRequest, threading.Event]] = queue.Queue()

    def serve(self) -> None:
        """Steps run on this (the main) thread, as they would in a script of
        their own (signal handlers, libraries that insist on the main
        thread); a reader thread takes cancel requests meanwhile."""
        threading.Thread(target=self._read, name="steptrail-worker-pipe", daemon=True).start()
        while True:
            request, cancel = self._requests.get()
            self._run(request, cancel)

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the server is gone: so is every reason to run its steps
            if message[0] == "cancel":
                self._cancel.set()
            elif message[0] == "run":
                self._cancel = threading.Event()
                self._requests.put((message[1], self._cancel))

    def _run(self, request: StepRequest, cancel: threading.Event) -> None:
        try:
            result = self._run_step(request, cancel)
        except BaseException as e:  # the worker's own trouble: say so, keep serving
            result = StepResult(FAILED, describe_exception(e), format_traceback(e))
        self._send(("done", result))

    def _run_step(self, request: StepRequest, cancel: threading.Event) -> StepResult:
        definition = self.registry.get(request.definition)
        step = get_step(self.store, request.step_job_id)
        recorder = StepRecorder(self.store, step, self.flusher.wake)
        self.flusher.add(recorder)
        try:
            host = FanOutHost(self.store, self.flusher, self.worker_id)
            return run_step(recorder, definition, request.params, cancel, request.index, host)
        finally:
            self.flusher.remove(recorder)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                os._exit(0)  # the server is gone
