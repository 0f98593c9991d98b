"""The queue page as someone who reads CI logs daily uses it, in Debian's
Chromium driven by playwright: a failed job opens at its failure, errors and
search matches are one key away on a 100,000-line step, every one of 300
jobs is reachable, the panel follows a running job, a phone and a dark
screen work, and the form refuses a param its definition refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import LiveServer, serving
from tests.test_page import browser, page  # noqa: F401  (the page tests' Chromium fixtures)

pytestmark = pytest.mark.browser

WAIT_MS = 20_000


def _search(server: LiveServer, sid: str, **params: Any) -> dict[str, Any]:
    return server.client.get(f"/api/steps/{sid}/search", params=params).json()  # type: ignore[no-any-return]


def _selected(tab: Page) -> int:
    return int(tab.get_attribute(".ll.selected", "data-seq") or 0)


def test_a_failed_job_opens_at_its_failure_and_errors_are_one_key_away(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    job = server.submit("demo", lines=3000, rate=0, fail_step="transform")
    job = server.wait_job(job["id"], ("failed",), timeout=90)
    transform = job["steps"][1]
    assert transform["status"] == "failed" and transform["last_seq"] == 3002

    page.goto(f"{server.base_url}/#/jobs/{job['id']}")
    failure = page.locator(".ll.selected.expanded[data-seq='3002']")
    expect(failure).to_be_in_viewport()
    expect(failure).to_contain_text("Traceback (most recent call last)")
    expect(failure).to_contain_text("RuntimeError: transform was told to fail")
    assert page.url.endswith(f"/steps/{transform['id']}/line/3002")
    errors = transform["counts"]["error"] + transform["counts"]["critical"]
    where = page.locator("[data-testid=errors-where]")
    expect(where).to_have_text(f"{errors} of {errors}")
    # the job's bar says how it ended
    expect(page.locator(f"a.job-row[href='#/jobs/{job['id']}'] .progress")).to_have_class(
        "progress pg-failed"
    )

    first, second, third = _search(server, transform["id"], level="error", limit=3)["seqs"][:3]
    page.click(".first-error")
    expect(page.locator(f".ll.selected[data-seq='{first}']")).to_be_in_viewport()
    expect(where).to_have_text(f"1 of {errors}")
    page.click(".next-error")
    expect(page.locator(f".ll.selected[data-seq='{second}']")).to_be_in_viewport()
    page.focus(".log-viewport")
    page.keyboard.press("e")
    expect(where).to_have_text(f"3 of {errors}")
    assert _selected(page) == third
    page.keyboard.press("Shift+E")
    expect(where).to_have_text(f"2 of {errors}")
    page.keyboard.press("ArrowDown")  # the panel is one Tab stop; arrows move inside it
    expect(page.locator(f".ll.selected[data-seq='{second + 1}']")).to_be_in_viewport()

    # a level chip opens its step filtered to that level
    extract = job["steps"][0]
    page.click(f"tr[data-step-id='{extract['id']}'] .chip[data-level='error']")
    count = page.locator("[data-testid=line-count]")
    expect(count).to_have_text(f"{extract['counts']['error']} matching of 3,001 lines")
    # the step row itself, its error text included, opens its panel
    page.click(f"tr[data-step-id='{transform['id']}'] .error")
    expect(page.locator(".ll.selected.expanded[data-seq='3002']")).to_be_in_viewport()


def test_search_moves_hit_by_hit_over_a_hundred_thousand_lines(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.wait_job(server.submit("burst", lines=100_000)["id"], timeout=120)
    sid = job["steps"][0]["id"]
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}")
    page.locator(".ll[data-seq='1']").wait_for()
    search = page.locator(".log-toolbar input[type=search]")
    hits = page.locator("[data-testid=hits]")
    search.fill("LINE 6779")  # lines 6779 and 67790-67799
    expect(hits).to_have_text("1 of 11")
    expect(page.locator(".ll.selected.hit[data-seq='6779']")).to_be_in_viewport()
    for _ in range(7):
        search.press("Enter")
    expect(hits).to_have_text("8 of 11")
    hit = page.locator(".ll.selected.hit[data-seq='67796']")
    expect(hit).to_be_in_viewport()
    expect(hit.locator("mark")).to_have_text("line 6779")
    search.press("Shift+Enter")
    expect(hits).to_have_text("7 of 11")
    expect(page.locator(".ll.selected[data-seq='67795']")).to_be_in_viewport()
    page.click(".next-hit")
    expect(hits).to_have_text("8 of 11")
    # leaving the search stays at the hit, in its context
    search.press("Escape")
    expect(search).to_have_value("")
    expect(page.locator(".ll.selected[data-seq='67796']")).to_be_in_viewport()
    expect(page.locator(".ll[data-seq='67790']")).to_be_in_viewport()
    assert page.locator(".ll mark").count() == 0

    # filtering stays available; a match clicked there is shown in the full log
    page.get_by_label("only matching").check()
    search.fill("line 6779")
    expect(page.locator("[data-testid=line-count]")).to_have_text("11 matching of 100,000 lines")
    page.click(".ll[data-seq='67793']")
    expect(page.locator("[data-testid=line-count]")).to_have_text("100,000 lines")
    expect(page.locator(".ll.selected[data-seq='67793']")).to_be_in_viewport()


@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that runs no steps: its jobs stay queued, as submitted."""
    with serving(tmp_path / "data", workers=False) as live:
        yield live


