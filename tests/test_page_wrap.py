"""The log panel's "wrap" toggle, in Debian's Chromium: a step whose lines
are far wider than the panel (tests/jobdefs.py ``long-lines``) shows each
long line as one row cut at the panel's edge; with wrap on, as a row several
lines tall holding its whole text, and a line link or a search hit past the
long lines still lands with its line in view; the choice survives a reload."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.jobdefs import LONG_LINES
from tests.test_page import browser, page  # noqa: F401  (the page tests' Chromium fixtures)

pytestmark = pytest.mark.browser

ROW = 20  # px, a row's height (ui/style.css)
TOTAL = 60

# A drawn row's geometry: its height, whether its message is cut (wider or
# taller than its box), and whether it lies inside the panel's viewport.
ROW_JS = """seq => {
  const row = document.querySelector(`.log-rows .ll[data-seq='${seq}']`);
  if (!row) return null;
  const msg = row.querySelector(".msg");
  const box = row.getBoundingClientRect();
  const text = msg.getBoundingClientRect();
  const view = document.querySelector(".log-viewport").getBoundingClientRect();
  return {
    height: box.height,
    cut: msg.scrollWidth > msg.clientWidth + 1
      || text.bottom > box.bottom + 1 || text.right > box.right + 1,
    inView: box.top >= view.top - 1 && box.bottom <= view.bottom + 1,
    text: msg.textContent,
  };
}"""


def _row(tab: Page, seq: int) -> dict[str, Any]:
    tab.wait_for_function(f"() => ({ROW_JS})({seq}) !== null")
    found: dict[str, Any] = tab.evaluate(ROW_JS, seq)
    return found


def _wait_taller(tab: Page, seq: int, rows: int) -> None:
    """Wait until row `seq` is at least `rows` rows tall."""
    tab.wait_for_function(f"() => ({ROW_JS})({seq})?.height >= {rows * ROW}")


def _expect_in_view(tab: Page, seq: int) -> None:
    tab.wait_for_function(f"() => ({ROW_JS})({seq})?.inView === true")
    expect(tab.locator(f".ll.selected[data-seq='{seq}']")).to_be_in_viewport()


def test_wrap_shows_whole_lines_and_keeps_landings_in_view(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    job = server.wait_job(server.submit("long-lines")["id"], timeout=60)
    step = job["steps"][0]
    assert step["last_seq"] == TOTAL
    steps_url = f"{server.base_url}/#/jobs/{job['id']}/steps/{step['id']}"
    page.goto(steps_url)
    wrap = page.get_by_label("wrap", exact=True)
    expect(wrap).not_to_be_checked()

    # off: a long line is one row, its end cut off
    long_line = _row(page, 2)
    assert long_line["height"] == ROW and long_line["cut"]
    assert long_line["text"].endswith("END-1")  # the text is there, past the edge

    # on: the same line is several rows tall and nothing of it is cut
    wrap.check()
    _wait_taller(page, 2, 3)
    for seq in range(2, 2 + LONG_LINES):
        row = _row(page, seq)
        assert not row["cut"], (seq, row)
        assert row["height"] >= 3 * ROW and row["height"] % ROW == 0, (seq, row)
    assert _row(page, 1)["height"] == ROW  # a short line stays one row
    assert not _row(page, 1)["cut"]

    # a line link past the long lines lands with its line in view
    page.goto(f"{steps_url}/line/30")
    _expect_in_view(page, 30)
    # so does a search hit, from the end back into the long lines
    page.goto(f"{steps_url}/line/{TOTAL}")
    _expect_in_view(page, TOTAL)
    page.fill(".log-panel input[type=search]", f"END-{LONG_LINES}")
    expect(page.locator("[data-testid=hits]")).to_have_text("1 of 1")
    _expect_in_view(page, 1 + LONG_LINES)

    # the choice is kept per browser: a reload opens wrapped, at the link
    page.goto(f"{steps_url}/line/45")
    page.reload()
    expect(page.get_by_label("wrap", exact=True)).to_be_checked()
    _expect_in_view(page, 45)

    # the end of the log lines up with the end of the scroll area
    page.focus(".log-viewport")
    page.keyboard.press("End")
    _expect_in_view(page, TOTAL)
    gap = page.evaluate(
        """() => document.querySelector('.log-spacer').getBoundingClientRect().bottom
        - document.querySelector('.log-rows .ll:last-child').getBoundingClientRect().bottom"""
    )
    assert abs(gap) <= 1, gap

    # off again: one row per line
    page.get_by_label("wrap", exact=True).uncheck()
    spacer = "document.querySelector('.log-spacer').getBoundingClientRect().height"
    page.wait_for_function(f"() => {spacer} === {TOTAL * ROW}")
    _expect_in_view(page, TOTAL)
