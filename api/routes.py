"""JSON routes. Reads come from the read model and say which position they
reflect; commands go to the aggregates. Library calls run in threads. Each
handler is declared with what it takes and answers (see api/endpoint.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.fanout_routes import FANOUT_ROUTES
from steptrail.api.handlers import existing, in_thread, runtime
from steptrail.api.history import HISTORY_ROUTES
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import (
    JOB_ID,
    LEVEL,
    STEP_JOB_ID,
    TEXT,
    Body,
    BodyField,
    Choice,
    Integer,
    Text,
    Time,
    limit,
    query,
)
from steptrail.api.runtime import Runtime
from steptrail.api.schemas import ANY_OBJECT, STRING, Answer, json_answer, ref
from steptrail.projections.queries import JOB_STATUSES

READ_YOUR_WRITE_SECONDS = 5.0
HEALTH_UNAPPLIED = 20  # unapplied events listed by /healthz (the latest)
DOWNLOAD_PAGE = 5000  # lines read per query while a download streams

PARAMS = BodyField(
    "params", ANY_OBJECT, "the definition's params by name (secret params given again on retry)"
)


async def _job_after(rt: Runtime, job_id: str, position: int) -> dict[str, Any]:
    """The job as the read model has it once it includes ``position``."""
    await rt.notifier.wait_async(position - 1, READ_YOUR_WRITE_SECONDS)
    return await existing("job", rt.queries.get_job, job_id)


@operation(
    "Health and read-model position",
    answers={
        200: json_answer("Health", "healthy (stored events not applied are listed)"),
        503: json_answer("Health", "degraded: the projection, read model or event store fails"),
    },
)
async def healthz(request: Request, args: Args) -> Response:
    """503 while the projection cannot work (its database fails), the read
    model cannot be read, or the event store refuses a step's end. Stored
    events the projector recorded as not applicable leave it 200: everything
    else is projected; they are listed."""
    rt = runtime(request)
    error = rt.runner.error
    unapplied = None
    try:
        unapplied = await in_thread(rt.queries.unapplied_events, HEALTH_UNAPPLIED)
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


@operation(
    "Job definitions and their params",
    answers={200: json_answer("Definitions", "every definition, by name")},
)
async def list_definitions(request: Request, args: Args) -> Response:
    registry = runtime(request).settings.registry
    return json_response(
        {"definitions": [d.describe() for _, d in sorted(registry.definitions.items())]}
    )


@operation(
    "Submit a job",
    body=Body(
        (
            BodyField("definition", STRING, "the definition's name", required=True),
            PARAMS,
        )
    ),
    answers={201: json_answer("JobWithSteps", "the job, queued", Location="the job's URL")},
    errors=(422,),
)
async def submit_job(request: Request, args: Args) -> Response:
    rt = runtime(request)
    job_id, position = await in_thread(rt.commands.submit, args["definition"], args["params"])
    job = await _job_after(rt, job_id, position)
    return json_response(job, 201, {"Location": f"/api/jobs/{job_id}"})


@operation(
    "Jobs, newest first",
    query("status", Choice(JOB_STATUSES), "only jobs with this status"),
    limit(50),
    query("before", Integer(1), "page cursor: next_before of the previous page"),
    query("definition", Text(), "only jobs of this definition"),
    query("q", Text(), "a job number (12 or #12) or the start of a job id"),
    answers={200: json_answer("JobPage", "a page of jobs; next_before continues; total")},
)
async def list_jobs(request: Request, args: Args) -> Response:
    page = await in_thread(
        runtime(request).queries.list_jobs,
        args["status"],
        args["limit"],
        args["before"],
        args["definition"],
        args["q"],
    )
    return json_response(page)


@operation(
    "A job with its steps (every attempt)",
    JOB_ID,
    answers={200: json_answer("JobWithSteps", "the job")},
)
async def get_job(request: Request, args: Args) -> Response:
    return json_response(await existing("job", runtime(request).queries.get_job, args["job_id"]))


@operation(
    "Cancel a queued or running job",
    JOB_ID,
    answers={202: json_answer("JobWithSteps", "accepted: the job, cancel requested")},
    errors=(409,),
)
async def cancel_job(request: Request, args: Args) -> Response:
    rt = runtime(request)
    job_id = args["job_id"]
    position = await in_thread(rt.commands.cancel, job_id)
    if rt.orchestrator is not None:
        rt.orchestrator.cancel_local(job_id)
    return json_response(await _job_after(rt, job_id, position), 202)


@operation(
    "Retry a failed or cancelled job from its first unfinished step",
    JOB_ID,
    body=Body((PARAMS,)),
    answers={202: json_answer("JobWithSteps", "accepted: the job, queued again")},
    errors=(409, 422),
)
async def retry_job(request: Request, args: Args) -> Response:
    rt = runtime(request)
    job_id = args["job_id"]
    position = await in_thread(rt.commands.retry, job_id, args["params"])
    return json_response(await _job_after(rt, job_id, position), 202)


@operation("One step job", STEP_JOB_ID, answers={200: json_answer("Step", "the step")})
async def get_step(request: Request, args: Args) -> Response:
    step_job_id = args["step_job_id"]
    return json_response(await existing("step", runtime(request).queries.get_step, step_job_id))


@operation(
    "A step's lines in seq order",
    STEP_JOB_ID,
    query("after_seq", Integer(0), "lines with seq greater than this", 0),
    limit(500),
    LEVEL,
    TEXT,
    answers={200: json_answer("StepLogs", "a page of lines; next_after_seq continues")},
)
async def step_logs(request: Request, args: Args) -> Response:
    page = await existing(
        "step",
        runtime(request).queries.step_logs,
        args["step_job_id"],
        args["after_seq"],
        args["limit"],
        args["level"],
        args["q"],
    )
    return json_response(page)


@operation(
    "The groups of a step's lines (opened by ::group:: lines or ctx.group), in seq order",
    STEP_JOB_ID,
    answers={200: json_answer("StepGroups", "each group with its line and error counts")},
)
async def step_groups(request: Request, args: Args) -> Response:
    groups = runtime(request).queries.step_groups
    return json_response(await existing("step", groups, args["step_job_id"]))


@operation(
    "The whole step log as a file",
    STEP_JOB_ID,
    query("format", Choice(("text", "ndjson")), "text: seq, time, level, logger, message", "text"),
    answers={
        200: Answer(
            "the log, streamed",
            {
                "text/plain; charset=utf-8": {
                    **STRING,
                    "description": "a line per log line: seq, timestamp, level, logger and"
                    " message, tab-separated",
                },
                "application/x-ndjson": {**STRING, "x-item-schema": ref("Line")},
            },
            {"Content-Disposition": "attachment, named after the step and attempt"},
        )
    },
)
async def download_step_logs(request: Request, args: Args) -> Response:
    """The whole step log, streamed page by page: plain text or NDJSON."""
    rt = runtime(request)
    step_job_id, ndjson = args["step_job_id"], args["format"] == "ndjson"
    step = await existing("step", rt.queries.get_step, step_job_id)

    async def body() -> AsyncIterator[bytes]:
        after = 0
        while True:
            page = await in_thread(
                rt.queries.step_logs, step_job_id, after, DOWNLOAD_PAGE, None, None
            )
            if page is None or not page["lines"]:
                return
            if ndjson:
                yield b"".join(orjson.dumps(line) + b"\n" for line in page["lines"])
            else:
                yield "".join(
                    f"{x['seq']}\t{x['timestamp']}\t{x['level']}\t{x['logger']}\t{x['message']}\n"
                    for x in page["lines"]
                ).encode()
            after = page["next_after_seq"]

    ext = "ndjson" if ndjson else "log"
    name = f"{step['name']}-attempt{step['attempt']}-{step_job_id[:8]}.{ext}"
    media = "application/x-ndjson" if ndjson else "text/plain; charset=utf-8"
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


@operation(
    "All lines, store order, every context field filled",
    query("job_id", Text(), "only this job's lines"),
    query("step_job_id", Text(), "only this step job's lines"),
    query("step_name", Text(), "only lines of steps with this name"),
    query("parent_step_job_id", Text(), "only lines of this step's children"),
    LEVEL,
    TEXT,
    query("since", Time(), "lines at or after this time: ISO 8601 with a zone, or epoch seconds"),
    query("until", Time(), "lines before this time: ISO 8601 with a zone, or epoch seconds"),
    query("cursor", Integer(0), "page cursor: next_cursor of the previous page"),
    query("order", Choice(("asc", "desc")), "store order, or newest first", "asc"),
    limit(100),
    answers={200: json_answer("LogPage", "a page of lines; next_cursor continues")},
)
async def all_logs(request: Request, args: Args) -> Response:
    query_logs = partial(
        runtime(request).queries.logs,
        job_id=args["job_id"],
        step_job_id=args["step_job_id"],
        step_name=args["step_name"],
        parent_step_job_id=args["parent_step_job_id"],
        min_level=args["level"],
        q=args["q"],
        since=args["since"],
        until=args["until"],
        cursor=args["cursor"],
        limit=args["limit"],
        descending=args["order"] == "desc",
    )
    return json_response(await in_thread(query_logs))


ROUTES = [
    ApiRoute("GET", "/healthz", healthz),
    ApiRoute("GET", "/api/definitions", list_definitions),
    ApiRoute("POST", "/api/jobs", submit_job),
    ApiRoute("GET", "/api/jobs", list_jobs),
    ApiRoute("GET", "/api/jobs/{job_id}", get_job),
    ApiRoute("POST", "/api/jobs/{job_id}/cancel", cancel_job),
    ApiRoute("POST", "/api/jobs/{job_id}/retry", retry_job),
    ApiRoute("GET", "/api/steps/{step_job_id}", get_step),
    ApiRoute("GET", "/api/steps/{step_job_id}/logs", step_logs),
    ApiRoute("GET", "/api/steps/{step_job_id}/logs/download", download_step_logs),
    ApiRoute("GET", "/api/steps/{step_job_id}/groups", step_groups),
    ApiRoute("GET", "/api/logs", all_logs),
    *HISTORY_ROUTES,
    *FANOUT_ROUTES,
]
