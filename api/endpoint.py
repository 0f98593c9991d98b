"""Routes declared once: what a route takes and answers is data, read both by
the route (to parse the request before its handler runs) and by the OpenAPI
generator (api/openapi.py walks ``app.routes``). Nothing is written twice.

How to add a route
------------------
1. Write the handler as ``async def handler(request: Request, args: Args) ->
   Response``. ``args`` holds every declared parameter and body field, parsed
   (absent: its default, or None). Library calls go through
   ``handlers.in_thread`` (a None meaning "no such job" through
   ``handlers.existing``), so domain errors become the API's errors.
2. Decorate it with ``@operation(summary, *parameters, answers={...})``:
   parameters from api/params.py (``query``, ``path``, ``header``, ``limit``,
   ``LEVEL``...; a path parameter for every ``{name}`` in the path, e.g.
   ``path("job_id", Id("job"))``); ``body=Body((BodyField(...), ...))`` for
   a JSON body; ``answers`` maps each success status to an ``Answer``
   (``json_answer("Job", "...")``, shapes in api/schemas.py, added there when
   new; ``Answer("deleted", {})`` for an answer without a body); ``errors``
   the statuses only the handler's work gives (404 from ``existing``, 409 and
   422 from the domain, see ``handlers.in_thread``).
   The 400/404 of bad parameters, the body's 400/408/413 and the guards'
   401/403/415/429 are added to the document by the generator.
3. Put ``ApiRoute("DELETE", "/api/jobs/{job_id}", handler)`` in a route table
   (``routes.ROUTES``). ``/openapi.json`` lists it at once; tests/test_openapi.py
   checks it is documented, and fails until a real answer of each JSON route
   is in its ``_job_answers`` list, checked against the route's schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steptrail.api.params import Body, Parameter
from steptrail.api.schemas import Answer

Args = Mapping[str, Any]
Handler = Callable[[Request, Args], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """A handler with what it takes and what it answers."""

    handler: Handler
    summary: str
    parameters: tuple[Parameter, ...] = ()
    body: Body | None = None
    answers: Mapping[int, Answer] = field(default_factory=dict)
    errors: tuple[int, ...] = ()

    @property
    def description(self) -> str:
        return " ".join((self.handler.__doc__ or "").split())

    async def respond(self, request: Request) -> Response:
        """Parse what is declared, in order (path, query and header parameters
        as listed, then the body), and run the handler with it."""
        args = {p.name: p.read(request) for p in self.parameters}
        if self.body is not None:
            args.update(await self.body.read(request))
        return await self.handler(request, args)


def operation(
    summary: str,
    *parameters: Parameter,
    answers: Mapping[int, Answer],
    body: Body | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[Handler], Operation]:
    def declare(handler: Handler) -> Operation:
        return Operation(handler, summary, parameters, body, answers, errors)

    return declare


class ApiRoute(Route):
    """A route of one method whose operation is declared."""

    def __init__(self, method: str, path: str, op: Operation) -> None:
        async def endpoint(request: Request) -> Response:
            return await op.respond(request)

        super().__init__(path, endpoint, methods=[method], name=op.handler.__name__)
        self.operation = op
        declared = {p.name for p in op.parameters if p.where == "path"}
        if declared != set(self.param_convertors):
            raise ValueError(
                f"{method} {path} declares path parameters {sorted(declared)},"
                f" its path has {sorted(self.param_convertors)}"
            )
