"""The server's side of a worker process: hand it a step, watch it, and stop
it when it must stop.

A :class:`WorkerProcess` is one long-lived interpreter (started once, reused
for step after step: no process start per step). While its step runs, the
server's thread for it watches four things: the step's end, the process's
death (a signal, ``os._exit``, the OOM killer), a cancel request and the
step's timeout. Cancel and timeout ask the step to stop cooperatively first;
a step still running after the grace period has its process terminated
(SIGTERM, then SIGKILL) and a fresh one takes its place.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from steptrail.domain.aggregates import CANCELLED, FAILED
from steptrail.domain.steprun import StepRequest, StepResult
from steptrail.domain.worker import WorkerSpec, worker_main

POLL_SECONDS = 0.05  # how often a watching thread looks at cancel, timeout and stop
TERMINATE_GRACE = 2.0  # seconds from SIGTERM to SIGKILL


def how_it_ended(exitcode: int | None) -> str:
    """``killed by SIGABRT`` / ``exited with code 3``, for a step's error."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class WorkerProcess:
    def __init__(self, spec: WorkerSpec, name: str, on_saved: Callable[[int], None]) -> None:
        self.spec = spec
        self.name = name
        self.on_saved = on_saved
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded server
        self.running: str | None = None  # the step job it runs now
        self.process, self.conn = self._spawn()

    def describe(self) -> dict[str, object]:
        """How /healthz names this worker: its process and what it runs."""
        return {
            "name": self.name,
            "pid": self.process.pid,
            "alive": self.process.is_alive(),
            "step_job_id": self.running,
        }

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=worker_main, args=(child, self.spec), name=self.name, daemon=True
        )
        process.start()
        child.close()
        return process, parent

    def run(
        self,
        request: StepRequest,
        cancel: threading.Event,
        stop: threading.Event,
        timeout: float | None,
        grace: float,
    ) -> StepResult:
        """Run one step in the process and return how it ended."""
        self.running = request.step_job_id
        try:
            with contextlib.suppress(OSError):  # it died: the poll below sees its pipe's end
                self.conn.send(("run", request))
            started = time.monotonic()
            reason: StopReason | None = None
            asked_at = 0.0
            while True:
                if self.conn.poll(POLL_SECONDS):
                    try:
                        message = self.conn.recv()
                    except (EOFError, OSError):
                        return self._died()
                    if message[0] == "done":
                        result: StepResult = message[1]
                        return reason.cooperative(result) if reason else result
                    self.on_saved(message[1])
                # Checked after every message too: a busy step's wake-ups come
                # faster than the poll's timeout and must not hide a cancel.
                now = time.monotonic()
                if reason is None:
                    reason = _reason(cancel, stop, timeout, now - started)
                    if reason is not None:
                        asked_at = now
                        self._ask_to_stop()
                elif now - asked_at > grace:
                    if stop.is_set():
                        self.stop()  # the server is stopping: no fresh process
                    else:
                        self.restart()
                    return reason.forced(grace)
        finally:
            self.running = None

    def _ask_to_stop(self) -> None:
        with contextlib.suppress(OSError):  # it died: the next poll sees its pipe's end
            self.conn.send(("cancel",))

    def _died(self) -> StepResult:
        self.process.join(TERMINATE_GRACE)
        ended = how_it_ended(self.process.exitcode)
        self.restart()
        return StepResult(FAILED, f"worker process {ended}", retryable=True)

    def restart(self) -> None:
        """End the process (whatever it is doing) and start a fresh one."""
        self.stop()
        self.process, self.conn = self._spawn()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(TERMINATE_GRACE)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(TERMINATE_GRACE)
        self.conn.close()


class StopReason:
    """Why the server stops a running step, and what the step's end then says."""

    def __init__(self, status: str, error: str) -> None:
        self.status = status
        self.error = error

    def cooperative(self, result: StepResult) -> StepResult:
        """The step stopped when asked (or ended meanwhile)."""
        if result.status == CANCELLED:
            return StepResult(self.status, self.error)
        return result

    def forced(self, grace: float) -> StepResult:
        return StepResult(
            self.status, f"{self.error} (still running {grace:g} s later: its worker was stopped)"
        )


def _reason(
    cancel: threading.Event, stop: threading.Event, timeout: float | None, elapsed: float
) -> StopReason | None:
    if cancel.is_set():
        return StopReason(CANCELLED, "cancelled")
    if stop.is_set():
        return StopReason(CANCELLED, "interrupted: the server stopped")
    if timeout is not None and elapsed > timeout:
        return StopReason(FAILED, f"timed out after {timeout:g} s")
    return None
