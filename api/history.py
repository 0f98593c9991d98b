"""Event replay routes: a job's event history, an aggregate at a version, and a
job as the read model showed it at a past position. They read the event store
(the library is synchronous: every call runs in a thread)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steptrail.api.errors import bad_request
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import checked_text, choice_param, int_param
from steptrail.domain.aggregates import Manager, StepJob
from steptrail.projections.history import aggregate_state, job_events
from steptrail.projections.replay import job_at

MAX_EVENTS = 1000  # a StepLogged event carries up to ~1000 lines


def _path_text(request: Request, name: str) -> str:
    return checked_text(name, request.path_params[name])


async def events(request: Request) -> Response:
    q = request.query_params
    after = int_param(q, "after", 0, 0)
    limit = int_param(q, "limit", 100, 1, MAX_EVENTS)
    with_lines = choice_param(q, "lines", ("true", "false"), "true") == "true"
    store = runtime(request).store
    page = await in_thread(
        job_events, store, _path_text(request, "job_id"), after, limit, with_lines
    )
    return json_response(page)


async def job_state(request: Request) -> Response:
    version = int_param(request.query_params, "version", None, 1)
    store = runtime(request).store
    state = await in_thread(aggregate_state, store, _path_text(request, "job_id"), Manager, version)
    return json_response(state)


async def step_state(request: Request) -> Response:
    version = int_param(request.query_params, "version", None, 1)
    store = runtime(request).store
    step_job_id = _path_text(request, "step_job_id")
    return json_response(await in_thread(aggregate_state, store, step_job_id, StepJob, version))


async def replay(request: Request) -> Response:
    position = int_param(request.query_params, "position", None, 0)
    if position is None:
        raise bad_request(
            "position is required: a store position (see the job's events)", "position"
        )
    rt = runtime(request)
    job_id = _path_text(request, "job_id")
    return json_response(await in_thread(job_at, rt.store, rt.db, rt.notifier, job_id, position))


HISTORY_ROUTES = [
    Route("/api/jobs/{job_id}/events", events),
    Route("/api/jobs/{job_id}/state", job_state),
    Route("/api/jobs/{job_id}/replay", replay),
    Route("/api/steps/{step_job_id}/state", step_state),
]
