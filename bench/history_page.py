"""History tab benchmark: scrubbing and stepping through a 50,000-line job in
headless Chromium.

Writes an event store of one job of four steps logging 50,000 lines in small
events (10 lines each, a progress report after each: ~10,000 events, the
shape of quiet steps), serves it with ``steptrail serve``, opens the job's
History tab and measures:

- per move: from a click on the previous / next event buttons to the replayed
  position drawn, timed in the page (50 each), median and max;
- a scrub: the slider dragged from the end to the start and back, one input
  event per animation frame, then the replay settling on the last position;
- the longest main-thread task (PerformanceObserver ``longtask``) while
  scrubbing and stepping, against the same page's longest task while it
  loaded the tab (the baseline of this run).

    python bench/history_page.py [--lines 50000] [--lines-per-event 10]

Targets: <= 100 ms per move; no main-thread task over 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import Server  # noqa: E402
from bench.replay import write_store  # noqa: E402
from steptrail.domain.store import JobStore, StoreLocation  # noqa: E402

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
MOVES = 50
TARGET_MS = 100.0

WATCH_LONG_TASKS = """() => {
  window.longest = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longest = Math.max(window.longest, e.duration);
  }).observe({ type: "longtask", buffered: true });
}"""
TAKE_LONGEST = "() => { const t = window.longest; window.longest = 0; return t; }"
SCRUB = """async () => {
  const slider = document.querySelector("input[aria-label='replay position']");
  const max = Number(slider.max);
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const step = Math.max(1, Math.floor(max / 150));
  const values = [];
  for (let v = max; v >= 0; v -= step) values.push(v);
  values.push(0);
  for (let v = 0; v <= max; v += step) values.push(v);
  values.push(max);
  const start = performance.now();
  for (const v of values) {
    slider.value = String(v);
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    await frame();
  }
  return { moves: values.length, ms: performance.now() - start };
}"""
# One click on a button, timed in the page: until the replay shows the event moved to.
MOVE = """async (title) => {
  const replay = document.querySelector("[data-testid=replay]");
  const start = performance.now();
  document.querySelector(`button[title='${title}']`).click();
  const target = document.querySelector("[data-testid=replay-where]").textContent.split(" ")[1];
  if (replay.dataset.position !== target) {
    await new Promise((resolve) => {
      const seen = new MutationObserver(() => {
        if (replay.dataset.position === target) { seen.disconnect(); resolve(); }
      });
      seen.observe(replay, { attributes: true, attributeFilter: ["data-position"] });
    });
  }
  return performance.now() - start;
}"""
WHERE = "() => document.querySelector('[data-testid=replay-where]').textContent"


def _wait_drawn(page: Page, position: int) -> None:
    page.wait_for_selector(f"[data-testid=replay][data-position='{position}']", timeout=30_000)


def _step(page: Page, title: str) -> float:
    return float(page.evaluate(MOVE, title))


def measure(base_url: str, job_id: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        page.goto(f"{base_url}/#/jobs/{job_id}/history")
        page.wait_for_selector("[data-testid=replay][data-position]", timeout=60_000)
        events = page.locator("input[aria-label='replay position']").get_attribute("max")
        loaded_ms = (time.perf_counter() - started) * 1000
        page.evaluate(WATCH_LONG_TASKS)
        load_longest = page.evaluate(TAKE_LONGEST)  # buffered: the tab's load

        scrub = page.evaluate(SCRUB)
        last = int(page.evaluate(WHERE).split()[1])
        _wait_drawn(page, last)
        scrub_longest = page.evaluate(TAKE_LONGEST)

        page.click("button[title='last event']")
        back = [_step(page, "previous event") for _ in range(MOVES)]
        forward = [_step(page, "next event") for _ in range(MOVES)]
        step_longest = page.evaluate(TAKE_LONGEST)
        browser.close()

    moves = back + forward
    longest = max(scrub_longest, step_longest)
    print(f"job: {int(events) + 1:,} events; tab loaded in {loaded_ms:.0f} ms")
    print(f"longest task while the tab loaded (baseline) {load_longest:6.0f} ms")
    print(
        f"scrub: {scrub['moves']} slider moves in {scrub['ms']:.0f} ms"
        f" ({scrub['ms'] / scrub['moves']:.1f} ms each); longest task {scrub_longest:.0f} ms"
    )
    print(
        f"prev/next: {len(moves)} moves, click to drawn median {statistics.median(moves):.0f} ms,"
        f" max {max(moves):.0f} ms; longest task {step_longest:.0f} ms"
    )
    print(f"  longest task scrubbing/stepping vs loading: {longest:.0f} vs {load_longest:.0f} ms")
    met = max(moves) <= TARGET_MS and longest <= TARGET_MS
    verdict = "met" if met else "MISSED"
    print(f"targets (<= {TARGET_MS:.0f} ms per move, no task over it): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--lines-per-event", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="steptrail-bench-history-") as tmp:
        data_dir = Path(tmp) / "data"
        store = JobStore(StoreLocation(data_dir))
        write_store(store, args.lines, args.lines_per_event)
        store.close()
        server = Server(data_dir)
        try:
            jobs = httpx.get(f"{server.base_url}/api/jobs").json()["jobs"]
            measure(server.base_url, jobs[0]["id"])
        finally:
            server.stop()


if __name__ == "__main__":
    main()
