"""Query-parameter parsing: each bad value becomes a 400 that names the parameter."""

from __future__ import annotations

from datetime import datetime
from typing import overload

from starlette.datastructures import QueryParams

from steptrail.api.errors import bad_request
from steptrail.projections.schema import LEVEL_NUMBERS

MAX_LIMIT = 5000
MAX_INTEGER = 2**63 - 1  # what the databases store: anything larger is bad input


def checked_text(name: str, value: str) -> str:
    """``value`` of parameter ``name``, refused when it holds NUL: no database
    text can hold it (PostgreSQL would fail the query)."""
    if "\x00" in value:
        raise bad_request(f"{name} must not contain NUL (%00)", name)
    return value


def text_param(query: QueryParams, name: str) -> str | None:
    """A free-text or id filter; empty means absent."""
    raw = query.get(name)
    return checked_text(name, raw) if raw else None


@overload
def int_param(
    query: QueryParams, name: str, default: int, lo: int, hi: int | None = None
) -> int: ...


@overload
def int_param(
    query: QueryParams, name: str, default: None, lo: int, hi: int | None = None
) -> int | None: ...


def int_param(
    query: QueryParams, name: str, default: int | None, lo: int, hi: int | None = None
) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}", name) from None
    upper = MAX_INTEGER if hi is None else hi
    if value < lo or value > upper:
        raise bad_request(f"{name} must be between {lo} and {upper}, got {value}", name)
    return value


def limit_param(query: QueryParams, default: int = 100) -> int:
    value = int_param(query, "limit", default, 1, MAX_LIMIT)
    assert value is not None
    return value


def level_param(query: QueryParams) -> int | None:
    """Minimum level: ``info`` means info, warning, error and critical."""
    raw = query.get("level")
    if not raw:
        return None
    try:
        return LEVEL_NUMBERS[raw.upper()]
    except KeyError:
        known = ", ".join(n.lower() for n in LEVEL_NUMBERS)
        raise bad_request(f"unknown level {raw!r}; use one of {known}", "level") from None


def choice_param(
    query: QueryParams, name: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}; got {raw!r}", name)
    return raw


def time_param(query: QueryParams, name: str) -> float | None:
    """An ISO 8601 time (``2026-11-24T10:00:00Z``) or seconds since the epoch."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"{name} must be an ISO 8601 time or epoch seconds, got {raw!r}", name
        ) from None
    if moment.tzinfo is None:
        raise bad_request(f"{name} needs a time zone (e.g. a trailing Z), got {raw!r}", name)
    return moment.timestamp()
