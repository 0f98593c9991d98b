"""What ``pip install .`` gives a user: one top-level package, ``steptrail``,
whose public API is enough to write the README's jobs file and run it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import JSON_HEADERS, ROOT, free_port, wait_until


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout's files: setuptools leaves a build/
    folder beside the sources it builds."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "steptrail"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("steptrail-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as site-packages would hold it."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Python that sees the unpacked wheel and the dependencies, but neither the
    checkout (``-S`` skips the editable install's path hook; cwd is elsewhere)."""
    deps = sysconfig.get_paths()["purelib"]
    return subprocess.Popen(
        [sys.executable, "-S", *args],
        cwd=cwd,
        env={"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_wheel_installs_only_steptrail(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert tops == {"steptrail", "steptrail-0.1.0.dist-info"}


def test_the_public_api_imports_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = (
        "import steptrail, importlib.util\n"
        "from steptrail import JobDefinition, Param, Step, StepContext\n"
        f"assert steptrail.__file__.startswith({str(installed)!r}), steptrail.__file__\n"
        "assert all(importlib.util.find_spec(n) is None for n in"
        " ('domain', 'projections', 'api', 'ui'))\n"
        "print('ok')\n"
    )
    proc = run_installed(installed, tmp_path, "-c", code)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "ok", out


@pytest.mark.timeout(120)
def test_the_readme_jobs_example_runs_as_written(installed: Path, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(# myjobs\.py.*?)```", readme, re.S)
    (tmp_path / "myjobs.py").write_text(example)
    port = free_port()
    server = run_installed(
        installed,
        tmp_path,
        *("-m", "steptrail", "serve", "--jobs", "myjobs.py", "--data-dir", "data"),
        *("--port", str(port)),
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=JSON_HEADERS)

        def up() -> bool:
            assert server.poll() is None, server.communicate()[0]
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 60, what="the installed server to start")
        job = client.post("/api/jobs", json={"definition": "crawl", "params": {}}).json()
        done = wait_until(
            lambda: (
                (j := client.get(f"/api/jobs/{job['id']}").json())["status"] != "queued"
                and j["status"] != "running"
                and j
            ),
            60,
            what="the crawl job to end",
        )
        assert done["status"] == "succeeded", done
        lines = [
            line["message"]
            for step_id in done["step_job_ids"]
            for line in client.get(f"/api/steps/{step_id}/logs").json()["lines"]
        ]
        # (the async step's event loop may log its own DEBUG line first)
        assert lines[:3] == ["fetched a", "fetched b", "fetched c"]
        assert lines[-1] == "plain logging lands in this step"
    finally:
        server.terminate()
        server.communicate(timeout=30)
