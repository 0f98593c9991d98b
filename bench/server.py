"""A real ``steptrail serve`` in a process of its own, for benchmarks that
measure the server as a user meets it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_JOBS = str(Path(__file__).resolve().parent / "benchjobs.py")


class BenchServer:
    def __init__(self, data_dir: Path, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "steptrail", "serve", "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port), "--jobs", BENCH_JOBS, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)

    def submit(self, definition: str, **params: Any) -> str:
        r = self.client.post("/api/jobs", json={"definition": definition, "params": params})
        r.raise_for_status()
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/api/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> None:
        self.client.post(f"/api/jobs/{job_id}/cancel", json={})

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
