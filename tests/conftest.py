"""Shared fixtures: real servers on loopback ports, on real SQLite files.

Nothing here sleeps to synchronise: :func:`wait_until` polls a condition
against a deadline.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import uvicorn
from sse_starlette.sse import AppStatus

from steptrail.api.app import create_app
from steptrail.api.runtime import Runtime, Settings
from steptrail.domain.store import JobStore, parse_store
from steptrail.projections.database import Database, PostgresDatabase, SQLiteDatabase
from steptrail.projections.rebuild import compare, rebuild_into

ROOT = Path(__file__).resolve().parent.parent
JOBDEFS = Path(__file__).resolve().parent / "jobdefs.py"
T = TypeVar("T")
JSON_HEADERS = {"Content-Type": "application/json"}


def wait_until(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Return the first truthy value of ``predicate()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def assert_live_model_is_a_rebuild(store: str | None, data_dir: Path, scratch: Path) -> None:
    """The read model a server left equals one rebuilt from the events."""
    location = parse_store(store, data_dir)
    events = JobStore(location)
    live: Database = (
        PostgresDatabase(location.postgres_conninfo(), location.postgres_params()["schema"])
        if location.is_postgres
        else SQLiteDatabase(location.readmodel_path)
    )
    rebuilt = rebuild_into(events, scratch / "rebuilt.sqlite")
    try:
        assert compare(live, rebuilt) == []
    finally:
        live.close()
        rebuilt.close()
        events.close()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``steptrail ARGS`` in a subprocess of this checkout, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "steptrail", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def get_json(base_url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{base_url}{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def step_lines(base_url: str, step_id: str, page: int = 5000) -> list[dict[str, Any]]:
    """Every line of a step, as the API pages them out by seq."""
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        got = get_json(base_url, f"/api/steps/{step_id}/logs", after_seq=after, limit=page)
        if not got["lines"]:
            return lines
        lines += got["lines"]
        after = got["next_after_seq"]


class ThreadSafeBuffer(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            return super().write(s)

    def getvalue(self) -> str:
        with self._lock:
            return super().getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A Runtime served by a real uvicorn in a thread on a loopback port."""

    runtime: Runtime
    base_url: str
    console: ThreadSafeBuffer
    server: uvicorn.Server
    thread: threading.Thread
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # The server takes state-changing requests only as JSON, even body-less ones.
        self.client = httpx.Client(base_url=self.base_url, timeout=30, headers=JSON_HEADERS)

    def submit(self, definition: str, **params: Any) -> dict[str, Any]:
        r = self.client.post("/api/jobs", json={"definition": definition, "params": params})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def wait_job(
        self, job_id: str, statuses: tuple[str, ...] = ("succeeded",), timeout: float = 60
    ):
        """Wait until the job reaches one of ``statuses`` (or fail on another end)."""
        finals = {"succeeded", "failed", "cancelled"}

        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            assert job["status"] not in finals, f"job ended {job['status']}: {job['error']}"
            return None

        return wait_until(reached, timeout, what=f"job {job_id} to be {statuses}")

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "server did not stop"


def start_server(data_dir: Path, **overrides: Any) -> LiveServer:
    console = ThreadSafeBuffer()
    token = overrides.pop("token", None)
    settings = Settings(
        location=parse_store(overrides.pop("store", None), data_dir),
        job_sources=(str(JOBDEFS),),
        console=console,
        **overrides,
    )
    rt = Runtime(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(rt, token=token), log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn to start")
    assert server.started, "server failed to start"
    return LiveServer(rt, f"http://127.0.0.1:{port}", console, server, thread)


@pytest.fixture(autouse=True)
def _reset_sse_shutdown_flag() -> Iterator[None]:
    """sse-starlette keeps a process-wide exit flag; each test starts clean."""
    AppStatus.should_exit = False
    yield
    AppStatus.should_exit = False


@contextmanager
def serving(data_dir: Path, **overrides: Any) -> Iterator[LiveServer]:
    """A live server for the length of a ``with`` block (see start_server)."""
    live = start_server(data_dir, **overrides)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "data") as live:
        yield live


@pytest.fixture
def any_server(tmp_path: Path, any_store: str | None) -> Iterator[LiveServer]:
    """A live server on SQLite files, then on PostgreSQL (see any_store)."""
    with serving(tmp_path / "data", store=any_store) as live:
        yield live


@dataclass
class ServerProcess:
    """``steptrail serve`` (or ``worker``) in its own process, for tests that kill it."""

    data_dir: Path
    port: int
    extra_args: tuple[str, ...] = ()
    command: str = "serve"
    stdout: str = "log"  # or "closed" (a dead pipe) or "unread" (a pipe nobody reads)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.log_path = (
            self.data_dir.parent / f"{self.command}-{self.port}-{time.monotonic_ns()}.log"
        )
        args = [
            sys.executable,
            "-m",
            "steptrail",
            self.command,
            "--data-dir",
            str(self.data_dir),
            "--jobs",
            str(JOBDEFS),
            *self.extra_args,
        ]
        if self.command == "serve":
            args += ["--port", str(self.port)]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                args,
                cwd=ROOT,
                stdout=out if self.stdout == "log" else subprocess.PIPE,
                stderr=subprocess.STDOUT if self.stdout == "log" else out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # its own process group, as in a terminal
            )
        if self.stdout == "closed":
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        wait_until(self._ready, 30, 0.05, what=f"{self.command} to start (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.output()
        if self.command == "worker":
            return "running" in self.output()
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


PG_URL = os.environ.get("STEPTRAIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_store() -> Iterator[str]:
    """A store URL on the real PostgreSQL, in a schema of its own.

    Unreachable PostgreSQL fails the test under CI (CI=true) and skips it
    elsewhere: CI must never pass by skipping the scale-out path."""
    location = parse_store(PG_URL, ".")
    conninfo = location.postgres_conninfo()
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is unreachable at {PG_URL}: {e}")
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL}")
    schema = f"st_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]
        conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> str | None:
    """Run the test once on SQLite files (None) and once on PostgreSQL (a URL)."""
    if request.param == "sqlite":
        return None
    request.applymarker(pytest.mark.postgres)
    return str(request.getfixturevalue("pg_store"))


def store_args(store: str | None, data_dir: Path) -> list[str]:
    """The CLI options that open ``store`` (None: the SQLite files in data_dir)."""
    return ["--store", store] if store else ["--data-dir", str(data_dir)]
