"""The read model knows which event store it belongs to.

Real ``steptrail serve`` processes on damaged data directories: a read model
deleted, truncated, garbled, from another store, older or newer than its store
ends in the right jobs (the model set aside and rebuilt, with one line saying
so); a damaged event store is refused with a message naming it. Nothing ends
in wrong data served as healthy, and ``steptrail rebuild`` repairs every
damaged read model.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from steptrail.domain.store import parse_store
from tests.conftest import (
    JOBDEFS,
    ROOT,
    ServerProcess,
    free_port,
    run_cli,
    store_args,
    wait_until,
)

Jobs = list[tuple[str, str, list[tuple[str, str, int]]]]


def _jobs(base_url: str) -> Jobs:
    """What a user sees: every job with its steps' statuses and line counts."""
    listed = httpx.get(f"{base_url}/api/jobs", timeout=10).json()["jobs"]
    out = []
    for job in listed:
        full = httpx.get(f"{base_url}/api/jobs/{job['id']}", timeout=10).json()
        steps = [(s["name"], s["status"], s["counts"]["total"]) for s in full["steps"]]
        out.append((job["id"], job["status"], steps))
    return sorted(out)


def _run_jobs(data_dir: Path, *line_counts: int, store: str | None = None) -> Jobs:
    server = _serve(data_dir, store)
    try:
        for n in line_counts:
            r = httpx.post(
                f"{server.base_url}/api/jobs",
                json={"definition": "burst", "params": {"lines": n}},
                timeout=30,
            )
            assert r.status_code == 201, r.text
            _wait_done(server.base_url, r.json()["id"])
        return _jobs(server.base_url)
    finally:
        server.stop()


def _wait_done(base_url: str, job_id: str) -> None:
    wait_until(
        lambda: (
            httpx.get(f"{base_url}/api/jobs/{job_id}", timeout=10).json()["status"] == "succeeded"
        ),
        30,
        what=f"job {job_id} to succeed",
    )


def _serve(data_dir: Path, store: str | None = None) -> ServerProcess:
    extra = ("--store", store) if store else ()
    return ServerProcess(data_dir, free_port(), extra).start()


