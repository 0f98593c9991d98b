"""Issue 3, shows 1-5: the queue page in Debian's Chromium, driven by
playwright, against a real server on a loopback port.

The page is read the way a user reads it: the panel's line count, the rows
it draws (scrolled through from top to bottom), the connection state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from steptrail.domain.aggregates import step_job_id_for
from tests.conftest import LiveServer, ServerProcess, free_port
from tests.jobdefs import HOSTILE_TEXT

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000

# Scrolls the log panel from top to bottom, one screen at a time, waiting for
# each screen's lines to load; returns every screen's rows as [seq, text].
READ_PANEL = """async () => {
  const v = document.querySelector(".log-viewport");
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const deadline = performance.now() + 30000;
  const screens = [];
  v.scrollTop = 0;
  for (;;) {
    await frame();
    if (performance.now() > deadline) throw new Error("panel did not load");
    if (v.querySelector(".ll.pending")) continue;
    screens.push([...v.querySelectorAll(".ll[data-seq]")].map(
      (row) => [Number(row.dataset.seq), row.querySelector(".msg").textContent]));
    if (v.scrollTop + v.clientHeight >= v.scrollHeight - 1) return screens;
    v.scrollTop += v.clientHeight;
  }
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"a dialog opened: {d.message}"))
    # Chromium reports every Content-Security-Policy violation on the console.
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()
    assert errors == []


def step_id(job: dict[str, Any], index: int = 0) -> str:
    return str(step_job_id_for(job["id"], index, 1))


def api_lines(base_url: str, sid: str) -> list[list[Any]]:
    lines: list[list[Any]] = []
    after = 0
    while True:
        r = httpx.get(
            f"{base_url}/api/steps/{sid}/logs", params={"after_seq": after, "limit": 5000}
        )
        page = r.json()
        if not page["lines"]:
            return lines
        lines += [[x["seq"], x["message"]] for x in page["lines"]]
        after = page["next_after_seq"]


def panel_lines(page: Page) -> list[list[Any]]:
    """Every line the panel shows, top to bottom; each screen must show
    consecutive seqs (no gap, no line twice on screen)."""
    rows: dict[int, str] = {}
    for screen in page.evaluate(READ_PANEL):
        seqs = [seq for seq, _ in screen]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        rows.update(dict(screen))
    return [[seq, rows[seq]] for seq in sorted(rows)]


def line_count(page: Page) -> int:
    return int(page.get_attribute("[data-testid=line-count]", "data-count") or 0)


def wait_count(page: Page, at_least: int) -> int:
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=line-count]')?.dataset.count) >= n",
        arg=at_least,
    )
    return line_count(page)


def expect_panel_status(page: Page, status: str) -> None:
    expect(page.locator(".log-panel .panel-status")).to_have_text(status, timeout=WAIT_MS)


def test_panel_counts_live_follows_the_tail_and_ends_exact(server: LiveServer, page: Page) -> None:
    job = server.submit("drip", lines=400, interval=0.01)
    page.goto(server.base_url + "/")
    page.click(f"a.job-row[href='#/jobs/{job['id']}']")
    page.click(f"tr[data-step-id='{step_id(job)}'] a.logs-link")
    expect_panel_status(page, "running")

    first = wait_count(page, 20)
    risen = wait_count(page, first + 20)
    assert server.job(job["id"])["steps"][0]["status"] == "running", "count rose while running"
    last_row = page.locator(".ll[data-seq]").last
    assert int(last_row.get_attribute("data-seq") or 0) >= risen - 2, "the tail is in view"

    # Scrolling up pauses following: new lines do not move the view.
    page.hover(".log-viewport")
    page.mouse.wheel(0, -400)
    expect(page.locator(".log-toolbar .follow")).to_have_text("follow ⤓")
    top = page.eval_on_selector(".log-viewport", "v => v.scrollTop")
    wait_count(page, line_count(page) + 10)
    assert page.eval_on_selector(".log-viewport", "v => v.scrollTop") == top
    page.click(".log-toolbar .follow")
    expect(page.locator(".log-toolbar .follow")).to_have_text("following ⤓")

    server.wait_job(job["id"])
    expect_panel_status(page, "succeeded")
    wait_count(page, 400)
    assert line_count(page) == 400
    assert panel_lines(page) == api_lines(server.base_url, step_id(job))


def test_reload_mid_run_shows_the_same_lines_once_and_stays_live(
    server: LiveServer, page: Page
) -> None:
    job = server.submit("drip", lines=400, interval=0.01)
    sid = step_id(job)
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}")
    before = wait_count(page, 60)
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    wait_count(page, before)
    assert server.job(job["id"])["status"] == "running"
    server.wait_job(job["id"])
    expect_panel_status(page, "succeeded")
    wait_count(page, 400)
    assert panel_lines(page) == api_lines(server.base_url, sid)


def test_server_restart_mid_stream_resumes_with_every_line_once(tmp_path: Path, page: Page) -> None:
    proc = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        r = httpx.post(
            f"{proc.base_url}/api/jobs",
            json={"definition": "drip", "params": {"lines": 100_000, "interval": 0.002}},
        )
        job = r.json()
        sid = step_id(job)
        page.goto(f"{proc.base_url}/#/jobs/{job['id']}/steps/{sid}")
        wait_count(page, 200)
        proc.kill()
        expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
        # said where it is seen, and running durations stop counting
        expect(page.locator("#offline")).to_contain_text("cannot be reached")
        duration = page.locator("#job-head .job-duration")
        shown = duration.text_content()
        page.wait_for_function(
            "() => Date.now() - Date.parse(document.querySelector('#offline').dataset.since) > 2500"
        )
        assert duration.text_content() == shown
        proc.start()
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        expect(page.locator("#offline")).to_be_hidden()

        # The restarted server finds the step orphaned and abandons it; the
        # page shows that live, with every line the step stored.
        expect_panel_status(page, "abandoned")
        error = page.locator(f"tr[data-step-id='{sid}'] .error")
        expect(error).to_have_text("the server stopped")  # beside its "abandoned" badge
        stored = api_lines(proc.base_url, sid)
        wait_count(page, len(stored))
        assert line_count(page) == len(stored) >= 200
        assert panel_lines(page) == stored

        r = httpx.post(f"{proc.base_url}/api/jobs", json={"definition": "failing"})
        expect(page.locator(f"a.job-row[href='#/jobs/{r.json()['id']}']")).to_be_visible()
    finally:
        proc.stop()


