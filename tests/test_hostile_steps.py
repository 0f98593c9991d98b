"""Step code that is hostile by accident cannot poison the store, lose a line,
hang a job or stop the read model: NaN and strings as progress, NUL, lone
surrogates and control characters anywhere, exceptions whose ``str()`` and
``repr()`` raise, ``sys.exit``, ``KeyboardInterrupt``, malformed logging calls
and undecodable file names. Each case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer, run_cli, start_server, step_lines, store_args


@dataclass(frozen=True)
class Expect:
    status: str
    lines: int  # lines the step holds: its logging calls plus the lines steptrail adds
    error: str | None = None  # a substring of the step's error


CASES = {
    # 1 call + one WARNING each for a bad current and a bad total
    "bad-progress": Expect("succeeded", 3),
    "bad-text": Expect("succeeded", 3),
    "bad-logging-calls": Expect("succeeded", 7),
    # 1 call + the failure's ERROR line (with its traceback)
    "raise-surrogate": Expect("failed", 2, "ValueError: cannot open caf\\udce9.txt: \\x00"),
    "raise-unprintable": Expect("failed", 2, "RaisingBoth: <RaisingBoth object; str() raised"),
    "sys-exit": Expect("failed", 2, "SystemExit: 3"),
    "keyboard-interrupt": Expect("failed", 2, "KeyboardInterrupt"),
}


def _run_case(server: LiveServer, case: str, expect: Expect) -> tuple[dict[str, Any], list[Any]]:
    job = server.submit("hostile", case=case)
    job = server.wait_job(job["id"], ("succeeded", "failed"), timeout=15)
    step = job["steps"][0]
    assert (case, step["status"]) == (case, expect.status), step["error"]
    if expect.error:
        assert expect.error in step["error"], (case, step["error"])
        assert expect.error in job["error"]
    lines = step_lines(server.base_url, step["id"])
    assert [x["seq"] for x in lines] == list(range(1, expect.lines + 1)), (case, lines)
    assert step["counts"]["total"] == expect.lines == step["last_seq"], case
    assert all("\x00" not in x["message"] and "\x00" not in x["logger"] for x in lines)
    return step, lines


def _check_details(case: str, step: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    messages = [x["message"] for x in lines]
    if case == "bad-progress":
        assert step["progress"]["current"] == 5 and step["progress"]["total"] == 10
        assert "\\x00" in step["progress"]["message"] and "\\udce9" in step["progress"]["message"]
        assert [x["level"] for x in lines] == ["INFO", "WARNING", "WARNING"]
        assert "progress current must be a finite number, got float: nan" in messages[1]
        assert "progress total must be a finite number, got float: -inf" in messages[2]
    elif case == "bad-text":
        assert messages[0].startswith("nul \\x00, lone \\udce9 surrogate, C1 \x85\x9b2J")
        assert lines[0]["fields"]["field \\x00 \\udce9"].startswith("nul \\x00")
        assert lines[0]["fields"]["n"] == "nan"
        assert lines[2]["logger"] == "tests.\\udce9\\x00"
    elif case == "bad-logging-calls":
        failed = [m for m in messages if "[logging call failed:" in m]
        assert len(failed) == 5, messages
        assert messages[0] == (
            "%d [logging call failed: TypeError: %d format: a real number is required,"
            " not str; arguments: ('x')]"
        )
        assert "str() raised RuntimeError" in messages[3]
        assert "repr() raised RuntimeError" in lines[5]["fields"]["thing"]
        assert messages[6] == "fine"
    elif step["status"] == "failed":
        assert lines[-1]["level"] == "ERROR" and "Traceback" in lines[-1]["message"]
        assert "Traceback" in step["traceback"]


def _index_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "plain.txt").write_text("a\nb\n")
    with open(os.path.join(os.fsencode(tree), b"caf\xe9\x1b]0;pwned\x07.txt"), "wb") as f:
        f.write(b"one line\n")
    return tree


def test_hostile_steps_end_cleanly_and_keep_every_line(
    tmp_path: Path, any_store: str | None
) -> None:
    data = tmp_path / "data"
    server = start_server(data, store=any_store)
    try:
        for case, expect in CASES.items():
            step, lines = _run_case(server, case, expect)
            _check_details(case, step, lines)
            # the job after a hostile one runs as usual
            server.wait_job(server.submit("burst", lines=10)["id"], timeout=15)

        job = server.wait_job(server.submit("index-files", path=str(_index_tree(tmp_path)))["id"])
        hashed = step_lines(server.base_url, job["steps"][1]["id"])
        assert len(hashed) == 3 == job["steps"][1]["counts"]["total"]
        assert any("caf\\udce9\x1b]0;pwned\x07.txt 1 lines" in x["message"] for x in hashed)

        health = httpx.get(f"{server.base_url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    finally:
        server.stop()

    server = start_server(data, store=any_store)  # a restart projects and serves as before
    try:
        assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
        server.wait_job(server.submit("burst", lines=10)["id"], timeout=15)
        verify = run_cli("verify", *store_args(any_store, data), timeout=90)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        server.stop()
