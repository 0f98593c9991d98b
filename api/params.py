"""Request inputs, declared once. A route's declaration (api/endpoint.py) lists
its parameters and body; the same objects parse the request and describe it
in ``/openapi.json``, so a documented bound is the enforced one.

A bad value is a 400 whose ``field`` names the parameter; a path id that
cannot be an id is a 404, like an unknown one. An empty value means absent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from starlette.requests import Request

from steptrail.api.errors import bad_request, not_found
from steptrail.domain.commands import NotFound, parse_id
from steptrail.projections.schema import LEVEL_NUMBERS

MAX_LIMIT = 5000
MAX_INTEGER = 2**63 - 1  # what the databases store: anything larger is bad input

Where = Literal["query", "path", "header"]


def checked_text(name: str, value: str) -> str:
    """``value`` of parameter ``name``, refused when it holds NUL: no database
    text can hold it (PostgreSQL would fail the query)."""
    if "\x00" in value:
        raise bad_request(f"{name} must not contain NUL (%00)", name)
    return value


class Kind(ABC):
    """What a parameter's value may be: how its text is parsed, how it is documented."""

    statuses: tuple[int, ...] = (400,)  # the error answers a bad value gets

    @abstractmethod
    def parse(self, name: str, raw: str) -> Any: ...

    @abstractmethod
    def schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Integer(Kind):
    lo: int
    hi: int = MAX_INTEGER

    def parse(self, name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"{name} must be an integer, got {raw!r}", name) from None
        if not self.lo <= value <= self.hi:
            raise bad_request(f"{name} must be between {self.lo} and {self.hi}, got {value}", name)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]

    def parse(self, name: str, raw: str) -> str:
        if raw not in self.choices:
            raise bad_request(f"{name} must be one of {', '.join(self.choices)}; got {raw!r}", name)
        return raw

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class Level(Kind):
    """A log level, any case, as its number: filters take it as a minimum."""

    def parse(self, name: str, raw: str) -> int:
        try:
            return LEVEL_NUMBERS[raw.upper()]
        except KeyError:
            known = ", ".join(n.lower() for n in LEVEL_NUMBERS)
            raise bad_request(f"unknown level {raw!r}; use one of {known}", name) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": [n.lower() for n in LEVEL_NUMBERS]}


@dataclass(frozen=True)
class Text(Kind):
    """Free text or an id used as a filter: any text a database can hold."""

    def parse(self, name: str, raw: str) -> str:
        return checked_text(name, raw)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True)
class Time(Kind):
    """An ISO 8601 time with a zone (``2026-11-24T10:00:00Z``) or seconds since
    the epoch, as epoch seconds."""

    def parse(self, name: str, raw: str) -> float:
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

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}


@dataclass(frozen=True)
class Uuid(Kind):
    """A UUID filter, in its canonical spelling."""

    def parse(self, name: str, raw: str) -> str:
        try:
            return str(UUID(raw))
        except ValueError:
            raise bad_request(f"{name} must be a UUID, got {raw!r}", name) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class Id(Kind):
    """The id of a ``what`` (job, step) in a path, spelled canonically (ids may
    come in any UUID spelling). Text that cannot be an id names no such thing: 404."""

    what: str
    statuses = (400, 404)

    def parse(self, name: str, raw: str) -> str:
        try:
            return str(parse_id(checked_text(name, raw), self.what))
        except NotFound as e:
            raise not_found(str(e)) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class Parameter:
    """One query, path or header parameter. Absent (or empty): ``default``, or a
    400 when ``required``; ``help`` documents it and explains that 400."""

    name: str
    kind: Kind
    where: Where = "query"
    default: Any = None
    required: bool = False
    help: str = ""

    def read(self, request: Request) -> Any:
        if self.where == "path":
            raw = request.path_params.get(self.name)
        elif self.where == "header":
            raw = request.headers.get(self.name)
        else:
            raw = request.query_params.get(self.name)
        if not raw:
            if self.required:
                raise bad_request(f"{self.name} is required: {self.help}", self.name)
            return self.default
        return self.kind.parse(self.name, raw)

    def openapi(self) -> dict[str, Any]:
        schema = self.kind.schema()
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "description": self.help,
            "schema": schema,
        }


def query(
    name: str, kind: Kind, help: str, default: Any = None, required: bool = False
) -> Parameter:
    return Parameter(name, kind, "query", default, required, help)


def path(name: str, kind: Kind, help: str = "") -> Parameter:
    return Parameter(name, kind, "path", help=help)


def header(name: str, kind: Kind, help: str) -> Parameter:
    return Parameter(name, kind, "header", help=help)


def limit(default: int, maximum: int = MAX_LIMIT, help: str = "rows per page") -> Parameter:
    return query("limit", Integer(1, maximum), help, default)


JOB_ID = path("job_id", Id("job"))
STEP_JOB_ID = path("step_job_id", Id("step"))
LEVEL = query("level", Level(), "minimum level: info includes warning, error and critical")
TEXT = query("q", Text(), "case-insensitive text the message contains")


@dataclass(frozen=True)
class BodyField:
    """A field of a JSON body. What it must hold is checked by the command it
    feeds, whose refusal (a 422) names it; unknown fields are a 400."""

    name: str
    schema: dict[str, Any]
    help: str
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A JSON object body with these fields (an empty body is ``{}``)."""

    fields: tuple[BodyField, ...]
    statuses = (400, 408, 413)  # malformed; arriving too slowly; too large

    async def read(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as e:
            raise bad_request(f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        unknown = sorted(set(body) - {f.name for f in self.fields})
        if unknown:
            raise bad_request(f"unknown field {unknown[0]!r}", unknown[0])
        return {f.name: body.get(f.name) for f in self.fields}

    def openapi(self) -> dict[str, Any]:
        schema = {
            "type": "object",
            "properties": {f.name: {**f.schema, "description": f.help} for f in self.fields},
            "required": [f.name for f in self.fields if f.required],
            "additionalProperties": False,
        }
        return {"required": False, "content": {"application/json": {"schema": schema}}}
