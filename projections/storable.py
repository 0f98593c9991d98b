"""Values from stored events made storable in every read-model database.

New events hold only storable values (domain/values.py). Events written by
older code (or by hand) may still hold what a database refuses: NUL in text
(PostgreSQL), lone surrogates (invalid UTF-8 for both), NaN or strings as
numbers. The projector passes every value through here, so such an event still
becomes rows. Text is escaped visibly (``\\x00``, ``\\udce9``) as the domain
escapes it, never dropped; each function is deterministic, so a rebuild gives
the same rows.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from steptrail.domain.values import storable_text as text
from steptrail.domain.vocabulary import LineField

# JSON escapes PostgreSQL's jsonb refuses and SQLite turns into invalid text.
_BAD_JSON_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def value(v: Any) -> Any:
    """Any decoded event value: text escaped, non-finite floats None, inside
    lists and dicts too (keys included)."""
    if isinstance(v, str):
        return text(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list | tuple):
        return [value(x) for x in v]
    if isinstance(v, dict):
        return {text(str(k)): value(x) for k, x in v.items()}
    return v


def number(v: Any) -> float | None:
    """A finite number from what a step once passed as one (``"3"`` -> 3.0);
    None for anything else (``"ten"``, NaN, infinities, None)."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def json_text(raw: str) -> str:
    """A JSON text, storable: almost always ``raw`` itself (checked without
    parsing); otherwise parsed leniently and written again with its text escaped."""
    if not _needs_fixing(raw):
        return raw
    return orjson.dumps(value(json.loads(raw))).decode()


def lines_json(raw: str) -> str:
    """A StepLogged event's lines (JSON text), storable, each line's fields
    (JSON text inside it) too."""
    if not _needs_fixing(raw):
        return raw
    lines = value(json.loads(raw))
    fields = LineField.FIELDS
    for line in lines:
        if isinstance(line, list) and len(line) > fields and isinstance(line[fields], str):
            line[fields] = json_text(line[fields])
    return orjson.dumps(lines).decode()


def _needs_fixing(raw: str) -> bool:
    if "\x00" in raw or _BAD_JSON_ESCAPE.search(raw):
        return True
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