def test_every_one_of_300_jobs_is_reachable(idle_server: LiveServer, page: Page) -> None:  # noqa: F811
    server = idle_server
    jobs = [server.submit("burst" if n % 2 else "drip", lines=1) for n in range(1, 301)]
    third = jobs[2]
    page.goto(server.base_url + "/")
    total = page.locator("[data-testid=jobs-total]")
    expect(total).to_have_text("50 of 300")
    row = page.locator(f"a.job-row[href='#/jobs/{third['id']}']")
    box = page.locator("#jobs-scroll")
    for _ in range(10):  # scroll the list down, page by page, until #3 is there
        if row.count():
            break
        shown = page.locator("a.job-row").count()
        box.evaluate("b => { b.scrollTop = b.scrollHeight; }")
        page.wait_for_function("n => document.querySelectorAll('a.job-row').length > n", arg=shown)
    expect(row).to_be_attached()
    expect(total).to_have_text("300 of 300")
    row.click()
    expect(page.locator("#job-head h2")).to_have_text("burst #3")
    expect(page.locator("#job-head")).to_be_in_viewport()

    page.reload()
    expect(total).to_have_text("50 of 300")
    page.fill("#jobs-find", "#3")
    expect(total).to_have_text("1 of 1")
    expect(page.locator("a.job-row")).to_have_count(1)
    page.fill("#jobs-find", third["id"][:8])
    expect(total).to_have_text("1 of 1")
    page.fill("#jobs-find", "")
    page.select_option("#jobs-definition", "drip")
    expect(total).to_have_text("50 of 150")
    page.select_option("#jobs-status", "running")
    expect(total).to_have_text("")
    expect(page.locator("#jobs-empty")).to_be_visible()


def test_the_panel_follows_a_running_job_from_step_to_step(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.submit("demo", lines=40, rate=20)
    page.goto(f"{server.base_url}/#/jobs/{job['id']}")
    name = page.locator(".log-panel .log-toolbar strong")
    follow = page.locator(".log-toolbar .follow")
    for step in ("extract", "transform", "load", "report"):
        expect(name).to_have_text(step, timeout=WAIT_MS)
        if step != "report":
            expect(follow).to_have_text("following ⤓")
    server.wait_job(job["id"])
    expect(page.locator(".log-panel .panel-status")).to_have_text("succeeded")
    expect(name).to_have_text("report")
    expect(follow).to_be_disabled()
    expect(follow).to_have_text("follow ⤓")
    assert "/steps/" not in page.url, "nobody picked a step"
    # the timeline has a bar per step, each coloured by its outcome
    expect(page.locator(".gantt-bar.pg-succeeded")).to_have_count(4)


def test_a_line_link_on_a_phone_shows_the_line_selected_in_view(
    server: LiveServer,
    browser: Browser,  # noqa: F811
) -> None:
    job = server.wait_job(server.submit("burst", lines=3000)["id"])
    sid = job["steps"][0]["id"]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}/line/1500")
        line = phone.locator(".ll.selected[data-seq='1500']")
        expect(line).to_be_in_viewport()
        expect(phone.locator(".log-detail")).to_contain_text("line 1500")
        width = phone.evaluate("document.querySelector('.log-viewport').clientWidth")
        assert width > 300, f"the log panel is {width}px wide"
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scroll"
        phone.click(".log-toolbar .full")  # full screen: the whole phone for the log
        expect(phone.locator(".log-panel.fullscreen")).to_be_visible()
    finally:
        context.close()


def _background(tab: Page) -> list[int]:
    colour = tab.evaluate("getComputedStyle(document.querySelector('.detail')).backgroundColor")
    return [int(part) for part in colour[colour.index("(") + 1 : -1].split(",")[:3]]


def test_dark_mode_follows_the_system_and_the_toggle(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    job = server.wait_job(
        server.submit("demo", lines=30, rate=0, fail_step="load")["id"], ("failed",)
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    try:
        dark = context.new_page()
        dark.goto(f"{server.base_url}/#/jobs/{job['id']}")
        expect(dark.locator(".ll.selected.expanded")).to_be_in_viewport()
        assert max(_background(dark)) < 60, "dark from prefers-color-scheme"
        dark.screenshot(path=str(tmp_path / "dark.png"))
        assert (tmp_path / "dark.png").stat().st_size > 10_000
        dark.click("#theme")  # auto -> dark
        dark.click("#theme")  # dark -> light
        expect(dark.locator("#theme")).to_have_text("☀ light")
        assert min(_background(dark)) > 200
        dark.reload()
        assert min(_background(dark)) > 200, "the choice is kept"
    finally:
        context.close()


def test_the_form_and_the_api_refuse_a_param_out_of_bounds(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    page.goto(server.base_url + "/")
    page.select_option("#definition", "demo")
    lines = page.locator("#params input[name=lines]")
    expect(lines).to_have_attribute("min", "0")
    lines.fill("-5")
    page.click("#submit-form button[type=submit]")
    expect(page.locator("#submit-error")).to_contain_text("lines:")
    lines.fill("5")
    page.fill("#params input[name=mix]", "bogus:3")
    page.click("#submit-form button[type=submit]")
    expect(page.locator("#submit-error")).to_contain_text("mix:")
    assert server.client.get("/api/jobs").json()["total"] == 0, "the form sent nothing"

    r = server.client.post("/api/jobs", json={"definition": "demo", "params": {"lines": -5}})
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "params.lines"
    assert "between 0 and 1000000" in r.json()["error"]["message"]
