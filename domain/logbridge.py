"""The bridge from Python ``logging`` to the running step.

Installed once on the root logger. A record emitted while a step is current
(see :data:`domain.context.current_step`) goes to that step's recorder and
nowhere else; the step's console lines are printed by the recorder after the
lines are stored. Records outside any step go to an ordinary console handler.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, TextIO

import orjson

from domain.aggregates import level_name
from domain.context import current_step

_LEVEL_NAMES = {n: level_name(n) for n in (10, 20, 30, 40, 50)}
_INT64 = range(-(2**63), 2**63)


def storable_text(text: str) -> str:
    """Text every store can hold: NUL (which PostgreSQL text refuses) and lone
    surrogates (undecodable file names read with surrogateescape, say) are
    escaped instead of failing the whole batch."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)  # JSON stores keep 64 bits
    return storable_text(repr(value))


def _fields_json(fields: Any) -> str | None:
    """Structured fields as JSON text of scalars (anything else becomes its
    repr), encoded here once: stores and read models copy the text as it is."""
    if not fields or not isinstance(fields, dict):
        return None
    return orjson.dumps({storable_text(str(k)): _scalar(v) for k, v in fields.items()}).decode()


class StepLogHandler(logging.Handler):
    """Sends records made inside a step to that step's recorder, and every other
    record to ``outside`` (the console). One handler on the root logger keeps
    the per-record cost of the hot path to a single dispatch."""

    def __init__(self, capture_level: int, outside: logging.Handler) -> None:
        super().__init__(capture_level)
        self.outside = outside

    def handle(self, record: logging.LogRecord) -> bool:
        # The recorder has its own locking; the handler-wide lock is not needed.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        recorder = current_step.get()
        if recorder is None:
            if record.levelno >= self.outside.level:
                self.outside.handle(record)
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            recorder.append(
                record.created,
                _LEVEL_NAMES.get(record.levelno) or level_name(record.levelno),
                storable_text(record.name),
                storable_text(message),
                _fields_json(getattr(record, "fields", None)),
            )
        except Exception:
            self.handleError(record)


def install(capture_level: int = logging.DEBUG, stream: TextIO | None = None) -> StepLogHandler:
    """Route step records to steps and everything else to ``stream`` (stderr).

    The root logger's level is lowered to ``capture_level`` so that plain
    ``logging.getLogger(...).debug(...)`` calls in steps are not dropped before
    they reach the handler; the console keeps INFO for the rest.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, StepLogHandler):
            root.removeHandler(h)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler = StepLogHandler(capture_level, console)
    root.addHandler(handler)
    root.setLevel(min(capture_level, logging.INFO))
    return handler
