"""Safe by default on a developer's machine: what any web page could send a
loopback server is refused (foreign Host, foreign Origin, non-JSON writes),
a token in a URL opens only reads, params that would exhaust the server are
refused, and every answer carries the security headers (limits on bodies,
streams and connections: tests/test_limits.py).

Every refusal is checked the way a user would notice it: a 4xx JSON error
that says why, and nothing written (the store position does not move).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import (
    JSON_HEADERS,
    ROOT,
    LiveServer,
    ServerProcess,
    free_port,
    run_cli,
    serving,
    start_server,
    wait_until,
)
from tests.test_page import WAIT_MS, browser  # noqa: F401  (the page tests' Chromium fixture)

EVIL = "http://evil.example"
TOKEN = "s3cret-token-never-printed"


def position(server: LiveServer) -> int:
    return int(server.runtime.store.recorder.max_notification_id() or 0)


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("field") == field


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    store = request.getfixturevalue("pg_store") if request.param == "postgres" else None
    live = start_server(tmp_path / "data", store=store)
    try:
        yield live
    finally:
        live.stop()


# ---- cross-site requests and params (SQLite and PostgreSQL)

SUBMIT = b'{"definition": "drip", "params": {"lines": 1}}'
CROSS_SITE = {
    "text/plain from another site": (
        "/api/jobs",
        {"Content-Type": "text/plain", "Origin": EVIL},
        SUBMIT,
        403,
        "cross_origin",
    ),
    "text/plain, no Origin": ("/api/jobs", {"Content-Type": "text/plain"}, SUBMIT, 415, None),
    "a form": (
        "/api/jobs",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"definition=drip",
        415,
        None,
    ),
    "a multipart form": (
        "/api/jobs",
        {"Content-Type": "multipart/form-data; boundary=x"},
        b"--x\r\nContent-Disposition: form-data; name=definition\r\n\r\ndrip\r\n--x--\r\n",
        415,
        None,
    ),
    "JSON from another site": (
        "/api/jobs",
        {"Content-Type": "application/json", "Origin": EVIL},
        SUBMIT,
        403,
        "cross_origin",
    ),
    "JSON from a sandboxed page": (
        "/api/jobs",
        {"Content-Type": "application/json", "Origin": "null"},
        SUBMIT,
        403,
        "cross_origin",
    ),
    "a body-less cancel": ("/api/jobs/{job}/cancel", {}, None, 415, None),
    "a body-less retry": ("/api/jobs/{job}/retry", {}, None, 415, None),
    "a body-less retry from another site": (
        "/api/jobs/{job}/retry",
        {"Origin": EVIL},
        None,
        403,
        "cross_origin",
    ),
    "a JSON retry from another site": (
        "/api/jobs/{job}/retry",
        {"Content-Type": "application/json", "Origin": f"{EVIL}:8000"},
        None,
        403,
        "cross_origin",
    ),
}


def test_cross_site_requests_are_refused_and_write_nothing(any_store: LiveServer) -> None:
    server = any_store
    failed = server.wait_job(server.submit("failing")["id"], ("failed",))
    before = position(server)
    for what, (path, headers, body, status, code) in CROSS_SITE.items():
        r = httpx.post(
            server.base_url + path.format(job=failed["id"]), headers=headers, content=body
        )
        assert r.status_code == status, f"{what}: {r.text}"
        assert_error(r, status, code or "unsupported_media_type")
    # A foreign page cannot delete a job either, with or without a JSON type.
    for headers in ({"Origin": EVIL}, {"Origin": EVIL, **JSON_HEADERS}, {"Origin": "null"}):
        r = httpx.delete(f"{server.base_url}/api/jobs/{failed['id']}", headers=headers)
        assert_error(r, 403, "cross_origin")
    assert position(server) == before, "a refused request wrote to the store"
    assert [j["id"] for j in server.client.get("/api/jobs").json()["jobs"]] == [failed["id"]]
    assert server.job(failed["id"])["status"] == "failed"

    # The page's own origin, with JSON, is what works (even without a body).
    own = {"Origin": server.base_url, **JSON_HEADERS}
    r = httpx.post(f"{server.base_url}/api/jobs/{failed['id']}/retry", headers=own)
    assert r.status_code == 202, r.text
    r = httpx.post(f"{server.base_url}/api/jobs", headers=own, content=SUBMIT)
    assert r.status_code == 201, r.text
    assert position(server) > before


PARAM_LIMITS = {
    "a level mix that would take 600 MB": (
        "demo",
        {"mix": "info:30000000"},
        "params.mix",
        "weights adding up to more than 1000",
    ),
    "an unknown level in the mix": ("demo", {"mix": "loud:1"}, "params.mix", "unknown level"),
    "a billion lines": ("demo", {"lines": 10**9}, "params.lines", "between 0 and 1000000"),
    "a negative rate": ("demo", {"rate": -1}, "params.rate", "between 0 and 1000000"),
    "a 100 KB string": ("demo", {"fail_step": "x" * 100_000}, "params.fail_step", "at most 65536"),
}


def test_params_out_of_bounds_are_refused_naming_the_field(any_store: LiveServer) -> None:
    server = any_store
    for what, (definition, params, field, message) in PARAM_LIMITS.items():
        r = server.client.post("/api/jobs", json={"definition": definition, "params": params})
        assert_error(r, 400, "bad_request", field)
        assert message in r.json()["error"]["message"], what
        assert len(r.text) < 500, "the error does not echo a huge value back"
    assert position(server) == 0
    assert server.client.get("/api/jobs").json()["jobs"] == []
    big_but_fine = {"fail_step": "x" * 65536, "lines": 1, "rate": 0, "mix": "info:1000"}
    job = server.wait_job(server.submit("demo", **big_but_fine)["id"], ("failed", "succeeded"))
    assert job["params"]["fail_step"] == "x" * 65536


# ---- Host: DNS rebinding


@pytest.mark.parametrize(
    "path", ["/", "/ui/app.js", "/healthz", "/openapi.json", "/api/jobs", "/api/stream"]
)
def test_a_foreign_host_is_refused_on_page_api_and_stream(server: LiveServer, path: str) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    foreign = ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}")
    for host in (*foreign, f"127.0.0.1:{port}@evil.example", ""):
        r = httpx.get(server.base_url + path, headers={"Host": host}, timeout=5)
        assert_error(r, 403, "host_not_allowed")
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_loopback_names_are_served(server: LiveServer) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost.:{port}", f"[::1]:{port}"):
        r = httpx.get(f"{server.base_url}/api/jobs", headers={"Host": host}, timeout=5)
        assert r.status_code == 200, (host, r.text)


def test_any_host_name_needs_a_token(tmp_path: Path) -> None:
    out = run_cli("serve", "--allowed-hosts", "*", "--port", "0", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "--allowed-hosts '*' needs --token" in out.stderr


# ---- the token: never in a URL that writes, never printed in a URL


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "data", token=TOKEN) as live:
        yield live


def test_a_token_in_the_url_opens_only_the_stream_and_downloads(guarded: LiveServer) -> None:
    base, bearer = guarded.base_url, {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(
        f"{base}/api/jobs", params={"token": TOKEN}, headers=JSON_HEADERS, content=SUBMIT
    )
    assert_error(r, 401, "unauthorized")
    assert "only on the stream and downloads" in r.json()["error"]["message"]
    assert position(guarded) == 0
    assert_error(httpx.get(f"{base}/api/jobs", params={"token": TOKEN}), 401, "unauthorized")

    r = httpx.post(f"{base}/api/jobs", headers={**bearer, **JSON_HEADERS}, content=SUBMIT)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    wait_until(
        lambda: (
            httpx.get(f"{base}/api/jobs/{job_id}", headers=bearer).json()["status"] == "succeeded"
        )
    )
    step_id = httpx.get(f"{base}/api/jobs/{job_id}", headers=bearer).json()["steps"][0]["id"]
    r = httpx.get(f"{base}/api/steps/{step_id}/logs/download", params={"token": TOKEN})
    assert r.status_code == 200 and "drip 1" in r.text
    r = httpx.post(f"{base}/api/jobs/{job_id}/retry", params={"token": TOKEN}, headers=JSON_HEADERS)
    assert_error(r, 401, "unauthorized")
    with httpx.stream(
        "GET", f"{base}/api/stream", params={"token": TOKEN}, timeout=httpx.Timeout(5, read=5)
    ) as stream:
        assert stream.status_code == 200


def test_serve_never_prints_the_token(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", free_port(), ("--token", TOKEN)).start()
    try:
        wait_until(lambda: "token" in proc.output(), what="the startup lines")
        assert TOKEN not in proc.output()
        assert "the API needs the token given by --token" in proc.output()
    finally:
        proc.stop()


# ---- headers


def test_security_headers_on_every_answer(server: LiveServer) -> None:
    page = httpx.get(server.base_url + "/")
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'"
    assert "unsafe" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    job = server.wait_job(server.submit("drip", lines=2, interval=0)["id"])
    step_id = job["steps"][0]["id"]
    answers = [
        page,
        httpx.get(server.base_url + "/ui/app.js"),
        httpx.get(server.base_url + "/api/jobs"),
        httpx.get(server.base_url + "/api/nope"),
        httpx.get(f"{server.base_url}/api/steps/{step_id}/logs/download"),
        httpx.post(server.base_url + "/api/jobs", content=b"x"),
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
    with httpx.stream("GET", server.base_url + "/api/stream", timeout=5) as stream:
        assert stream.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_nothing_inline() -> None:
    """What the policy would block: inline scripts, style attributes, event
    handler attributes, data: or javascript: URLs."""
    html = (ROOT / "ui" / "index.html").read_text()
    assert all('src="/ui/' in tag for tag in re.findall(r"<script[^>]*>", html))
    assert not re.search(r"<style|\sstyle=|\son\w+=|data:|javascript:", html)
    for js in (ROOT / "ui").glob("*.js"):
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|eval\(", js.read_text()), js


def test_any_step_name_downloads(server: LiveServer) -> None:
    job = server.wait_job(server.submit("odd-names")["id"])
    for step in job["steps"]:
        for fmt, ext in (("text", "log"), ("ndjson", "ndjson")):
            r = server.client.get(f"/api/steps/{step['id']}/logs/download", params={"format": fmt})
            assert r.status_code == 200, r.text
            said = r.text if fmt == "text" else orjson.loads(r.text.splitlines()[0])["message"]
            assert f"hi from {step['name']}" in said
            disposition = r.headers["content-disposition"]
            fallback, encoded = re.fullmatch(
                r"attachment; filename=\"([^\"\\]*)\"; filename\*=UTF-8''(\S+)", disposition
            ).groups()  # type: ignore[union-attr]
            assert unquote(encoded) == f"{step['name']}-attempt1-{step['id'][:8]}.{ext}"
            assert fallback.isascii() and fallback.endswith(f".{ext}")


# ---- the page under its Content-Security-Policy, in Chromium

# Registered before any page script runs: every violation the page causes.
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));
"""


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:  # noqa: F811
    """A page that records policy violations; none may happen in a test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(str(e)))
    yield page
    violations = page.evaluate("window.__violations")
    context.close()
    assert violations == []
    assert [m for m in console if "Content Security Policy" in m] == []


@pytest.mark.browser
def test_the_page_works_under_its_policy_with_no_violation(server: LiveServer, tab: Page) -> None:
    job = server.wait_job(server.submit("colourful")["id"])
    sid = job["steps"][0]["id"]
    tab.goto(server.base_url + "/")
    tab.select_option("#definition", "drip")
    tab.fill("#params input[name=lines]", "1000")
    tab.click("#submit-form button[type=submit]")  # a POST from the page itself
    head = tab.locator("#job-head")
    expect(head.locator(".badge")).to_have_text("running")
    head.get_by_role("button", name="Cancel").click()  # a body-less POST
    expect(head.locator(".badge")).to_have_text("cancelled")
    head.get_by_role("button", name="Retry").click()
    expect(head.locator(".badge")).to_have_text("running")
    head.get_by_role("button", name="Cancel").click()
    expect(head.locator(".badge")).to_have_text("cancelled")

    tab.goto(f"{server.base_url}/#/jobs/{job['id']}/steps/{sid}")
    tab.wait_for_function(
        "() => document.querySelector('[data-testid=line-count]')?.dataset.count == 51"
    )
    green = tab.locator(".ll[data-seq='1'] .msg span.ansi-bold")
    expect(green).to_have_text("green")  # colours drawn under style-src 'self'
    tab.goto(f"{server.base_url}/#/jobs/{job['id']}/history")
    tab.wait_for_selector("[data-testid=replay]")


@pytest.mark.browser
def test_the_policy_is_in_force_and_violations_are_seen(
    server: LiveServer,
    browser: Browser,  # noqa: F811
) -> None:
    """What makes the no-violation checks mean something: an injected inline
    script does not run, and its violation is reported."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        page.goto(server.base_url + "/")
        page.evaluate("""() => {
          const s = document.createElement("script");
          s.textContent = "window.__inline = 1";
          document.body.append(s);
        }""")
        page.wait_for_function("() => window.__violations.length > 0", timeout=WAIT_MS)
        assert page.evaluate("window.__inline") is None
        assert page.evaluate("window.__violations")[0].startswith("script-src")
    finally:
        context.close()


@pytest.mark.browser
def test_the_page_with_a_token(guarded: LiveServer, tab: Page) -> None:
    """Asked for, the token opens the page; passed in the URL, it leaves the
    address bar at once. Writes carry it as a header, the stream in its URL."""
    tab.goto(guarded.base_url + "/")
    tab.fill("#token", TOKEN)
    tab.click("#token-form button[type=submit]")
    expect(tab.locator("#conn")).to_have_attribute("data-state", "live")
    tab.select_option("#definition", "drip")
    tab.fill("#params input[name=lines]", "3")
    tab.click("#submit-form button[type=submit]")
    expect(tab.locator("#job-head .badge")).to_have_text("succeeded")

    fresh = tab.context.new_page()
    fresh.goto(f"{guarded.base_url}/?token={TOKEN}#/")
    expect(fresh.locator("#conn")).to_have_attribute("data-state", "live")
    assert TOKEN not in fresh.url
    expect(fresh.locator("a.job-row")).to_have_count(1)
