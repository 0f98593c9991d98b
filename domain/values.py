"""The one place where values from step code cross into the domain.

Step code is hostile by accident: NaN progress, undecodable file names, NUL
bytes, objects whose ``str()`` or ``repr()`` raise. Everything a step hands us
(log messages and fields, progress, errors) passes through these functions
before it reaches an event, so every stored event is valid in every backend:
finite numbers, valid Unicode without NUL, and a safe description of anything
else. Nothing is dropped: what cannot be stored as it is is escaped visibly.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from numbers import Real
from typing import Any

import orjson

MAX_LINE_CHARS = 64 * 1024  # a longer message or field value is stored cut, with a marker
MAX_PROGRESS_MESSAGE = 1000
MAX_NAME_CHARS = 200  # logger names and field names
_INT64 = range(-(2**63), 2**63)


def storable_text(text: str) -> str:
    """Text every store can hold: NUL (which PostgreSQL text refuses) and lone
    surrogates (undecodable file names read with surrogateescape, say) are
    escaped visibly (``\\x00``, ``\\udce9``) instead of failing a whole batch."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` if it fits, else its start with a visible marker giving the
    original length, so a reader knows the line was cut and by how much."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut: {len(text):,} characters in all]"


def safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as e:  # step objects may raise anything
        return f"<{_type_name(value)} object; repr() raised {_type_name(e)}>"


def safe_str(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        text = str(value)
    except Exception as e:
        return f"<{_type_name(value)} object; str() raised {_type_name(e)}>"
    return text if isinstance(text, str) else safe_repr(text)


def text(value: object, limit: int = MAX_LINE_CHARS) -> str:
    """Any value as storable text, cut at ``limit`` characters."""
    return storable_text(cut(safe_str(value), limit))


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, even when the exception's ``str()`` raises or holds
    characters no store accepts."""
    message = safe_str(exc)
    return text(f"{_type_name(exc)}: {message}" if message else _type_name(exc))


def format_traceback(exc: BaseException) -> str:
    """The traceback as Python prints it (the traceback module already copes
    with a raising ``str()``), made storable."""
    try:
        formatted = "".join(traceback.format_exception(exc)).rstrip()
    except Exception:
        formatted = describe_exception(exc)
    return text(formatted)


def _type_name(value: object) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "object"


def finite_number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a finite real
    number (NaN, infinities, strings, None, bools, objects)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)  # JSON stores keep 64 bits
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN
    return text(safe_repr(value))


def fields_json(fields: object, mask: Callable[[str], str] | None = None) -> str | None:
    """Structured fields as JSON text of scalars (anything else becomes its
    repr), encoded here once: stores and read models copy the text as it is.
    ``mask`` hides secrets in names and values before anything is encoded."""
    if not fields or not isinstance(fields, dict):
        return None
    try:
        clean = {text(k, MAX_NAME_CHARS): _scalar(v) for k, v in fields.items()}
    except Exception as e:  # a dict subclass whose iteration raises, say
        clean = {"fields": f"<could not be read: {describe_exception(e)}>"}
    if mask is not None:
        clean = {mask(k): _masked(v, mask) for k, v in clean.items()}
    return orjson.dumps(clean).decode()


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return mask(value)
    shown = str(value)
    masked = mask(shown)
    return value if masked == shown else masked  # a number that holds a secret
