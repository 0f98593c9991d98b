"""Routes for deleting jobs: ``DELETE /api/jobs/{id}`` and the deletion
records (``GET /api/deletions``). See api/retention.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import JOB_ID, Integer, limit, query
from steptrail.api.schemas import json_answer
from steptrail.projections.deletion import get_deletion, list_deletions


@operation(
    "Delete an ended job: its events and rows go, a deletion record stays",
    JOB_ID,
    answers={200: json_answer("Deleted", "the deletion record")},
    errors=(404, 409),
)
async def delete_job(request: Request, args: Args) -> Response:
    rt = runtime(request)
    deleted = await in_thread(rt.remover.delete, args["job_id"], "api")
    record = await in_thread(get_deletion, rt.db, args["job_id"])
    return json_response({"deleted": record, "position": deleted.position})


@operation(
    "Deletion records, the latest first",
    limit(50),
    query("before", Integer(1), "page cursor: next_before of the previous page"),
    answers={200: json_answer("DeletionPage", "a page of deletion records")},
)
async def deletions(request: Request, args: Args) -> Response:
    page = await in_thread(list_deletions, runtime(request).db, args["limit"], args["before"])
    return json_response(page)


RETENTION_ROUTES = [
    ApiRoute("DELETE", "/api/jobs/{job_id}", delete_job),
    ApiRoute("GET", "/api/deletions", deletions),
]
