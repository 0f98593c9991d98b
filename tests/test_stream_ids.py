"""The stream's message ids, without a server: a message's id is the position
the client is complete up to once it holds it, so resuming after any id
repeats no line and skips none."""

from __future__ import annotations

from typing import Any

import orjson

from steptrail.api.stream import to_batch
from steptrail.projections.changes import Changes


def line(step: str, seq: int, position: int) -> dict[str, Any]:
    return {"step_job_id": step, "seq": seq, "position": position}


def messages(changes: Changes) -> list[tuple[str, int, Any]]:
    """``(event, id, data)`` of each message in the batch's body."""
    out = []
    for block in to_batch(changes).body.decode().split("\r\n\r\n"):
        fields = dict(f.split(": ", 1) for f in block.splitlines() if ": " in f)
        if fields:
            out.append((fields["event"], int(fields["id"]), orjson.loads(fields["data"])))
    return out


def test_the_last_message_says_the_read_is_complete_through_its_end() -> None:
    changes = Changes(through=9, lines=[line("a", 1, 5), line("a", 2, 5)])
    assert [(e, i) for e, i, _ in messages(changes)] == [("logs", 9)]


def test_lines_then_the_row_of_their_position_then_later_lines() -> None:
    """The step row at 5 counts the lines at 5, so it comes after them. The
    lines' id is 5: every line at 5 and every row before 5 (a resume after 5
    sends the row at 5 again, whole). The row's id is 6, one less than the
    next lines' position: resuming there never repeats a line at 7."""
    changes = Changes(
        through=7,
        states=[(5, "step", {"id": "a", "position": 5})],
        lines=[line("a", 1, 5), line("a", 2, 5), line("a", 3, 7)],
    )
    got = messages(changes)
    assert [(e, i) for e, i, _ in got] == [("logs", 5), ("step", 6), ("logs", 7)]
    assert got[0][2]["first_seq"] == 1 and got[0][2]["last_seq"] == 2


def test_a_row_before_another_row_is_complete_through_the_next_rows_position_only() -> None:
    """Rows at the resume position are sent again (whole states), so a row
    followed by a row at 8 may carry id 8."""
    changes = Changes(through=12, states=[(3, "job", {"p": 3}), (8, "job", {"p": 8})])
    assert [(e, i) for e, i, _ in messages(changes)] == [("job", 8), ("job", 12)]


def test_consecutive_lines_of_one_step_form_one_message_and_steps_alternate() -> None:
    changes = Changes(
        through=4,
        lines=[line("a", 1, 1), line("a", 2, 2), line("b", 1, 3), line("a", 3, 4)],
    )
    got = messages(changes)
    assert [(d["step_job_id"], d["first_seq"], d["last_seq"]) for _, _, d in got] == [
        ("a", 1, 2),
        ("b", 1, 1),
        ("a", 3, 3),
    ]
    assert [i for _, i, _ in got] == [2, 3, 4]


def test_a_read_with_nothing_in_it_sends_nothing_and_moves_the_cursor() -> None:
    batch = to_batch(Changes(through=42))
    assert batch.body == b"" and batch.through == 42
