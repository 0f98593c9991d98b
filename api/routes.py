"""JSON routes. Reads come from the read model and say which position they
reflect; commands go to the aggregates. Library calls run in threads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from steptrail.api.errors import bad_request, not_found
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.history import HISTORY_ROUTES
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import (
    checked_text,
    choice_param,
    int_param,
    level_param,
    limit_param,
    text_param,
    time_param,
)
from steptrail.api.runtime import Runtime
from steptrail.domain.commands import NotFound, parse_id
from steptrail.projections.queries import JOB_STATUSES

READ_YOUR_WRITE_SECONDS = 5.0
HEALTH_UNAPPLIED = 20  # unapplied events listed by /healthz (the latest)


def _path_id(request: Request, name: str, what: str) -> str:
    """The id in the path, spelled canonically (ids may come in any UUID spelling)."""
    try:
        return str(parse_id(checked_text(name, request.path_params[name]), what))
    except NotFound as e:
        raise not_found(str(e)) from None


async def _job_after(rt: Runtime, job_id: str, position: int) -> dict[str, Any]:
    """The job as the read model has it once it includes ``position``."""
    await rt.notifier.wait_async(position - 1, READ_YOUR_WRITE_SECONDS)
    job = await run_in_threadpool(rt.queries.get_job, job_id)
    if job is None:
        raise not_found(f"no job with id {job_id!r}")
    return job


async def healthz(request: Request) -> Response:
    """503 while the projection cannot work (its database fails), the read
    model cannot be read, or the event store refuses a step's end. Stored
    events the projector recorded as not applicable leave it 200: everything
    else is projected; they are listed."""
    rt = runtime(request)
    error = rt.runner.error
    unapplied = None
    try:
        unapplied = await run_in_threadpool(rt.queries.unapplied_events, HEALTH_UNAPPLIED)
    except Exception as e:  # the check exists to report exactly this
        error = error or f"read model unreadable: {type(e).__name__}: {e}"
    work = rt.orchestrator.health() if rt.orchestrator is not None else None
    store_error = work["store_error"] if work else None
    healthy = error is None and store_error is None
    body = {
        "status": "ok" if healthy else "degraded",
        "position": rt.notifier.position,
        "projection_error": error,
        "unapplied_events": unapplied,
        "store_error": store_error,  # a step's end the event store refuses (disk full)
        "workers": work["workers"] if work else None,  # None: this process runs no steps
    }
    return json_response(body, 200 if healthy else 503)


async def list_definitions(request: Request) -> Response:
    registry = runtime(request).settings.registry
    return json_response(
        {"definitions": [d.describe() for _, d in sorted(registry.definitions.items())]}
    )


async def _json_object(request: Request, fields: set[str]) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``), with only ``fields``."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}", unknown[0])
    return body


async def submit_job(request: Request) -> Response:
    rt = runtime(request)
    body = await _json_object(request, {"definition", "params"})
    job_id, position = await in_thread(
        rt.commands.submit, body.get("definition"), body.get("params")
    )
    job = await _job_after(rt, job_id, position)
    return json_response(job, 201, {"Location": f"/api/jobs/{job_id}"})


async def list_jobs(request: Request) -> Response:
    q = request.query_params
    status = choice_param(q, "status", JOB_STATUSES, None)
    limit = limit_param(q, 50)
    before = int_param(q, "before", None, 1)
    definition = text_param(q, "definition")
    find = text_param(q, "q")  # a job number (12 or #12) or the start of a job id
    page = await run_in_threadpool(
        runtime(request).queries.list_jobs, status, limit, before, definition, find
    )
    return json_response(page)


async def get_job(request: Request) -> Response:
    job_id = _path_id(request, "job_id", "job")
    job = await run_in_threadpool(runtime(request).queries.get_job, job_id)
    if job is None:
        raise not_found(f"no job with id {job_id!r}")
    return json_response(job)


async def cancel_job(request: Request) -> Response:
    rt = runtime(request)
    job_id = _path_id(request, "job_id", "job")
    position = await in_thread(rt.commands.cancel, job_id)
    if rt.orchestrator is not None:
        rt.orchestrator.cancel_local(job_id)
    return json_response(await _job_after(rt, job_id, position), 202)


async def retry_job(request: Request) -> Response:
    rt = runtime(request)
    job_id = _path_id(request, "job_id", "job")
    body = await _json_object(request, {"params"})
    position = await in_thread(rt.commands.retry, job_id, body.get("params"))
    return json_response(await _job_after(rt, job_id, position), 202)


async def get_step(request: Request) -> Response:
    step_job_id = _path_id(request, "step_job_id", "step")
    step = await run_in_threadpool(runtime(request).queries.get_step, step_job_id)
    if step is None:
        raise not_found(f"no step with id {step_job_id!r}")
    return json_response(step)


async def step_logs(request: Request) -> Response:
    q = request.query_params
    step_job_id = _path_id(request, "step_job_id", "step")
    after_seq = int_param(q, "after_seq", 0, 0)
    limit = limit_param(q, 500)
    level = level_param(q)
    text = text_param(q, "q")
    page = await run_in_threadpool(
        runtime(request).queries.step_logs, step_job_id, after_seq, limit, level, text
    )
    if page is None:
        raise not_found(f"no step with id {step_job_id!r}")
    return json_response(page)


async def download_step_logs(request: Request) -> Response:
    """The whole step log, streamed page by page: plain text or NDJSON."""
    rt = runtime(request)
    step_job_id = _path_id(request, "step_job_id", "step")
    fmt = choice_param(request.query_params, "format", ("text", "ndjson"), "text")
    step = await run_in_threadpool(rt.queries.get_step, step_job_id)
    if step is None:
        raise not_found(f"no step with id {step_job_id!r}")

    async def body() -> AsyncIterator[bytes]:
        after = 0
        while True:
            page = await run_in_threadpool(
                rt.queries.step_logs, step_job_id, after, 5000, None, None
            )
            if page is None or not page["lines"]:
                return
            if fmt == "ndjson":
                yield b"".join(orjson.dumps(line) + b"\n" for line in page["lines"])
            else:
                yield "".join(
                    f"{x['seq']}\t{x['timestamp']}\t{x['level']}\t{x['logger']}\t{x['message']}\n"
                    for x in page["lines"]
                ).encode()
            after = page["next_after_seq"]

    ext = "ndjson" if fmt == "ndjson" else "log"
    name = f"{step['name']}-attempt{step['attempt']}-{step_job_id[:8]}.{ext}"
    media = "application/x-ndjson" if fmt == "ndjson" else "text/plain; charset=utf-8"
    return StreamingResponse(
        body(), media_type=media, headers={"Content-Disposition": _attachment(name)}
    )


def _attachment(name: str) -> str:
    """RFC 6266: any name as ``filename*`` (UTF-8, percent-encoded), and an
    ASCII stand-in as ``filename`` for clients that know only that one."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def all_logs(request: Request) -> Response:
    q = request.query_params
    cursor = int_param(q, "cursor", None, 0)
    order = choice_param(q, "order", ("asc", "desc"), "asc")
    query = partial(
        runtime(request).queries.logs,
        job_id=text_param(q, "job_id"),
        step_job_id=text_param(q, "step_job_id"),
        step_name=text_param(q, "step_name"),
        min_level=level_param(q),
        q=text_param(q, "q"),
        since=time_param(q, "since"),
        until=time_param(q, "until"),
        cursor=cursor,
        limit=limit_param(q, 100),
        descending=order == "desc",
    )
    return json_response(await run_in_threadpool(query))


ROUTES = [
    Route("/healthz", healthz),
    Route("/api/definitions", list_definitions),
    Route("/api/jobs", submit_job, methods=["POST"]),
    Route("/api/jobs", list_jobs, methods=["GET"]),
    Route("/api/jobs/{job_id}", get_job),
    Route("/api/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/retry", retry_job, methods=["POST"]),
    Route("/api/steps/{step_job_id}", get_step),
    Route("/api/steps/{step_job_id}/logs", step_logs),
    Route("/api/steps/{step_job_id}/logs/download", download_step_logs),
    Route("/api/logs", all_logs),
    *HISTORY_ROUTES,
]
