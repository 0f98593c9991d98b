"""Event replay routes: a job's event history, an aggregate at a version, and a
job as the read model showed it at a past position. They read the event store
(the library is synchronous: every call runs in a thread)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import JOB_ID, Choice, Id, Integer, limit, path, query
from steptrail.api.schemas import json_answer
from steptrail.domain.aggregates import Manager, StepJob
from steptrail.projections.history import aggregate_state, job_events
from steptrail.projections.replay import job_at

MAX_EVENTS = 1000  # a StepLogged event carries up to ~1000 lines

VERSION = query("version", Integer(1), "the aggregate's version (default: the latest)")


@operation(
    "The job's events (manager and step jobs) in store order, from the event store",
    JOB_ID,
    query("after", Integer(0), "events at store positions after this one", 0),
    limit(100, MAX_EVENTS, "events per page"),
    query(
        "lines",
        Choice(("true", "false")),
        "include StepLogged lines (false keeps their seq range and counts)",
        "true",
    ),
    answers={
        200: json_answer("EventPage", "a page of events; next_after continues while has_more")
    },
)
async def events(request: Request, args: Args) -> Response:
    store = runtime(request).store
    with_lines = args["lines"] == "true"
    page = await in_thread(
        job_events, store, args["job_id"], args["after"], args["limit"], with_lines
    )
    return json_response(page)


@operation(
    "The job's Manager aggregate as it was at a version",
    JOB_ID,
    VERSION,
    answers={200: json_answer("AggregateState", "the aggregate's state")},
)
async def job_state(request: Request, args: Args) -> Response:
    store = runtime(request).store
    state = await in_thread(aggregate_state, store, args["job_id"], Manager, args["version"])
    return json_response(state)


@operation(
    "A StepJob aggregate as it was at a version",
    path("step_job_id", Id("step")),
    VERSION,
    answers={200: json_answer("AggregateState", "the aggregate's state")},
)
async def step_state(request: Request, args: Args) -> Response:
    store = runtime(request).store
    state = await in_thread(aggregate_state, store, args["step_job_id"], StepJob, args["version"])
    return json_response(state)


@operation(
    "The job as the read model showed it at a store position",
    JOB_ID,
    query(
        "position",
        Integer(0),
        "a store position (see the job's events)",
        required=True,
    ),
    answers={200: json_answer("JobWithSteps", "the job, shaped like GET /api/jobs/{job_id}")},
)
async def replay(request: Request, args: Args) -> Response:
    rt = runtime(request)
    job = await in_thread(job_at, rt.store, rt.db, rt.notifier, args["job_id"], args["position"])
    return json_response(job)


HISTORY_ROUTES = [
    ApiRoute("GET", "/api/jobs/{job_id}/events", events),
    ApiRoute("GET", "/api/jobs/{job_id}/state", job_state),
    ApiRoute("GET", "/api/jobs/{job_id}/replay", replay),
    ApiRoute("GET", "/api/steps/{step_job_id}/state", step_state),
]
