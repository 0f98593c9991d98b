"""The OpenAPI 3.1 document served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_ERROR = {"$ref": "#/components/responses/Error"}
_LEVEL = _q(
    "level",
    {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
    "minimum level: info includes warning, error and critical",
)
_TEXT = _q("q", {"type": "string"}, "case-insensitive text the message contains")


def _limit(default: int) -> dict[str, Any]:
    return _q(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 5000, "default": default},
        "rows per page",
    )


def _ok(description: str, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": _ERROR,
        "404": _ERROR,
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "steptrail",
        "version": "0.1.0",
        "description": "Multi-step jobs whose every step's log lines are exact and live. "
        "Every read answer carries `position`: the event-store position "
        "the read model reflected when it answered.",
    },
    "paths": {
        "/healthz": {
            "get": {"summary": "Health and read-model position", "responses": _ok("healthy")}
        },
        "/api/definitions": {
            "get": {"summary": "Job definitions and their params", "responses": _ok("definitions")}
        },
        "/api/jobs": {
            "get": {
                "summary": "Jobs, newest first",
                "parameters": [
                    _q(
                        "status",
                        {
                            "type": "string",
                            "enum": ["queued", "running", "succeeded", "failed", "cancelled"],
                        },
                        "filter",
                    ),
                    _limit(50),
                    _q(
                        "before",
                        {"type": "integer"},
                        "page cursor: next_before of the previous page",
                    ),
                ],
                "responses": _ok("a page of jobs"),
            },
            "post": {
                "summary": "Submit a job",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["definition"],
                                "properties": {
                                    "definition": {"type": "string"},
                                    "params": {"type": "object"},
                                },
                            }
                        }
                    },
                },
                "responses": {**_ok("the job, queued", "201"), "422": _ERROR},
            },
        },
        "/api/jobs/{job_id}": {
            "get": {
                "summary": "A job with its steps (every attempt)",
                "parameters": [_path("job_id")],
                "responses": _ok("the job"),
            }
        },
        "/api/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running job",
                "parameters": [_path("job_id")],
                "responses": {**_ok("accepted", "202"), "409": _ERROR},
            }
        },
        "/api/jobs/{job_id}/retry": {
            "post": {
                "summary": "Retry a failed or cancelled job from its first unfinished step",
                "parameters": [_path("job_id")],
                "responses": {**_ok("accepted", "202"), "409": _ERROR},
            }
        },
        "/api/steps/{step_job_id}": {
            "get": {
                "summary": "One step job",
                "parameters": [_path("step_job_id")],
                "responses": _ok("the step"),
            }
        },
        "/api/steps/{step_job_id}/logs": {
            "get": {
                "summary": "A step's lines in seq order",
                "parameters": [
                    _path("step_job_id"),
                    _q(
                        "after_seq",
                        {"type": "integer", "minimum": 0, "default": 0},
                        "lines with seq greater than this",
                    ),
                    _limit(500),
                    _LEVEL,
                    _TEXT,
                ],
                "responses": _ok("a page of lines; next_after_seq continues"),
            }
        },
        "/api/steps/{step_job_id}/logs/download": {
            "get": {
                "summary": "The whole step log as a file",
                "parameters": [
                    _path("step_job_id"),
                    _q("format", {"type": "string", "enum": ["text", "ndjson"]}, ""),
                ],
                "responses": {"200": {"description": "text/plain or application/x-ndjson"}},
            }
        },
        "/api/logs": {
            "get": {
                "summary": "All lines, store order, every context field filled",
                "parameters": [
                    _q("job_id", {"type": "string"}, ""),
                    _q("step_job_id", {"type": "string"}, ""),
                    _q("step_name", {"type": "string"}, ""),
                    _LEVEL,
                    _TEXT,
                    _q("since", {"type": "string"}, "ISO 8601 time or epoch seconds"),
                    _q("until", {"type": "string"}, "ISO 8601 time or epoch seconds"),
                    _q("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _q("order", {"type": "string", "enum": ["asc", "desc"]}, ""),
                    _limit(100),
                ],
                "responses": _ok("a page of lines"),
            }
        },
        "/api/stream": {
            "get": {
                "summary": "Server-Sent Events: job, step and logs messages after a position",
                "parameters": [
                    _q("job_id", {"type": "string"}, ""),
                    _q("step_job_id", {"type": "string"}, ""),
                    _q(
                        "lines",
                        {"type": "string", "enum": ["all"]},
                        "with job_id: the lines of every step job of the job",
                    ),
                    _q(
                        "after",
                        {"type": "integer"},
                        "start strictly after this position (or Last-Event-ID)",
                    ),
                ],
                "responses": {"200": {"description": "text/event-stream"}},
            }
        },
        "/api/jobs/{job_id}/events": {
            "get": {
                "summary": "The job's events (manager and step jobs) in store order, from the"
                " event store",
                "parameters": [
                    _path("job_id"),
                    _q("after", {"type": "integer", "minimum": 0, "default": 0}, "position"),
                    _q(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "events per page",
                    ),
                    _q(
                        "lines",
                        {"type": "string", "enum": ["true", "false"], "default": "true"},
                        "include StepLogged lines (false keeps their seq range and counts)",
                    ),
                ],
                "responses": _ok("a page of events; next_after continues while has_more"),
            }
        },
        "/api/jobs/{job_id}/state": {
            "get": {
                "summary": "The job's Manager aggregate as it was at a version",
                "parameters": [
                    _path("job_id"),
                    _q("version", {"type": "integer", "minimum": 1}, "default: the latest"),
                ],
                "responses": _ok("the aggregate's state"),
            }
        },
        "/api/steps/{step_job_id}/state": {
            "get": {
                "summary": "A StepJob aggregate as it was at a version",
                "parameters": [
                    _path("step_job_id"),
                    _q("version", {"type": "integer", "minimum": 1}, "default: the latest"),
                ],
                "responses": _ok("the aggregate's state"),
            }
        },
        "/api/jobs/{job_id}/replay": {
            "get": {
                "summary": "The job as the read model showed it at a store position",
                "parameters": [
                    _path("job_id"),
                    {
                        "name": "position",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": _ok("the job, shaped like GET /api/jobs/{job_id}"),
            }
        },
    },
    "components": {
        "responses": {
            "Error": {
                "description": "what was wrong",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "error": {
                                    "type": "object",
                                    "properties": {
                                        "code": {"type": "string"},
                                        "message": {"type": "string"},
                                        "field": {"type": "string"},
                                    },
                                }
                            },
                        }
                    }
                },
            }
        }
    },
}
