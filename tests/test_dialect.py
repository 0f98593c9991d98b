"""The read model's SQL on each database, and the shared vocabulary, without
a server: portable statements reach psycopg intact, and the line layout is
named once."""

from __future__ import annotations

from steptrail.domain.aggregates import line_dict
from steptrail.domain.vocabulary import LINE_FIELDS, LineField, level_name
from steptrail.projections.dialect import POSTGRES
from steptrail.projections.schema import LINE_COLUMNS


def test_placeholders_become_psycopgs_outside_quoted_text_only() -> None:
    sql = "SELECT '?', 'it''s ?' FROM t WHERE a = ? AND b LIKE '50%' AND c = ?"
    assert POSTGRES.query(sql) == (
        "SELECT '?', 'it''s ?' FROM t WHERE a = %s AND b LIKE '50%%' AND c = %s"
    )


def test_levels_map_onto_the_five_counted_ones() -> None:
    assert [level_name(n) for n in (0, 5, 10, 19, 20, 25, 30, 45, 50, 99)] == [
        "DEBUG",
        "DEBUG",
        "DEBUG",
        "DEBUG",
        "INFO",
        "INFO",
        "WARNING",
        "ERROR",
        "CRITICAL",
        "CRITICAL",
    ]


def test_a_stored_line_is_read_by_its_field_names() -> None:
    line = [7, 1.5, "INFO", "app", "hello", '{"k": 1}', 3]
    assert line_dict(line) == {
        "seq": 7,
        "ts": 1.5,
        "level": "INFO",
        "logger": "app",
        "message": "hello",
        "fields": {"k": 1},
        "group": 3,
    }
    assert line[LineField.MESSAGE] == "hello"
    assert LINE_FIELDS == ("seq", "ts", "level", "logger", "message", "fields", "group")
    assert LINE_COLUMNS == (
        "line_id",
        "step_job_id",
        "seq",
        "ts",
        "levelno",
        "logger",
        "message",
        "fields",
        "group_seq",
        "position",
    )


def test_a_line_stored_before_groups_reads_as_in_none() -> None:
    assert line_dict([7, 1.5, "INFO", "app", "hello", None])["group"] is None
