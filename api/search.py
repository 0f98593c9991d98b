"""Routes the queue page's log panel uses beyond the logs route: a search
over a whole step (``n of m``, next and previous match) and the step's log as
plain text in the browser (the raw view)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.handlers import existing, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import (
    LEVEL,
    MAX_INTEGER,
    STEP_JOB_ID,
    TEXT,
    Choice,
    Integer,
    limit,
    query,
)
from steptrail.api.routes import download_step_logs
from steptrail.api.schemas import json_answer
from steptrail.projections.search import StepSearch


@operation(
    "Matches in a whole step: how many, and the next or previous ones from a seq",
    STEP_JOB_ID,
    TEXT,
    LEVEL,
    query("seq", Integer(0), "start here (not included); default: the log's start or end"),
    query("direction", Choice(("next", "prev")), "next: ascending seqs; prev: descending", "next"),
    limit(1),
    answers={200: json_answer("StepSearch", "the count, the seqs found and the first one's rank")},
)
async def search_step(request: Request, args: Args) -> Response:
    direction = args["direction"]
    seq = args["seq"]
    if seq is None:
        seq = 0 if direction == "next" else MAX_INTEGER
    answer = await existing(
        "step",
        StepSearch(runtime(request).queries).search,
        args["step_job_id"],
        seq,
        direction,
        args["limit"],
        args["level"],
        args["q"],
    )
    return json_response(answer)


@operation(
    "The whole step log as plain text, shown in the browser",
    STEP_JOB_ID,
    answers=download_step_logs.answers,
)
async def raw_step_logs(request: Request, args: Args) -> Response:
    response = await download_step_logs.handler(request, {**args, "format": "text"})
    response.headers["Content-Disposition"] = "inline"
    return response


SEARCH_ROUTES = [
    ApiRoute("GET", "/api/steps/{step_job_id}/search", search_step),
    ApiRoute("GET", "/api/steps/{step_job_id}/logs/raw", raw_step_logs),
]
