"""The children of a step that fans out (domain/fanout.py). A child's own
logs, download, state and stream are the step routes with the child's id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.errors import bad_request
from steptrail.api.handlers import existing, runtime
from steptrail.api.jsonresponse import json_response
from steptrail.api.params import STEP_JOB_ID, Choice, Kind, checked_text, limit, query
from steptrail.api.schemas import json_answer
from steptrail.projections.fanout_queries import parse_cursor
from steptrail.projections.fanout_schema import CHILD_STATUSES


@dataclass(frozen=True)
class ChildCursor(Kind):
    """``map:index:attempt``: the ``next_after`` of the previous page."""

    def parse(self, name: str, raw: str) -> str:
        try:
            parse_cursor(checked_text(name, raw))
        except ValueError as e:
            raise bad_request(str(e), name) from None
        return raw

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^\d+:\d+:\d+$"}


@operation(
    "A step's children (child step jobs), in map, index and attempt order",
    STEP_JOB_ID,
    query("status", Choice(CHILD_STATUSES), "only children with this status"),
    query("after", ChildCursor(), "page cursor: next_after of the previous page"),
    limit(500),
    answers={200: json_answer("ChildPage", "the step with its roll-up, and a page of children")},
)
async def step_children(request: Request, args: Args) -> Response:
    page = await existing(
        "step",
        runtime(request).queries.step_children,
        args["step_job_id"],
        args["status"],
        args["after"],
        args["limit"],
    )
    return json_response(page)


FANOUT_ROUTES = [ApiRoute("GET", "/api/steps/{step_job_id}/children", step_children)]