def test_log_text_is_text_never_html(server: LiveServer, page: Page) -> None:
    job = server.wait_job(server.submit("html-text")["id"])
    sid = job["steps"][0]["id"]
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}")
    wait_count(page, 3)
    first = page.locator(".ll[data-seq='1']")
    expect(first.locator(".msg")).to_have_text(HOSTILE_TEXT)
    expect(first.locator(".fd")).to_have_text(f"html={HOSTILE_TEXT}")
    coloured = page.locator(".ll[data-seq='2'] .msg")
    expect(coloured).to_have_text("red and plain")
    expect(coloured.locator("span.ansi-fg-1.ansi-bold")).to_have_text("red")
    page.click(".ll[data-seq='3']")  # the detail shows the whole message, as text
    expect(page.locator(".log-detail pre")).to_have_text(
        "first line\nsecond <script>window.__pwned=2</script>"
    )
    assert page.locator(".log-panel img, .log-panel script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_hundred_thousand_lines_open_fast_stay_small_and_jump(
    server: LiveServer, page: Page
) -> None:
    n = 100_000
    job = server.wait_job(server.submit("burst", lines=n)["id"], timeout=120)
    sid = job["steps"][0]["id"]
    page.goto(f"{server.base_url}/#/jobs/{job['id']}")
    link = page.locator(f"tr[data-step-id='{sid}'] a.logs-link")
    link.wait_for()

    started = time.monotonic()
    link.click()
    page.locator(".ll[data-seq='1']").wait_for()
    opened = time.monotonic() - started
    assert opened < 1.0, f"the panel took {opened:.2f}s to open"
    assert line_count(page) == n

    def dom_nodes() -> int:
        return int(page.evaluate("document.querySelectorAll('.log-viewport *').length"))

    assert dom_nodes() < 2000
    page.fill(".goto input", "50000")
    page.press(".goto input", "Enter")
    row = page.locator(".ll[data-seq='50000']")
    expect(row).to_be_in_viewport()
    expect(row.locator(".msg")).to_have_text("line 50000")
    assert dom_nodes() < 2000
    assert page.url.endswith(f"/steps/{sid}/line/50000"), "a deep link to the line"

    # A deep link opens the job, the step and the line.
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}/line/77777")
    page.reload()
    expect(page.locator(".ll.selected[data-seq='77777']")).to_be_in_viewport()
    expect(page.locator(".log-detail")).to_contain_text("line 77777")

    # Filters are answered by the server: minimum level, then text.
    page.select_option(".log-toolbar select", "error")
    expect(page.locator("[data-testid=line-count]")).to_contain_text("matching of 100,000")
    expect(page.locator(".ll[data-seq]").first).to_have_attribute("data-seq", "4")
    levels = page.eval_on_selector_all(".ll[data-seq] .lv", "els => els.map(e => e.textContent)")
    assert levels and set(levels) == {"ERROR"}
    page.select_option(".log-toolbar select", "")
    page.get_by_label("only matching").check()  # the search filters instead of moving
    page.fill(".log-toolbar input[type=search]", "line 4999")
    expect(page.locator("[data-testid=line-count]")).to_have_text("11 matching of 100,000 lines")
    shown = page.eval_on_selector_all(".ll[data-seq]", "els => els.map(e => +e.dataset.seq)")
    assert shown == [4999, *range(49990, 50000)]

    download = page.get_attribute(".log-toolbar a[href*='format=text']", "href")
    text = httpx.get(f"{server.base_url}{download}", timeout=60).text
    assert text.count("\n") == n and "\tline 100000\n" in text


def test_submit_cancel_and_retry_from_the_page(server: LiveServer, page: Page) -> None:
    older = server.wait_job(server.submit("burst", lines=10)["id"])
    page.goto(server.base_url + "/")
    page.select_option("#definition", "drip")
    page.fill("#params input[name=lines]", "1000")
    page.fill("#params input[name=interval]", "0.05")
    page.click("#submit-form button[type=submit]")
    head = page.locator("#job-head")
    expect(head.locator(".badge")).to_have_text("running")
    job_id = page.url.split("#/jobs/")[1]
    assert server.job(job_id)["params"] == {"lines": 1000, "interval": 0.05}
    rows = page.locator("a.job-row")
    expect(rows.first).to_have_attribute("href", f"#/jobs/{job_id}")  # newest first
    expect(rows.nth(1)).to_have_attribute("href", f"#/jobs/{older['id']}")

    head.get_by_role("button", name="Cancel").click()
    expect(head.locator(".badge")).to_have_text("cancelled")
    expect(rows.first.locator(".badge")).to_have_text("cancelled")
    head.get_by_role("button", name="Retry").click()
    expect(head.locator(".badge")).to_have_text("running")
    server.client.post(f"/api/jobs/{job_id}/cancel")
    expect(head.locator(".badge")).to_have_text("cancelled")
