"""Query parameters, without a server: each bad value is refused with a 400
naming the parameter, each good one parsed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.datastructures import QueryParams

from steptrail.api.errors import ApiError
from steptrail.api.params import (
    MAX_INTEGER,
    MAX_LIMIT,
    choice_param,
    int_param,
    level_param,
    limit_param,
    text_param,
    time_param,
)


def refused(call: Callable[..., object], *args: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


def test_integers_within_bounds_and_absent_ones_take_the_default() -> None:
    q = QueryParams("after=17&empty=")
    assert int_param(q, "after", None, 0) == 17
    assert int_param(q, "empty", 5, 0) == 5
    assert int_param(q, "missing", None, 0) is None
    assert int_param(QueryParams(f"n={MAX_INTEGER}"), "n", None, 0) == MAX_INTEGER


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("after=x", "after must be an integer, got 'x'"),
        ("after=-1", "after must be between 0 and"),
        (f"after={MAX_INTEGER + 1}", "after must be between 0 and"),
    ],
)
def test_a_bad_integer_is_refused_naming_the_parameter(query: str, words: str) -> None:
    error = refused(int_param, QueryParams(query), "after", None, 0)
    assert words in error.message and error.field == "after"


def test_limit_is_bounded() -> None:
    assert limit_param(QueryParams("")) == 100
    assert limit_param(QueryParams(f"limit={MAX_LIMIT}")) == MAX_LIMIT
    assert refused(limit_param, QueryParams(f"limit={MAX_LIMIT + 1}")).field == "limit"
    assert refused(limit_param, QueryParams("limit=0")).field == "limit"


def test_a_level_is_a_minimum_by_name_in_any_case() -> None:
    assert level_param(QueryParams("level=warning")) == 30
    assert level_param(QueryParams("level=ERROR")) == 40
    assert level_param(QueryParams("")) is None
    error = refused(level_param, QueryParams("level=loud"))
    assert error.field == "level"
    assert "debug, info, warning, error, critical" in error.message


def test_choices_and_text() -> None:
    assert choice_param(QueryParams("order=asc"), "order", ("asc", "desc"), "desc") == "asc"
    assert choice_param(QueryParams(""), "order", ("asc", "desc"), "desc") == "desc"
    assert refused(choice_param, QueryParams("order=up"), "order", ("asc",), None).field == "order"
    assert text_param(QueryParams("q=disk+full"), "q") == "disk full"
    assert text_param(QueryParams("q="), "q") is None
    assert refused(text_param, QueryParams("q=a%00b"), "q").field == "q"


def test_times_are_iso_with_a_zone_or_epoch_seconds() -> None:
    assert time_param(QueryParams("since=1700000000.5"), "since") == 1700000000.5
    assert time_param(QueryParams("since=1970-01-01T00:01:00Z"), "since") == 60.0
    assert time_param(QueryParams("since=1970-01-01T01:00:00%2B01:00"), "since") == 0.0
    assert (
        "time zone" in refused(time_param, QueryParams("since=2026-01-01T00:00"), "since").message
    )
    assert refused(time_param, QueryParams("until=soon"), "until").field == "until"
