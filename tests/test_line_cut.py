"""A stream read is bounded at an event boundary, without a server: a read
never carries part of one event's lines, and says how far it is complete."""

from __future__ import annotations

from typing import Any

from steptrail.projections.changes import MAX_LINES, _cut


def rows(*events: tuple[int, int]) -> list[dict[str, Any]]:
    """Line rows for ``(position, how many lines)`` events, in order."""
    return [{"position": p} for p, n in events for _ in range(n)]


def test_a_read_within_the_bound_is_kept_whole_through_its_end() -> None:
    kept, through = _cut(rows((3, 10), (5, 10)), 9)
    assert len(kept) == 20 and through == 9


def test_the_cut_falls_before_the_first_event_that_does_not_fit_whole() -> None:
    kept, through = _cut(rows((3, MAX_LINES - 1), (5, 10)), 9)
    assert len(kept) == MAX_LINES - 1
    assert {r["position"] for r in kept} == {3}
    assert through == 4  # complete through 4: the event at 5 comes next, whole


def test_an_event_that_exactly_fills_the_bound_is_kept() -> None:
    kept, through = _cut(rows((3, MAX_LINES), (5, 1)), 9)
    assert len(kept) == MAX_LINES and through == 4


def test_a_first_event_larger_than_the_bound_goes_whole() -> None:
    kept, through = _cut(rows((3, MAX_LINES + 5), (5, 1)), 9)
    assert len(kept) == MAX_LINES + 5
    assert through == 3
