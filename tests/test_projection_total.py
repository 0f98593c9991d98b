"""The projection is total: whatever the store holds, later jobs are still
projected and run; what cannot be applied is recorded, shown by /healthz and
the same after a rebuild; verify fails when the read model lags the store.

The poison is written straight into the event store (events built with bad
values and saved as they are), as older code or a hand edit could have left it.
"""

from __future__ import annotations

import math
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import StoredEvent
from playwright.sync_api import expect, sync_playwright

from steptrail.domain.aggregates import Manager, StepJob
from steptrail.domain.store import JobStore, parse_store
from steptrail.projections import storable
from tests.conftest import LiveServer, run_cli, start_server, step_lines
from tests.test_page import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_store"))
    return None


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path, store_url: str | None) -> Iterator[LiveServer]:
    live = start_server(data_dir, store=store_url)
    try:
        yield live
    finally:
        live.stop()


def _cli(data_dir: Path, store_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--data-dir", str(data_dir), "--store", store_url or "sqlite")


@dataclass
class Poisoned:
    job_id: str
    step_id: str
    unapplicable: dict[int, str]  # position -> why it cannot become rows


def _insert_raw(store: JobStore, events: list[Any], patch: tuple[bytes, bytes]) -> None:
    """Store events with bytes of their stored state replaced: text no
    encoder of ours would write (lone surrogates, as JSON escapes)."""
    stored = []
    for e in events:
        s = store.mapper.to_stored_event(e)
        # stored as plain JSON, as before states were compressed (still read)
        state = zlib.decompress(s.state).replace(*patch)
        stored.append(type(s)(s.originator_id, s.originator_version, s.topic, state))
    store.recorder.insert_events(stored)


def poison(store: JobStore) -> Poisoned:
    """A job whose step stored every kind of bad value, plus three events
    that cannot be applied at all: one counting lines at a level the read model
    has no column for, one repeating a stored line, one no mapper can decode."""
    job = Manager(definition="burst", params={"lines": math.nan, "x\x00": "y"}, step_names=["s"])
    job.start(worker_id="w\x00")
    step = StepJob(
        manager_id=str(job.id), step_name="s\x00", step_index=0, attempt=1, worker_id="w"
    )
    job.step_started(step_job_id=str(step.id), step_name="s", step_index=0, attempt=1)
    for current, total in [(math.nan, 10), (math.inf, -math.inf), (None, None), ("3", "ten")]:
        step.trigger_event(StepJob.StepProgress, current=current, total=total, message="m\x00")
    step.log([[1.0, "INFO", "x\x00", "a NUL: \x00", '{"k\\u0000": "v"}']])
    store.save(job, step)

    # lone surrogates in a progress message and in a line (JSON escapes)
    step.trigger_event(StepJob.StepProgress, current=3, total="ten", message="SURROGATE")
    step.log([[2.0, "WARNING", "x", "SURROGATE", None]])
    _insert_raw(store, list(step.collect_events()), (b"SURROGATE", b"\\\\udce9 \\udce9"))

    step.trigger_event(
        StepJob.StepLogged,
        first_seq=3,
        last_seq=3,
        lines_json='[[3, 3.0, "INFO", "x", "counted as VERBOSE", null]]',
        counts={"VERBOSE": 1},
        groups=[],
        open_groups=[],
    )
    step.trigger_event(StepJob.StepCompleted, status="succeeded", error="e\x00", traceback=None)
    job.step_finished(step_index=0, status="succeeded")
    job.complete(status="succeeded")
    store.save(step, job)
    repeated = StepJob.StepLogged(  # line 2 again, after the step ended
        originator_id=step.id,
        originator_version=step.version + 1,
        timestamp=datetime.now(UTC),
        first_seq=2,
        last_seq=2,
        lines_json='[[2, 4.0, "INFO", "x", "line 2 again", null]]',
        counts={"INFO": 1},
        groups=[],
        open_groups=[],
    )
    store.save(repeated)
    stranger = uuid.uuid4()
    store.recorder.insert_events([StoredEvent(stranger, 1, "nowhere:Nothing", b"{")])
    positions = {
        (n.originator_id, n.originator_version): n.id
        for n in store.recorder.select_notifications(None, 1000)
    }
    return Poisoned(
        str(job.id),
        str(step.id),
        {
            positions[(step.id, step.version - 1)]: "KeyError: 'VERBOSE'",
            positions[(step.id, step.version + 1)]: (
                "ValueError: lines 2-2 repeat stored lines of the step"
            ),
            positions[(stranger, 1)]: "cannot decode: TopicError",
        },
    )


def _health(server: LiveServer) -> dict[str, Any]:
    r = httpx.get(f"{server.base_url}/healthz", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _check_poisoned_job(server: LiveServer, poisoned: Poisoned) -> None:
    job = server.job(poisoned.job_id)
    assert job["params"] == {"lines": None, "x\\x00": "y"}
    step = job["steps"][0]
    assert step["name"] == "s\\x00" and step["status"] == "succeeded" and step["error"] == "e\\x00"
    # "3" became 3, "ten" unknown
    assert step["progress"] == {
        "current": 3.0,
        "total": None,
        "message": "\\udce9 \\udce9",
        "fraction": None,
    }
    assert [
        (x["seq"], x["logger"], x["message"], x["fields"])
        for x in step_lines(server.base_url, poisoned.step_id)
    ] == [(1, "x\\x00", "a NUL: \\x00", {"k\\x00": "v"}), (2, "x", "\\udce9 \\udce9", {})]


def test_poisoned_events_are_projected_and_later_jobs_run(
    server: LiveServer, data_dir: Path, store_url: str | None
) -> None:
    poisoned = poison(server.runtime.store)
    after = server.wait_job(server.submit("burst", lines=5)["id"])  # projected and run
    assert after["steps"][0]["counts"]["total"] == 5
    _check_poisoned_job(server, poisoned)

    health = _health(server)
    assert health["status"] == "ok" and health["projection_error"] is None
    recorded = {e["position"]: e for e in health["unapplied_events"]["latest"]}
    assert (
        health["unapplied_events"]["count"] == 3 and recorded.keys() == poisoned.unapplicable.keys()
    )
    for position, why in poisoned.unapplicable.items():
        assert recorded[position]["error"].startswith(why)
    assert [e["event_type"] for _, e in sorted(recorded.items())] == [
        "StepJob.StepLogged",
        "StepJob.StepLogged",
        "nowhere:Nothing",
    ]

    verified = _cli(data_dir, store_url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 stored event(s) could not be applied" in verified.stdout
    rebuilt = _cli(data_dir, store_url, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _cli(data_dir, store_url, "verify").returncode == 0
    _check_poisoned_job(server, poisoned)
    assert _health(server)["unapplied_events"]["count"] == 3

    # a restart neither stops nor repeats anything
    server.stop()
    again = start_server(data_dir, store=store_url)
    try:
        _check_poisoned_job(again, poisoned)
        assert _health(again)["unapplied_events"]["count"] == 3
        again.wait_job(again.submit("burst", lines=3)["id"])
    finally:
        again.stop()
    assert _cli(data_dir, store_url, "verify").returncode == 0


def test_verify_fails_while_the_read_model_lags_the_store(
    server: LiveServer, data_dir: Path, store_url: str | None
) -> None:
    server.wait_job(server.submit("burst", lines=5)["id"])
    at = _health(server)["position"]
    server.stop()
    # events stored while no server projects them: the read model lags
    store = JobStore(parse_store(store_url, data_dir))
    try:
        store.save(Manager(definition="burst", params={"lines": 1}, step_names=["burst"]))
        stored = store.recorder.max_notification_id()
    finally:
        store.close()
    lagging = _cli(data_dir, store_url, "verify", "--wait", "0.5")
    assert lagging.returncode == 1
    assert f"the read model is at position {at} while the event store is at {stored}" in (
        lagging.stderr
    )
    assert _cli(data_dir, store_url, "rebuild").returncode == 0
    caught_up = _cli(data_dir, store_url, "verify")
    assert caught_up.returncode == 0, caught_up.stderr
    assert f"at position {stored}" in caught_up.stdout


NUL_QUERIES = [
    ("/api/logs", "q"),
    ("/api/logs", "job_id"),
    ("/api/logs", "step_job_id"),
    ("/api/logs", "step_name"),
    ("/api/steps/{step}/logs", "q"),
]


def test_nul_in_a_text_parameter_is_a_400_naming_it(server: LiveServer) -> None:
    step = server.wait_job(server.submit("burst", lines=2)["id"])["steps"][0]["id"]
    for path, name in NUL_QUERIES:
        r = server.client.get(path.format(step=step), params={name: "a\x00b"})
        assert r.status_code == 400, (path, name, r.text)
        assert r.json()["error"]["field"] == name and "NUL" in r.json()["error"]["message"]
    paths = [
        ("/api/jobs/a%00b", "job_id"),
        ("/api/jobs/a%00b/events", "job_id"),
        ("/api/jobs/a%00b/state", "job_id"),
        ("/api/jobs/a%00b/replay?position=1", "job_id"),
        ("/api/steps/a%00b/logs", "step_job_id"),
        ("/api/steps/a%00b/state", "step_job_id"),
    ]
    for path, name in paths:
        r = server.client.get(path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["field"] == name
    assert _health(server)["status"] == "ok"
    found = server.client.get("/api/logs", params={"q": "line 2", "step_name": "burst"}).json()
    assert [x["message"] for x in found["lines"]] == ["line 2"]  # text without NUL: as before


def test_the_page_says_which_event_could_not_be_applied(tmp_path: Path) -> None:
    """The banner names the event; its error text stays text (never HTML)."""
    server = start_server(tmp_path / "data")
    try:
        job = Manager(definition="burst", params={}, step_names=["s"])
        step = StepJob(
            manager_id=str(job.id), step_name="s", step_index=0, attempt=1, worker_id="w"
        )
        step.trigger_event(
            StepJob.StepLogged,
            first_seq=1,
            last_seq=1,
            lines_json='[[1, 1.0, "INFO", "x", "m", null]]',
            counts={"<img src=x onerror=window.pwned=1>": 1},
            groups=[],
            open_groups=[],
        )
        server.runtime.store.save(job, step)
        position = server.runtime.store.recorder.max_notification_id()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(server.base_url)
                banner = page.locator("#unapplied")
                expect(banner).to_be_visible(timeout=20_000)
                expect(banner).to_contain_text(
                    f"1 stored event could not be applied to the read model: position {position},"
                    f" StepJob.StepLogged of {step.id} v2:"
                    " KeyError: '<img src=x onerror=window.pwned=1>'"
                )
                assert page.locator("#unapplied img").count() == 0
                assert page.evaluate("window.pwned") is None
            finally:
                browser.close()
    finally:
        server.stop()


def test_storable_values_are_escaped_visibly_and_deterministically() -> None:
    """What the projector stores for text and numbers no database would take."""
    assert storable.text("a\x00b \udce9 é") == "a\\x00b \\udce9 é"
    assert storable.text(storable.text("a\x00\udce9")) == storable.text("a\x00\udce9")
    assert [storable.number(v) for v in ("3", "ten", math.nan, -math.inf, None, 2, True)] == [
        3.0,
        None,
        None,
        None,
        None,
        2.0,
        1.0,
    ]
    clean = '[[1, 1.0, "INFO", "x", "fine \\ud83d\\ude00", null]]'
    assert storable.lines_json(clean) == '[[1,1.0,"INFO","x","fine \U0001f600",null]]'
    plain = '[[1,1.0,"INFO","x","nothing to fix",null]]'
    assert storable.lines_json(plain) is plain
