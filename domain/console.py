"""The server console: every stored line, prefixed with job and step, in seq order.

The console is a convenience, never part of the truth. Lines reach it only
after they are stored, and it writes from a thread of its own: a console that
is slow, blocked (a pipe nobody reads) or closed (``steptrail serve | head``)
costs console text, never a step's progress or outcome.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from steptrail.domain.vocabulary import LineField

MAX_PENDING_LINES = 50_000  # beyond this a blocked console drops text (the lines stay stored)


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):  # StringIO, a closed or detached stream
        return None


def step_tag(step_name: str, attempt: int) -> str:
    """A step job: ``fetch#1`` is attempt 1 of step ``fetch``."""
    return f"{step_name}#{attempt}"


def child_tag(step: str, index: int, attempt: int) -> str:
    """A child of the step tagged ``step``: ``fetch#1.17`` is child 17 of
    ``fetch#1``; a child's later attempts add theirs (``fetch#1.17#2``), so
    no two step jobs share a tag and seqs under one tag never repeat."""
    return f"{step}.{index}" if attempt == 1 else f"{step}.{index}#{attempt}"


def console_where(job_id: str, tag: str) -> str:
    """The prefix of a line: ``[1adde60b/fetch#1.17]``."""
    return f"[{job_id[:8]}/{tag}]"


def console_line(clock: str, level: str, where: str, seq: int, logger: str, message: str) -> str:
    """One line in the console's format (``steptrail tail`` prints the same)."""
    text = message.replace("\n", "\n    ")
    return f"{clock} {level:<8} {where} {seq:>6} {logger}: {text}"


class ConsoleEcho:
    """Prints stored lines from its own thread; ``write`` never blocks."""

    def __init__(self, stream: TextIO, render: Callable[[str], str] = str) -> None:
        self.stream = stream
        self.render = render  # makes text safe for a terminal
        self._pending: deque[tuple[str, list[list[Any]]]] = deque()
        self._pending_lines = 0
        self._dropped = 0
        self._broken = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="steptrail-console", daemon=True)
        self._thread.start()

    def write(self, where: str, lines: list[list[Any]]) -> None:
        """Queue stored lines ``[seq, ts, level, logger, message, fields]`` for
        printing under the prefix ``where`` (``[job/step#attempt]``)."""
        with self._cond:
            if self._broken:
                return
            if self._pending_lines + len(lines) > MAX_PENDING_LINES:
                self._dropped += len(lines)
                return
            self._pending.append((where, lines))
            self._pending_lines += len(lines)
            self._cond.notify()

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued is printed (or the console broke)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending_lines and not self._broken:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                where, lines = self._pending[0]
                dropped, self._dropped = self._dropped, 0
            out = [self._format(where, line) for line in lines]
            if dropped:
                out.insert(
                    0, f"steptrail: the console fell behind; {dropped} stored lines not shown\n"
                )
            try:
                self._print("".join(out))
            except (OSError, ValueError) as e:  # closed pipe, closed file
                self._give_up(e)
                return
            with self._cond:
                self._pending.popleft()
                self._pending_lines -= len(lines)
                self._cond.notify_all()

    def _print(self, text: str) -> None:
        """Write to the stream's file descriptor when it has one: a write
        blocked on a full pipe then holds no lock of the stream's, so nothing
        else (not even the interpreter's exit) waits for it."""
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        fd = _fileno(self.stream)
        if fd is None:
            try:
                self.stream.write(text)
            except UnicodeEncodeError:  # a console that cannot show every character
                self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self.stream.flush()
            return
        data = text.encode(encoding, "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]

    def _format(self, where: str, line: list[Any]) -> str:
        f = LineField
        clock = time.strftime("%H:%M:%S", time.localtime(line[f.TS]))
        text = console_line(
            clock, line[f.LEVEL], where, line[f.SEQ], line[f.LOGGER], line[f.MESSAGE]
        )
        return self.render(text) + "\n"

    def _give_up(self, error: Exception) -> None:
        with self._cond:
            self._broken = True
            self._pending.clear()
            self._pending_lines = 0
            self._cond.notify_all()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                f"steptrail: console output stopped ({error}); lines are still stored\n"
            )