def _served(data_dir: Path, store: str | None = None) -> tuple[Jobs, str]:
    """The jobs a fresh server shows, and what it printed."""
    server = _serve(data_dir, store)
    try:
        health = httpx.get(f"{server.base_url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        return _jobs(server.base_url), server.output()
    finally:
        server.stop()


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--data-dir", str(data_dir), timeout=90)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Jobs, Jobs]:
    """A data directory after two jobs, a copy of it after the first one, and
    the jobs each shows."""
    root = tmp_path_factory.mktemp("integrity")
    data = root / "data"
    first = _run_jobs(data, 30)
    older = root / "older"
    shutil.copytree(data, older)
    both = _run_jobs(data, 40)
    assert len(first) == 1 and len(both) == 2
    return data, older, first, both


@pytest.fixture
def copy(base: tuple[Path, Path, Jobs, Jobs], tmp_path: Path) -> Callable[[Path], Path]:
    def make(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        return target

    return make


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _garble(path: Path) -> None:
    """Junk over the pages after the first: the header still says SQLite."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * (size - 4096))


def _garble_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"not a database at all" * 5)


def _another_store(path: Path) -> None:
    other = path.parent.parent / "other"
    _run_jobs(other, 7)
    shutil.copy(other / "readmodel.sqlite", path)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "deleted": lambda p: p.unlink(),
    "truncated": _truncate,
    "garbled": _garble,
    "garbled-header": _garble_header,
    "from-another-store": _another_store,
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_read_model_is_set_aside_and_rebuilt_at_start(
    damage: str, base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    DAMAGES[damage](data / "readmodel.sqlite")
    jobs, output = _served(data)
    assert jobs == base[3]
    if damage != "deleted":
        assert output.count("kept as") == 1, output
        assert len(list(data.glob("readmodel.sqlite.broken-*"))) >= 1
    assert "Traceback" not in output
    verified = _cli(data, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("damage", DAMAGES)
def test_rebuild_repairs_a_damaged_read_model(
    damage: str, base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    DAMAGES[damage](data / "readmodel.sqlite")
    rebuilt = _cli(data, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    verified = _cli(data, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    jobs, output = _served(data)
    assert jobs == base[3] and "kept as" not in output


def test_a_read_model_older_than_its_store_catches_up(
    base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    shutil.copy(base[1] / "readmodel.sqlite", data / "readmodel.sqlite")
    jobs, output = _served(data)
    assert jobs == base[3] and "kept as" not in output


def test_a_store_restored_from_an_older_backup_is_not_shown_with_newer_jobs(
    base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{data}/events.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copy(base[1] / "events.sqlite", data / "events.sqlite")
    jobs, output = _served(data)
    assert jobs == base[2]
    assert "ahead of its event store" in output and output.count("kept as") == 1


def test_a_deleted_event_store_serves_no_ghost_jobs(
    base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    (data / "events.sqlite").unlink()
    server = _serve(data)
    try:
        assert _jobs(server.base_url) == []
        assert "ahead of its event store" in server.output()
        r = httpx.post(
            f"{server.base_url}/api/jobs",
            json={"definition": "burst", "params": {"lines": 3}},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        _wait_done(server.base_url, r.json()["id"])
    finally:
        server.stop()


@pytest.mark.parametrize("damage", ["truncated", "garbled", "garbled-header"])
def test_a_damaged_event_store_is_refused(
    damage: str, base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    data = copy(base[0])
    events = data / "events.sqlite"
    DAMAGES[damage](events)
    proc = subprocess.run(_serve_args(data), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"the event store {events} is damaged" in proc.stderr
    assert "restore it from a backup" in proc.stderr and "Traceback" not in proc.stderr
    for command in ("verify", "rebuild", "events"):
        args = (
            (command, "00000000-0000-0000-0000-000000000000") if command == "events" else (command,)
        )
        refused = _cli(data, *args)
        assert refused.returncode == 2 and "is damaged" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def _serve_args(data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "steptrail",
        "serve",
        "--data-dir",
        str(data),
        "--jobs",
        str(JOBDEFS),
        "--port",
        str(free_port()),
    ]


# PostgreSQL: the store and its read model share a schema; the read model
# still checks it belongs to the events it finds there.


@pytest.fixture
def pg_jobs(pg_store: str, tmp_path: Path) -> Iterator[tuple[str, Path, Jobs]]:
    data = tmp_path / "pgdata"
    yield pg_store, data, _run_jobs(data, 20, 10, store=pg_store)


def _pg(store: str, sql: str) -> Any:
    location = parse_store(store, ".")
    schema = location.postgres_params()["schema"]
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")  # type: ignore[arg-type]
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_postgres_read_model_of_another_store_is_rebuilt(
    pg_jobs: tuple[str, Path, Jobs],
) -> None:
    store, data, jobs = pg_jobs
    _pg(store, "UPDATE store_identity SET first_event = 'another:1'")
    shown, output = _served(data, store)
    assert shown == jobs
    assert "built from another event store" in output and "rebuilding it" in output


@pytest.mark.postgres
def test_postgres_read_model_ahead_of_its_store_is_rebuilt(
    pg_jobs: tuple[str, Path, Jobs],
) -> None:
    store, data, _ = pg_jobs
    _pg(store, "TRUNCATE steptrail_events")
    shown, output = _served(data, store)
    assert shown == []
    assert "ahead of its event store" in output
    verified = run_cli("verify", "--store", store)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_killed_server_leaves_a_read_model_that_is_kept(
    base: tuple[Path, Path, Jobs, Jobs], copy: Callable[[Path], Path]
) -> None:
    """A crash leaves a WAL beside the read model: that is no damage."""
    data = copy(base[0])
    server = _serve(data)
    try:
        assert _jobs(server.base_url) == base[3]
    finally:
        server.kill()
    assert (data / "readmodel.sqlite-wal").exists()
    jobs, output = _served(data)
    assert jobs == base[3] and "kept as" not in output
    assert not list(data.glob("readmodel.sqlite.broken-*"))


# Rows as an older steptrail left them: no line marks, or line ids that count
# lines (numbered 1, 2, 3... as inserted) instead of naming their place in the store.
OLDER_LAYOUTS = {
    "without line marks": "DELETE FROM {schema}line_marks",
    "with counting line ids": "UPDATE {schema}lines SET line_id ="
    " (SELECT COUNT(*) FROM {schema}lines l2 WHERE l2.line_id <= {schema}lines.line_id)",
}


@pytest.mark.parametrize("layout", OLDER_LAYOUTS)
def test_a_read_model_of_an_older_steptrail_is_rebuilt(
    tmp_path: Path, any_store: str | None, layout: str
) -> None:
    """A model whose rows an older steptrail laid out (streams and time travel
    read lines through line marks; ``/api/logs`` cursors are line ids) is
    refused by ``verify`` with what to do, and rebuilt at start, not served."""
    data = tmp_path / "data"
    before = _run_jobs(data, 120, store=any_store)
    location = parse_store(any_store, data)
    if any_store is None:
        with sqlite3.connect(location.readmodel_path) as conn:
            conn.execute(OLDER_LAYOUTS[layout].format(schema=""))
    else:
        schema = location.postgres_params()["schema"]
        with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
            conn.execute(OLDER_LAYOUTS[layout].format(schema=f'"{schema}".'))  # type: ignore[arg-type]
    refused = run_cli("verify", *store_args(any_store, data), timeout=90)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "from an older version of steptrail" in refused.stderr
    assert "run `steptrail rebuild`" in refused.stderr
    jobs, output = _served(data, any_store)
    assert jobs == before
    assert "older steptrail" in output, output
    verify = run_cli("verify", *store_args(any_store, data), timeout=90)
    assert verify.returncode == 0, verify.stdout + verify.stderr
