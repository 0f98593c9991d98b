"""The History tab's replay control, at a position in the middle of a run,
shows the counts the read model had at that position; it scrubs and plays back
to the end; scrubbing a long job back and forth shows each position's state.
Driven in Debian's Chromium by playwright."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.conftest import LiveServer, wait_until
from tests.test_page import browser, page  # noqa: F401  (the page tests' Chromium fixtures)

pytestmark = pytest.mark.browser

# What the replayed steps table shows, row by row, as a user reads it.
READ_REPLAY = """() => [...document.querySelectorAll("[data-testid=replay-step]")].map((tr) => ({
  name: tr.children[1].firstChild.textContent,
  status: tr.children[2].textContent,
  progress: tr.children[3].textContent,
  counts: Object.fromEntries([...tr.querySelectorAll(".chip")].map(
    (c) => [c.dataset.level, Number(c.textContent.split(" ")[1])])),
}))"""


def _expected(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The same rows, from a GET /api/jobs/{id} answer."""
    rows = []
    for s in job["steps"]:
        p = s["progress"]
        total = f"/{p['total']}" if p["total"] else ""
        message = f" {p['message']}" if p["message"] else ""
        counts = {k: v for k, v in s["counts"].items() if k != "total"}
        rows.append(
            {
                "name": s["name"],
                "status": s["status"],
                "progress": f"{p['current']}{total}{message}",
                "counts": counts,
            }
        )
    return rows


def _replay_at(tab: Page, position: int) -> list[dict[str, Any]]:
    """The replayed rows, once the answer for ``position`` is drawn."""
    tab.wait_for_selector(f"[data-testid=replay][data-position='{position}']")
    return tab.evaluate(READ_REPLAY)  # type: ignore[no-any-return]


def _progress_text(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_replay_mid_run_shows_what_the_read_model_had_then(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.submit("drip", lines=100, interval=0.01)
    # the read model's answer during the run: its counts at its position
    mid = wait_until(
        lambda: (
            (j := server.job(job["id"]))["steps"][0]["counts"]["total"] >= 30
            and j["status"] == "running"
            and j
        ),
        what="the job half way",
    )
    final = server.wait_job(job["id"])
    events = server.client.get(
        f"/api/jobs/{job['id']}/events", params={"limit": 1000, "lines": "false"}
    ).json()["events"]
    for snapshot in (mid, final):
        for step in snapshot["steps"]:
            p = step["progress"]
            p["current"] = _progress_text(p["current"])
            p["total"] = p["total"] and _progress_text(p["total"])

    page.goto(f"{server.base_url}/#/jobs/{job['id']}/history/{mid['position']}")
    assert _replay_at(page, mid["position"]) == _expected(mid)
    slider = page.locator("input[aria-label='replay position']")
    assert slider.get_attribute("max") == str(len(events) - 1), "every event on the timeline"
    page.wait_for_selector(f".events tr.current[data-position='{mid['position']}']")

    # the step's log panel as it was then: exactly its lines up to that count
    page.click(f"[data-testid=replay-step][data-step-id='{mid['steps'][0]['id']}']")
    count = mid["steps"][0]["counts"]["total"]
    page.wait_for_function(
        "n => document.querySelector('.replay [data-testid=line-count]')?.dataset.count == n",
        arg=str(count),
    )
    last_row = page.locator(f".replay .ll[data-seq='{count}'] .msg")
    assert last_row.text_content() == f"drip {count}"
    assert page.locator(f".replay .ll[data-seq='{count + 1}']").count() == 0

    # scrub to the end: the final counts
    page.locator("input[aria-label='replay position']").press("End")
    assert _replay_at(page, events[-1]["position"]) == _expected(final)

    # play back from the start at 10x: it ends at the last event again
    page.click("text=« first")
    assert _replay_at(page, events[0]["position"])[0]["status"] == "pending"
    page.select_option("select[aria-label='playback speed']", "10")
    page.click("button.play")
    assert _replay_at(page, events[-1]["position"]) == _expected(final)


# The longest main-thread task since the observer started (reset on read).
WATCH_LONG_TASKS = """() => {
  window.longest = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longest = Math.max(window.longest, e.duration);
  }).observe({ type: "longtask" });
}"""


def _events(server: LiveServer, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        body = server.client.get(
            f"/api/jobs/{job_id}/events", params={"after": after, "limit": 1000, "lines": "false"}
        ).json()
        events += body["events"]
        after = body["next_after"]
        if not body["has_more"]:
            return events


def _replayed(server: LiveServer, job_id: str, position: int) -> list[dict[str, Any]]:
    job = server.client.get(f"/api/jobs/{job_id}/replay", params={"position": position}).json()
    for step in job["steps"]:
        p = step["progress"]
        p["current"] = _progress_text(p["current"])
        p["total"] = p["total"] and _progress_text(p["total"])
    return _expected(job)


@pytest.mark.timeout(180)
def test_scrubbing_a_50000_line_job_back_and_forth_shows_each_position(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    job = server.wait_job(server.submit("chatty", lines=50_000, every=10)["id"], timeout=120)
    events = _events(server, job["id"])
    assert len(events) > 5000, "a long history of small events"
    page.goto(f"{server.base_url}/#/jobs/{job['id']}/history")
    _replay_at(page, events[-1]["position"])
    page.evaluate(WATCH_LONG_TASKS)
    slider = page.locator("input[aria-label='replay position']")
    last = len(events) - 1
    backwards = [*range(last, -1, -last // 25), 0]
    for i in [*backwards, *reversed(backwards)]:
        slider.fill(str(i))  # what dragging does: an input event at that value
        position = events[i]["position"]
        assert _replay_at(page, position) == _replayed(server, job["id"], position), f"event {i}"
        page.wait_for_selector(f".events tr.current[data-position='{position}']")  # in view
        assert page.locator(".events tbody tr").count() < 100, "only the rows in view are drawn"
    counts = _replay_at(page, events[-1]["position"])[0]["counts"]
    assert sum(counts.values()) == 50_000
    print(f"longest main-thread task while scrubbing: {page.evaluate('window.longest'):.0f} ms")
