"""Makes the README's screenshots of the queue page: a failed job opened at
its failure (light and dark), the phone layout, and a log panel with folded
groups. Runs a server on a
temporary store with the tests' job definitions and Debian's Chromium:

    .venv/bin/python -m docs.screenshots
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.conftest import start_server
from tests.test_page import CHROMIUM, CHROMIUM_ARGS

DOCS = Path(__file__).resolve().parent
SHOTS = [
    # (file, viewport, colour scheme)
    ("queue-page.png", (1280, 1180), "light"),
    ("queue-page-dark.png", (1280, 1180), "dark"),
    ("queue-page-phone.png", (390, 844), "light"),
]
GROUPS_SHOT = "log-groups.png"  # the log panel alone


def main() -> None:
    server = start_server(Path(tempfile.mkdtemp()) / "data")
    try:
        server.wait_job(server.submit("demo", lines=400, rate=0)["id"], timeout=120)
        failed = server.submit("demo", lines=3000, rate=0, fail_step="transform")
        server.wait_job(failed["id"], ("failed",), timeout=120)
        built = server.wait_job(server.submit("ci-build")["id"], timeout=120)
        server.submit("demo", lines=2000, rate=40)  # running while the pictures are taken
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, (width, height), scheme in SHOTS:
                context = browser.new_context(
                    viewport={"width": width, "height": height}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto(f"{server.base_url}/#/jobs/{failed['id']}")
                expect(page.locator(".ll.selected.expanded")).to_be_in_viewport()
                page.screenshot(path=str(DOCS / name))
                print(f"wrote {DOCS / name}")
                context.close()
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{server.base_url}/#/jobs/{built['id']}/steps/{built['steps'][0]['id']}")
            expect(page.locator(".ll.group button.fold")).to_have_count(6)
            page.locator(".log-panel").screenshot(path=str(DOCS / GROUPS_SHOT))
            print(f"wrote {DOCS / GROUPS_SHOT}")
            context.close()
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":  # worker processes import this module again
    main()
