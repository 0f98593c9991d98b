"""Job definitions and their params, without a server: what a job author
writes is checked once, and every bad submitted param is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from steptrail import JobDefinition, Param, Step, StepContext
from steptrail.domain.definitions import MAX_STRING_PARAM, DefinitionError, Registry


def fetch(ctx: StepContext) -> None:
    pass


def parse(ctx: StepContext) -> None:
    pass


def positive(n: int) -> None:
    if n < 1:
        raise ValueError("must be at least 1")


CRAWL = JobDefinition.of(
    "crawl",
    [fetch, ("parse it", parse), Step("store", parse, timeout=5)],
    params=[
        Param("urls", str, "a,b"),
        Param("depth", int, 1, check=positive),
        Param("ratio", float, 0.5),
        Param("dry", bool, False),
        Param("token", str, secret=True),
    ],
)


def test_steps_are_named_by_function_tuple_or_step() -> None:
    assert CRAWL.step_names == ["fetch", "parse it", "store"]
    assert CRAWL.steps[2].timeout == 5


def test_duplicate_step_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate step names"):
        JobDefinition.of("twice", [fetch, fetch])


def test_missing_params_take_their_defaults_and_ints_count_as_numbers() -> None:
    params = CRAWL.validate_params({"depth": 3, "ratio": 2})
    assert params == {"urls": "a,b", "depth": 3, "ratio": 2.0, "dry": False, "token": None}
    assert isinstance(params["ratio"], float)
    assert CRAWL.validate_params(None)["depth"] == 1


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ([1], "params", "params must be a JSON object"),
        ({"nope": 1}, "params.nope", "unknown param 'nope'"),
        ({"depth": "3"}, "params.depth", "must be integer, got '3'"),
        ({"depth": True}, "params.depth", "must be integer, got True"),
        ({"dry": 1}, "params.dry", "must be boolean"),
        ({"depth": 0}, "params.depth", "must be at least 1"),
        ({"urls": "x" * (MAX_STRING_PARAM + 1)}, "params.urls", "characters long"),
    ],
)
def test_a_bad_param_is_named(raw: object, field: str, words: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        CRAWL.validate_params(raw)
    assert caught.value.field == field and words in str(caught.value)


def test_a_secret_value_is_never_quoted_in_an_error() -> None:
    with pytest.raises(DefinitionError) as caught:
        CRAWL.validate_params({"token": 12345})
    assert "12345" not in str(caught.value) and "a secret value" in str(caught.value)
    assert CRAWL.secret_values({"token": "s3cret", "urls": "x"}) == {"token": "s3cret"}
    with pytest.raises(ValueError, match="must be a string param"):
        Param("pin", int, secret=True)


def test_the_registry_names_what_it_knows(tmp_path: Path) -> None:
    jobs = tmp_path / "myjobs.py"
    jobs.write_text(
        "from steptrail import JobDefinition\n"
        "def one(ctx): pass\n"
        "ONE = JobDefinition.of('one', [one])\n"
    )
    registry = Registry()
    registry.load(str(jobs))
    assert registry.get("one").step_names == ["one"]
    with pytest.raises(DefinitionError, match=r"unknown definition 'two'; known: \['one'\]"):
        registry.get("two")
    with pytest.raises(DefinitionError) as caught:
        registry.get("")
    assert caught.value.field == "definition"
