"""Log text on a terminal: only colour sequences pass, every other control
character is shown, not obeyed; ``steptrail tail`` prints none of them raw and
keeps colours on a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steptrail.domain.terminal import for_terminal, use_colour
from tests.conftest import ROOT, LiveServer
from tests.jobdefs import ESCAPE_SEQUENCES


@pytest.mark.parametrize("colour", [True, False])
@pytest.mark.parametrize("raw,shown", ESCAPE_SEQUENCES.values(), ids=list(ESCAPE_SEQUENCES))
def test_control_sequences_are_shown_not_obeyed(raw: str, shown: str, colour: bool) -> None:
    assert for_terminal(raw, colour) == shown


def test_nothing_but_sgr_survives() -> None:
    text = "".join(raw for raw, _ in ESCAPE_SEQUENCES.values()) + "\x1b[31mred\x1b[0m"
    out = for_terminal(text, colour=True)
    without_sgr = out.replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in without_sgr)


def test_colours_kept_when_on_and_reset_at_the_end() -> None:
    text = "\x1b[1;36mextracting\x1b[0m from \x1b[38;5;196msource"
    assert for_terminal(text, colour=True) == text + "\x1b[0m"
    assert for_terminal(text, colour=False) == "extracting from source"


def test_plain_text_newlines_and_tabs_pass_unchanged() -> None:
    text = "line one\n\tindented 步骤 ✓"
    assert for_terminal(text, colour=True) == text
    assert for_terminal(text, colour=False) == text


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour("auto", FakeTty()) is True
    assert use_colour("auto", io.StringIO()) is False
    assert use_colour("always", io.StringIO()) is True
    assert use_colour("never", FakeTty()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour("auto", FakeTty()) is False
    with pytest.raises(ValueError, match="colour must be one of"):
        use_colour("rainbow", FakeTty())


# ---- `steptrail tail` on a pipe and on a pseudo-terminal


SGR = re.compile(rb"\x1b\[[0-9;:]*m")


def _tail_command(server: LiveServer, job_id: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "steptrail", "tail", job_id, "--url", server.base_url, *args]


def _controls(text: str) -> list[str]:
    """Characters a terminal would obey, other than newline and tab."""
    return [c for c in text if c not in "\n\t" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]


def _assert_shown(text: str) -> None:
    for what, (_, shown) in ESCAPE_SEQUENCES.items():
        assert f"{what}: {shown}" in text


def _run_on_pty(command: list[str]) -> tuple[int, bytes]:
    """Run with stdout on a pseudo-terminal; everything it printed, as bytes."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "STEPTRAIL_COLOR")}
    proc = subprocess.Popen(command, cwd=ROOT, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(10), out
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_tail_prints_no_control_sequence_raw(server: LiveServer, tmp_path: Path) -> None:
    job = server.wait_job(server.submit("escapes")["id"])
    piped = subprocess.run(
        _tail_command(server, job["id"], "--color=auto"), cwd=ROOT, capture_output=True
    )
    assert piped.returncode == 0, piped.stderr
    text = piped.stdout.decode()
    assert _controls(text) == [], "no colour when piped, and nothing else raw"
    _assert_shown(text)
    assert "red and plain" in text

    forced = subprocess.run(
        _tail_command(server, job["id"], "--color=always"), cwd=ROOT, capture_output=True
    )
    assert b"\x1b[1;31mred\x1b[0m and plain" in forced.stdout
    assert _controls(SGR.sub(b"", forced.stdout).decode()) == []

    # A file name is enough: index-files logs it as it finds it.
    files = tmp_path / "files"
    files.mkdir()
    (files / "report\x1b]0;pwned\x07.txt").write_text("one\ntwo\n")
    index = server.wait_job(server.submit("index-files", path=str(files))["id"])
    piped = subprocess.run(_tail_command(server, index["id"]), cwd=ROOT, capture_output=True)
    assert piped.returncode == 0, piped.stderr
    assert _controls(piped.stdout.decode()) == []
    assert "report␛]0;pwned␇.txt 2 lines" in piped.stdout.decode()


def test_tail_keeps_colours_on_a_terminal(server: LiveServer) -> None:
    job = server.wait_job(server.submit("escapes")["id"])
    code, out = _run_on_pty(_tail_command(server, job["id"]))
    assert code == 0, out
    assert b"\x1b[1;31mred\x1b[0m and plain" in out
    # The terminal's own line ending is \r\n; any other CR or control is not ours.
    rest = SGR.sub(b"", out).replace(b"\r\n", b"\n").decode()
    assert _controls(rest) == []
    _assert_shown(rest)

    code, out = _run_on_pty(_tail_command(server, job["id"], "--color=never"))
    assert code == 0 and b"\x1b" not in out and b"red and plain" in out
