"""Groups of lines fold in the page's log panel, in Debian's Chromium: a
10,000-line build log (tests/jobdefs.py ``build-log``) shows each group's
toggle with its line count, the group holding an error open by itself and
the others folded; unfolding and folding shows and hides exactly the group's
lines with their seq numbers; a link, a search hit or a key into a folded
group opens it; the group a running step is writing stays open."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.test_page import browser, page  # noqa: F401  (the page tests' Chromium fixtures)

pytestmark = pytest.mark.browser

# rows the panel scrolls through: its height over the row height (20 px, ui/style.css)
ROWS_JS = "() => document.querySelector('.log-spacer').getBoundingClientRect().height / 20"
TOTAL = 10_000
# opening seq -> (label, unfolded when the page opens)
GROUPS = {
    2: ("fetch sources — 1,000 lines", False),
    1003: ("compile — 4,002 lines, 1 error", True),
    1004: ("compile core — 2,000 lines", False),
    3005: ("compile plugins — 2,000 lines, 1 error", True),
    5006: ("run tests — 4,000 lines", False),
}
# rows with the folded groups hidden: 1, 2, 1003, 1004, 3005..5005, 5006, 9007..10000
FOLDED_ROWS = TOTAL - 1000 - 2000 - 4000


def _rows(tab: Page) -> int:
    """How many rows the panel scrolls through (its height in rows)."""
    return round(tab.evaluate(ROWS_JS))


def _expect_rows(tab: Page, rows: int) -> None:
    tab.wait_for_function(f"n => Math.round(({ROWS_JS})()) === n", arg=rows)


def _drawn(tab: Page) -> list[int]:
    """The seqs of the rows drawn, top to bottom."""
    seqs: list[Any] = tab.eval_on_selector_all(
        ".log-rows .ll[data-seq]", "rows => rows.map((r) => Number(r.dataset.seq))"
    )
    return seqs


def _toggle(tab: Page, seq: int) -> Any:
    return tab.locator(f".ll[data-seq='{seq}'] button.fold")


def test_groups_fold_with_their_counts_and_open_where_a_line_is_asked_for(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.wait_job(server.submit("build-log")["id"], timeout=120)
    step = job["steps"][0]
    assert step["last_seq"] == TOTAL
    steps_url = f"{server.base_url}/#/jobs/{job['id']}/steps/{step['id']}"
    page.goto(steps_url)
    page.locator(".ll[data-seq='1']").wait_for()

    # the error's groups are open by themselves, every other group folded
    _expect_rows(page, FOLDED_ROWS)
    assert _drawn(page)[:7] == [1, 2, 1003, 1004, 3005, 3006, 3007]
    for seq in (2, 1003, 1004, 3005):
        label, unfolded = GROUPS[seq]
        expect(_toggle(page, seq)).to_have_attribute("aria-label", label)
        expect(_toggle(page, seq)).to_have_attribute("aria-expanded", str(unfolded).lower())
    expect(page.locator(".ll[data-seq='2'] .gcount")).to_have_text("1,000 lines")
    expect(page.locator(".ll[data-seq='3005'] .gerrors")).to_have_text("1 error")
    expect(page.locator(".ll[data-seq='3006'] .ln")).to_have_text("3006")

    # unfolding shows exactly the group's lines, numbered as they were logged
    _toggle(page, 2).click()
    expect(_toggle(page, 2)).to_have_attribute("aria-expanded", "true")
    _expect_rows(page, FOLDED_ROWS + 1000)
    assert _drawn(page)[:6] == [1, 2, 3, 4, 5, 6]
    expect(page.locator(".ll[data-seq='3'] .msg")).to_have_text("fetch part 1")
    _toggle(page, 2).click()
    _expect_rows(page, FOLDED_ROWS)
    assert _drawn(page)[:4] == [1, 2, 1003, 1004]

    # the error key lands on the error in its open group
    page.focus(".log-viewport")
    page.keyboard.press("e")
    expect(page.locator(".ll.selected.lv-ERROR[data-seq='4321']")).to_be_in_viewport()

    # a link into a folded group opens it and shows the line
    page.goto(f"{steps_url}/line/7000")
    selected = page.locator(".ll.selected[data-seq='7000']")
    expect(selected).to_be_in_viewport()
    expect(selected.locator(".msg")).to_have_text("test 1994 passed")
    _expect_rows(page, FOLDED_ROWS + 4000)
    # ← goes to the group's opening line, ← again folds it, → unfolds it
    page.focus(".log-viewport")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".ll.selected[data-seq='5006']")).to_be_in_viewport()
    label, _ = GROUPS[5006]
    expect(_toggle(page, 5006)).to_have_attribute("aria-label", label)
    expect(_toggle(page, 5006)).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowLeft")
    expect(_toggle(page, 5006)).to_have_attribute("aria-expanded", "false")
    _expect_rows(page, FOLDED_ROWS)
    page.keyboard.press("ArrowDown")
    expect(page.locator(".ll.selected[data-seq='9007']")).to_be_in_viewport()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(_toggle(page, 5006)).to_have_attribute("aria-expanded", "true")
    _expect_rows(page, FOLDED_ROWS + 4000)

    # a search hit in a folded group opens it
    page.fill(".log-toolbar input[type=search]", "core unit 1500")
    expect(page.locator("[data-testid=hits]")).to_have_text("1 of 1")
    expect(page.locator(".ll.selected.hit[data-seq='2504']")).to_be_in_viewport()
    _expect_rows(page, FOLDED_ROWS + 4000 + 2000)


def test_the_group_a_running_step_writes_stays_open(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.submit("build-log", tail=100)
    sid = job["id"]
    page.goto(f"{server.base_url}/#/jobs/{sid}")
    deploy = _toggle(page, 10_001)
    expect(deploy).to_have_attribute("aria-expanded", "true", timeout=60_000)
    expect(deploy).to_have_attribute("aria-label", re.compile(r"^deploy — \d+ lines?$"))
    expect(page.locator(".log-toolbar .follow")).to_have_text("following ⤓")
    # its lines arrive in view, counted, while the groups before it stay folded
    expect(page.locator(".ll[data-seq='10004']")).to_be_in_viewport()
    counted = page.locator(".ll[data-seq='10001'] .gcount")
    expect(counted).not_to_have_text(re.compile(r"^[0-2] lines?$"))
    assert FOLDED_ROWS + 4 <= _rows(page) < FOLDED_ROWS + 1 + 100
    server.client.post(f"/api/jobs/{sid}/cancel")
    server.wait_job(sid, ("cancelled",))
