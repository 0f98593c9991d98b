"""Routes the queue page's log panel uses beyond the logs route: a search
over a whole step (``n of m``, next and previous match) and the step's log as
plain text in the browser (the raw view)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steptrail.api.errors import not_found
from steptrail.api.handlers import runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import (
    MAX_INTEGER,
    choice_param,
    int_param,
    level_param,
    limit_param,
    text_param,
)
from steptrail.api.routes import _path_id, download_step_logs
from steptrail.projections.search import StepSearch


async def search_step(request: Request) -> Response:
    """``GET /api/steps/{id}/search?q=&level=&seq=&direction=next|prev&limit=``"""
    q = request.query_params
    step_job_id = _path_id(request, "step_job_id", "step")
    direction = choice_param(q, "direction", ("next", "prev"), "next")
    default_seq = 0 if direction == "next" else MAX_INTEGER
    seq = int_param(q, "seq", default_seq, 0)
    assert seq is not None
    answer = await run_in_threadpool(
        StepSearch(runtime(request).queries).search,
        step_job_id,
        seq,
        direction,
        limit_param(q, 1),
        level_param(q),
        text_param(q, "q"),
    )
    if answer is None:
        raise not_found(f"no step with id {step_job_id!r}")
    return json_response(answer)


async def raw_step_logs(request: Request) -> Response:
    """The text download, shown in the browser instead of saved."""
    response = await download_step_logs(request)
    response.headers["Content-Disposition"] = "inline"
    return response


SEARCH_ROUTES = [
    Route("/api/steps/{step_job_id}/search", search_step),
    Route("/api/steps/{step_job_id}/logs/raw", raw_step_logs),
]
