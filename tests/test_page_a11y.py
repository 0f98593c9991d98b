"""An automated accessibility check (axe-core, shipped inside the
axe-playwright-python package: nothing is fetched at run time) of the job
list, a job with an open log panel, a log in groups, and the History tab,
in light and dark: no serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.test_page import browser  # noqa: F401  (the page tests' Chromium fixture)

pytestmark = pytest.mark.browser

AXE = Axe()


def _serious(tab: Page) -> list[dict[str, Any]]:
    results = AXE.run(tab)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    scheme: str,
) -> None:
    job = server.submit("demo", lines=60, rate=0, fail_step="load")
    job = server.wait_job(job["id"], ("failed",))
    server.wait_job(server.submit("demo", lines=20, rate=0)["id"])
    grouped = server.wait_job(server.submit("grouped")["id"])
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    try:
        tab = context.new_page()
        tab.goto(server.base_url + "/")
        expect(tab.locator("a.job-row")).to_have_count(3)
        assert _serious(tab) == [], "the job list"

        tab.goto(f"{server.base_url}/#/jobs/{job['id']}")
        expect(tab.locator(".ll.selected.expanded")).to_be_in_viewport()
        tab.fill(".log-toolbar input[type=search]", "item 1")
        expect(tab.locator("[data-testid=hits]")).to_contain_text(" of ")
        assert _serious(tab) == [], "a job with an open panel"

        tab.goto(f"{server.base_url}/#/jobs/{grouped['id']}/steps/{grouped['steps'][0]['id']}")
        expect(tab.locator(".ll.group button.fold").first).to_be_visible()
        assert _serious(tab) == [], "a log in groups"

        tab.click("#tab-history")
        tab.wait_for_selector("[data-testid=replay][data-position]")
        tab.click("[data-testid=replay-step] >> nth=0")
        tab.locator(".replay-panel .ll[data-seq='1']").wait_for()
        assert _serious(tab) == [], "the History tab"
    finally:
        context.close()
