"""Issue 4, show 3: ``steptrail verify`` names the step whose rows differ from a
rebuild, and ``steptrail rebuild`` repairs the read model, with or without a
server running (a running server keeps serving throughout)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.conftest import LiveServer, run_cli, start_server, step_lines, wait_until


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=90)


def _tamper(server: LiveServer, sql: str, *params: Any) -> None:
    """Change the live read model behind the projector's back."""
    with sqlite3.connect(server.runtime.location.readmodel_path) as conn:
        assert conn.execute(sql, params).rowcount == 1


def _seqs(server: LiveServer, step_id: str) -> list[int]:
    return [x["seq"] for x in step_lines(server.base_url, step_id)]


def test_verify_names_the_damaged_step_and_rebuild_repairs_it(server: LiveServer) -> None:
    data = str(server.runtime.location.data_dir)
    burst = server.wait_job(server.submit("burst", lines=3000)["id"])["steps"][0]
    drip = server.wait_job(server.submit("drip", lines=20, interval=0)["id"])["steps"][0]

    healthy = _cli("verify", "--data-dir", data)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "matches" in healthy.stdout and "(jobs: 2, steps: 3, lines: 3021)" in healthy.stdout

    # one line row deleted: the panel shows a gap; verify names the step and seq
    _tamper(server, "DELETE FROM lines WHERE step_job_id = ? AND seq = 17", burst["id"])
    assert 17 not in _seqs(server, burst["id"])
    broken = _cli("verify", "--data-dir", data)
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        f"step {burst['id']} (burst attempt 1): line missing from the live read model: seq 17"
    ]
    assert "1 difference" in broken.stderr

    repaired = _cli("rebuild", "--data-dir", data)
    assert repaired.returncode == 0, repaired.stderr
    assert _seqs(server, burst["id"]) == list(range(1, 3001))
    assert _cli("verify", "--data-dir", data).returncode == 0

    # one line altered, and one count: each difference names its step
    _tamper(
        server,
        "UPDATE lines SET message = 'tampered' WHERE step_job_id = ? AND seq = 5",
        drip["id"],
    )
    _tamper(server, "UPDATE steps SET n_info = n_info + 1 WHERE step_job_id = ?", burst["id"])
    broken = _cli("verify", "--data-dir", data)
    assert broken.returncode == 1
    assert sorted(broken.stdout.splitlines()) == sorted(
        [
            f"step {drip['id']} (drip attempt 1): line seq 5 differs in"
            " message (live 'tampered', rebuilt 'drip 5')",
            f"step {burst['id']} (burst attempt 1): differs in"
            f" n_info (live {burst['counts']['info'] + 1}, rebuilt {burst['counts']['info']})",
        ]
    )
    assert _cli("rebuild", "--data-dir", data).returncode == 0
    assert _cli("verify", "--data-dir", data).returncode == 0
    assert server.job(drip["job_id"])["steps"][0]["counts"] == drip["counts"]


def test_rebuild_and_verify_while_a_job_runs(server: LiveServer) -> None:
    """The running server keeps answering during the rebuild; what it shows
    never goes backwards; the job finishes with every line; verify, taken while
    the model moves, compares at one position and passes."""
    data = str(server.runtime.location.data_dir)
    job = server.submit("drip", lines=800, interval=0.01)
    wait_until(
        lambda: (j := server.job(job["id"]))["steps"][0]["counts"]["total"] > 20 and j,
        what="the job to be logging",
    )
    seen: list[int] = []
    failures: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            r = server.client.get(f"/api/jobs/{job['id']}")
            if r.status_code != 200:
                failures.append(r.text)
            else:
                seen.append(r.json()["steps"][0]["counts"]["total"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        rebuilt = _cli("rebuild", "--data-dir", data)
        checked = _cli("verify", "--data-dir", data)
        assert server.job(job["id"])["status"] == "running", "the job ran throughout"
    finally:
        done.set()
        watcher.join(10)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not failures and len(seen) > 1
    assert seen == sorted(seen), "the count went backwards during the swap"

    finished = server.wait_job(job["id"])
    step = finished["steps"][0]
    assert step["counts"]["total"] == 800 and _seqs(server, step["id"]) == list(range(1, 801))
    assert _cli("verify", "--data-dir", data).returncode == 0


def test_rebuild_without_a_server_recreates_a_lost_read_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    job = server.wait_job(server.submit("burst", lines=1500)["id"])
    server.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{data / 'readmodel.sqlite'}{suffix}").unlink(missing_ok=True)

    assert _cli("verify", "--data-dir", str(data)).returncode == 2  # no read model to verify
    rebuilt = _cli("rebuild", "--data-dir", str(data))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _cli("verify", "--data-dir", str(data)).returncode == 0

    again = start_server(data)
    try:
        assert again.job(job["id"]) == {**job, "position": again.job(job["id"])["position"]}
        assert _seqs(again, job["steps"][0]["id"]) == list(range(1, 1501))
    finally:
        again.stop()


def test_replay_commands_refuse_a_directory_without_events(tmp_path: Path) -> None:
    for command in ("verify", "rebuild"):
        result = _cli(command, "--data-dir", str(tmp_path / "nothing"))
        assert result.returncode == 2
        assert "no event store at" in result.stderr
    assert not (tmp_path / "nothing").exists(), "nothing created"
