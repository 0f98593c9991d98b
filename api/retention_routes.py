"""Routes for deleting jobs: ``DELETE /api/jobs/{id}`` and the deletion
records (``GET /api/deletions``). See api/retention.py."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steptrail.api.errors import not_found
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import checked_text, int_param, limit_param
from steptrail.domain.commands import NotFound, parse_id
from steptrail.projections.deletion import get_deletion, list_deletions


async def delete_job(request: Request) -> Response:
    """200 with the deletion record; 409 for a job that has not ended."""
    rt = runtime(request)
    try:
        job_id = str(parse_id(checked_text("job_id", request.path_params["job_id"]), "job"))
    except NotFound as e:
        raise not_found(str(e)) from None
    deleted = await in_thread(rt.remover.delete, job_id, "api")
    record = await run_in_threadpool(get_deletion, rt.db, job_id)
    return json_response({"deleted": record, "position": deleted.position})


async def deletions(request: Request) -> Response:
    q = request.query_params
    limit = limit_param(q, 50)
    before = int_param(q, "before", None, 1)
    return json_response(
        await run_in_threadpool(list_deletions, runtime(request).db, limit, before)
    )


RETENTION_ROUTES = [
    Route("/api/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/api/deletions", deletions, methods=["GET"]),
]
