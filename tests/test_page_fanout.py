"""A step that fanned out into 10,000 children, on the queue page in
Chromium: its roll-up badge moves while the children run, its children
table is virtual (a bounded number of rows drawn, every row reachable),
filters to the failed ones (which come first anyway) and opens a child's own
log; the page has no serious accessibility violation there."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer, wait_until
from tests.test_page import browser, page  # noqa: F401  (the page tests' Chromium fixtures)
from tests.test_page_a11y import _serious

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHILDREN = 10_000
FAILED = CHILDREN // 100  # fail_every=100: items 50, 150, ...


def _ended(badge_text: str) -> int:
    """The children ended, as the badge says it: "1,234/10,000 children"."""
    return int(badge_text.split("/")[0].replace(",", ""))


def test_ten_thousand_children_live_badge_table_filter_and_a_childs_log(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    job = server.submit("fanout", items=CHILDREN, concurrency=8, fail_every=100)

    def fanning_out() -> dict[str, object] | None:
        steps = server.job(job["id"])["steps"]
        return steps[0] if steps[0]["id"] and steps[0]["children"] else None

    step = wait_until(fanning_out, 60, what="the fan-out to start")
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{step['id']}")

    # the roll-up badge moves while the children run, from the stream alone
    badge = ".children [data-testid=rollup] .rollup-total"
    total = page.locator(badge)
    expect(total).to_contain_text(f"/{CHILDREN:,} children", timeout=20_000)
    before = total.inner_text()
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent !== text", arg=[badge, before]
    )
    after = total.inner_text()
    assert _ended(before) < _ended(after) < CHILDREN, (before, after)
    # children are rows of the table, never rows of the job's steps
    expect(page.locator("#steps tr")).to_have_count(2)

    server.wait_job(job["id"], ("failed",), timeout=240)
    expect(total).to_have_text(f"{CHILDREN:,}/{CHILDREN:,} children")
    table = page.get_by_role("table", name=f"children of {step['name']}")
    expect(table).to_have_attribute("aria-rowcount", str(CHILDREN + 1))

    # failed first: the failed children lead the whole list, then index order
    rows = page.locator(".child-rows .child-row[data-child-id]")
    expect(rows.first).to_have_attribute("data-index", "50")
    expect(rows.first).to_have_attribute("data-status", "failed")
    # virtual: a screenful of rows drawn, and the last child is reachable
    assert rows.count() < 60
    page.locator(".child-viewport").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    expect(page.locator(f".child-row[data-index='{CHILDREN - 1}']")).to_be_visible()
    assert rows.count() < 60

    # the status filter, with counts per status
    status = page.get_by_label("show children with status")
    expect(status.locator("option[value=failed]")).to_have_text(f"failed ({FAILED})")
    status.select_option("failed")
    shown = page.locator("[data-testid=children-shown]")
    expect(shown).to_have_text(f"{FAILED} of {FAILED} failed children loaded")
    expect(table).to_have_attribute("aria-rowcount", str(FAILED + 1))
    statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses and set(statuses) == {"failed"}

    # a child's own log, live panel and all
    child = rows.nth(1)
    expect(child).to_have_attribute("data-index", "150")
    child.click()
    panel = page.locator(".log-panel")
    expect(panel.locator(".log-toolbar strong")).to_have_text(f"{step['name']} #150")
    lines = 3 + 150 % 18
    expect(panel.locator(".ll[data-seq='1'] .msg")).to_have_text("item 150 line 0")
    expect(panel.locator("[data-testid=line-count]")).to_contain_text(" lines")
    count = int(panel.locator("[data-testid=line-count]").get_attribute("data-count") or 0)
    assert count > lines  # its lines, then the error that failed it
    expect(panel).to_contain_text("ValueError: item 150 fails")
    expect(page.locator(".child-row.selected")).to_have_attribute("data-index", "150")
    assert "/children/" in page.url
    assert _serious(page) == [], "a fanned-out step with a child's log"
