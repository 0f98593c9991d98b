"""What every route handler needs: the process's runtime, and library calls
run in a thread (the library is synchronous) with domain errors turned into
the API's JSON errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from steptrail.api.errors import ApiError, bad_request, not_found
from steptrail.api.runtime import Runtime
from steptrail.domain.commands import Conflict, NotFound
from steptrail.domain.definitions import DefinitionError, ParamRefused
from steptrail.projections.history import OutOfRange

T = TypeVar("T")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args)
    except ParamRefused as e:  # a well-formed value its declared constraints refuse
        raise bad_request(str(e), e.field) from None
    except DefinitionError as e:
        raise ApiError(422, "invalid", str(e), e.field) from None
    except NotFound as e:
        raise not_found(str(e)) from None
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    except OutOfRange as e:
        raise bad_request(str(e), e.field) from None


def _required(what: str, fn: Callable[..., T | None], id_: str, *args: Any) -> T:
    found = fn(id_, *args)
    if found is None:
        raise NotFound(f"no {what} with id {id_!r}")
    return found


async def existing(what: str, fn: Callable[..., T | None], id_: str, *args: Any) -> T:
    """``fn(id_, *args)`` in a thread, for a read that answers None when there
    is no ``what`` (job, step) with that id: then a 404, like any NotFound."""
    return await in_thread(_required, what, fn, id_, *args)
