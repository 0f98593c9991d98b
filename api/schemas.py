"""The shapes of the API's answers, as JSON Schema (OpenAPI 3.1 components),
each written once. Routes refer to them by name (:func:`ref`); /openapi.json
carries them under ``components.schemas``; tests/test_openapi.py validates
real answers against them, so a field added, renamed or dropped in a read
model's JSON must be changed here too.

Objects list every field they have as required and refuse others: a schema
says exactly what an answer holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from steptrail.domain.aggregates import PENDING, QUEUED, RUNNING, STEP_FINAL
from steptrail.domain.definitions import PARAM_TYPES
from steptrail.projections.fanout_schema import CHILD_STATUSES
from steptrail.projections.queries import JOB_STATUSES
from steptrail.projections.schema import LEVEL_COLUMNS

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
POSITION: Schema = {"type": "integer", "minimum": 0, "description": "an event-store position"}
ID: Schema = {"type": "string", "format": "uuid"}
TIME: Schema = {"type": "string", "format": "date-time"}


def maybe(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(properties: Mapping[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def ref(name: str) -> Schema:
    if name not in COMPONENTS:
        raise KeyError(f"no schema component {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


LEVEL_NAMES = [level.lower() for level in LEVEL_COLUMNS]
STEP_STATUSES = [PENDING, QUEUED, RUNNING, *STEP_FINAL]

# Fan-out (domain/fanout.py): where a child belongs, a parent's roll-up.
CHILD_PLACE: dict[str, Schema] = {
    "parent_step_job_id": maybe(ID),  # null: a step of the job, not a child
    "child_index": maybe(INTEGER),
}
_LEVEL_COUNTS = obj({**dict.fromkeys(LEVEL_NAMES, INTEGER), "total": INTEGER})
ROLLUP = obj(
    {
        "total": INTEGER,
        "by_status": obj(dict.fromkeys(CHILD_STATUSES, INTEGER)),
        "ended": INTEGER,
        "fraction": NUMBER,
        "counts": _LEVEL_COUNTS,
    }
)
_CHILD = obj(
    {
        "id": ID,
        "map": INTEGER,
        "index": INTEGER,
        "label": STRING,
        "attempt": INTEGER,
        "status": {"type": "string", "enum": list(CHILD_STATUSES)},
        "worker_id": maybe(STRING),
        "counts": _LEVEL_COUNTS,
        "started_at": maybe(TIME),
        "finished_at": maybe(TIME),
        "duration_seconds": maybe(NUMBER),
        "error": maybe(STRING),
        "position": POSITION,
    }
)

_LINE = obj(
    {
        "job_id": ID,
        "step_job_id": ID,
        "step_name": STRING,
        "step_index": INTEGER,
        "attempt": INTEGER,
        "seq": {"type": "integer", "minimum": 1},
        "level": {"type": "string", "enum": list(LEVEL_COLUMNS)},
        "message": STRING,
        "timestamp": TIME,
        "logger": STRING,
        "fields": ANY_OBJECT,
        # the seq of the line that opened the innermost group holding this one
        "group": maybe({"type": "integer", "minimum": 1}),
        "position": POSITION,
        **CHILD_PLACE,
    }
)

_STEP = obj(
    {
        "id": maybe(ID),  # null: a step that has no step job yet
        "job_id": ID,
        "name": STRING,
        "index": INTEGER,
        "attempt": INTEGER,
        "status": {"type": "string", "enum": STEP_STATUSES},
        "worker_id": maybe(STRING),
        "progress": obj(
            {
                "current": NUMBER,
                "total": maybe(NUMBER),
                "message": maybe(STRING),
                "fraction": maybe(NUMBER),
            }
        ),
        "counts": obj({**dict.fromkeys(LEVEL_NAMES, INTEGER), "total": INTEGER}),
        "last_seq": INTEGER,
        "started_at": maybe(TIME),
        "finished_at": maybe(TIME),
        "duration_seconds": maybe(NUMBER),
        "heartbeat_at": maybe(TIME),
        "error": maybe(STRING),
        "traceback": maybe(STRING),
        "position": maybe(POSITION),
        **CHILD_PLACE,
        "children": maybe(ROLLUP),
    }
)

_JOB_FIELDS: dict[str, Schema] = {
    "id": ID,
    "number": INTEGER,
    "definition": STRING,
    "params": ANY_OBJECT,
    "status": {"type": "string", "enum": list(JOB_STATUSES)},
    "error": maybe(STRING),
    "cancel_requested": BOOLEAN,
    "worker_id": maybe(STRING),
    "step_names": array(STRING),
    "step_status": array({"type": "string", "enum": STEP_STATUSES}),
    "step_job_ids": array(ID),
    "progress": obj({"steps_done": INTEGER, "steps_total": INTEGER, "fraction": NUMBER}),
    "created_at": TIME,
    "started_at": maybe(TIME),
    "finished_at": maybe(TIME),
    "duration_seconds": maybe(NUMBER),
    "position": POSITION,
}

_WORKER = obj({"name": STRING, "pid": maybe(INTEGER), "alive": BOOLEAN, "step_job_id": maybe(ID)})
_UNAPPLIED = obj(
    {
        "count": INTEGER,
        "latest": array(
            obj(
                {
                    "position": POSITION,
                    "originator_id": STRING,
                    "originator_version": INTEGER,
                    "event_type": STRING,
                    "error": STRING,
                }
            )
        ),
    }
)

_DELETION = obj(
    {
        "id": ID,
        "number": INTEGER,
        "definition": STRING,
        "status": {"type": "string", "enum": ["deleted"]},
        "status_when_deleted": {"type": "string", "enum": list(JOB_STATUSES)},
        "created_at": TIME,
        "deleted_at": TIME,
        "deleted_by": STRING,
        "position": POSITION,
    }
)


COMPONENTS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": STRING,
                    "message": STRING,
                    "field": {"type": "string", "description": "the parameter or field at fault"},
                },
                optional=("field",),
            )
        }
    ),
    "Health": obj(
        {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "position": POSITION,
            "projection_error": maybe(STRING),
            "unapplied_events": maybe(_UNAPPLIED),  # null: the read model cannot be read
            "store_error": maybe(STRING),
            "workers": maybe(array(_WORKER)),  # null: this process runs no steps
        }
    ),
    "Definitions": obj(
        {
            "definitions": array(
                obj(
                    {
                        "name": STRING,
                        "description": STRING,
                        "steps": array(STRING),
                        "max_attempts": INTEGER,
                        "timeout": maybe(NUMBER),
                        "params": array(
                            obj(
                                {
                                    "name": STRING,
                                    "type": {
                                        "type": "string",
                                        "enum": sorted(set(PARAM_TYPES.values())),
                                    },
                                    "default": {},
                                    "help": STRING,
                                    "secret": BOOLEAN,
                                    "min": maybe(NUMBER),
                                    "max": maybe(NUMBER),
                                    "choices": maybe(array({})),
                                    "pattern": maybe(STRING),
                                }
                            )
                        ),
                    }
                )
            )
        }
    ),
    "Line": _LINE,
    "Step": _STEP,
    "ChildPage": obj(
        {
            "step": _STEP,
            "children": array(_CHILD),
            "next_after": maybe(STRING),
            "total": INTEGER,
            "position": POSITION,
        }
    ),
    "Job": obj(_JOB_FIELDS),
    "JobWithSteps": obj({**_JOB_FIELDS, "steps": array(_STEP)}),
    "JobPage": obj(
        {
            "jobs": array(obj(_JOB_FIELDS)),
            "next_before": maybe(INTEGER),
            "total": INTEGER,
            "position": POSITION,
        }
    ),
    "Deleted": obj({"deleted": _DELETION, "position": POSITION}),
    "DeletionPage": obj(
        {
            "deletions": array(_DELETION),
            "next_before": maybe(INTEGER),
            "position": POSITION,
        }
    ),
    "StepSearch": obj(
        {
            "count": INTEGER,
            "seqs": array(INTEGER),
            "index": maybe(INTEGER),
            "last_seq": INTEGER,
            "position": POSITION,
        }
    ),
    "StepLogs": obj(
        {
            "step": _STEP,
            "lines": array(_LINE),
            "next_after_seq": INTEGER,
            "position": POSITION,
        }
    ),
    "StepGroups": obj(
        {
            "groups": array(
                obj(
                    {
                        "seq": INTEGER,
                        "parent": maybe(INTEGER),
                        "depth": INTEGER,
                        "name": STRING,
                        "last_seq": INTEGER,
                        "lines": INTEGER,
                        "errors": INTEGER,
                        "open": {"type": "boolean"},
                    }
                )
            ),
            "position": POSITION,
        }
    ),
    "LogPage": obj({"lines": array(_LINE), "next_cursor": maybe(STRING), "position": POSITION}),
    "EventPage": obj(
        {
            "job_id": ID,
            "events": array(
                obj(
                    {
                        "position": POSITION,
                        "originator_id": ID,
                        "aggregate": {"type": "string", "enum": ["Manager", "StepJob"]},
                        "version": INTEGER,
                        "type": STRING,
                        "timestamp": TIME,
                        "parent_step_job_id": maybe(ID),  # null: not a child's event
                        "child_index": maybe(INTEGER),
                        "payload": ANY_OBJECT,
                    }
                )
            ),
            "next_after": POSITION,
            "has_more": BOOLEAN,
        }
    ),
    "AggregateState": obj(
        {
            "id": ID,
            "type": {"type": "string", "enum": ["Manager", "StepJob"]},
            "version": INTEGER,
            "latest_version": INTEGER,
            "created_on": TIME,
            "modified_on": TIME,
            "state": ANY_OBJECT,
        }
    ),
    "StreamReady": obj(
        {
            "position": POSITION,
            "job_id": maybe(ID),
            "step_job_id": maybe(ID),
            "lines": maybe({"type": "string", "enum": ["all"]}),
        }
    ),
    "StreamLogs": obj(
        {
            "step_job_id": ID,
            "first_seq": INTEGER,
            "last_seq": INTEGER,
            "lines": array(_LINE),
        }
    ),
    "OpenAPI": {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "description": "this document",
    },
}


@dataclass(frozen=True)
class Answer:
    """A success answer of a route: what it means and its body per media type."""

    description: str
    content: Mapping[str, Schema]
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> what it says

    def openapi(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "description": self.description,
            "content": {media: {"schema": s} for media, s in self.content.items()},
        }
        if self.headers:
            doc["headers"] = {
                name: {"description": what, "schema": STRING} for name, what in self.headers.items()
            }
        return doc


def json_answer(component: str, description: str, **headers: str) -> Answer:
    return Answer(description, {"application/json": ref(component)}, headers)


# What each error status means wherever it is documented (its body is an Error).
ERROR_MEANINGS = {
    400: "a parameter or the body is wrong; error.field names it",
    401: "the server has a token and the request does not carry it",
    403: "a foreign Host (DNS rebinding) or another site's page (Origin) is refused",
    404: "no such job or step (or route)",
    408: "the request body did not arrive whole in time",
    409: "the job's state does not allow it",
    413: "the request body is too large",
    415: "a state-changing request must be Content-Type: application/json",
    422: "the definition or its params are wrong; error.field names the param",
    429: "this client has the most streams open that it may",
}


def error_answer(status: int) -> dict[str, Any]:
    return Answer(ERROR_MEANINGS[status], {"application/json": ref("Error")}).openapi()
