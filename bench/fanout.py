"""Fan-out throughput: one step mapping over 2,000 children of 10 lines each
(``ctx.map``) on a real ``steptrail serve --concurrency 2`` (two worker
processes), on SQLite or PostgreSQL; children per second from the first
child starting to the last child ending (and from the first child ending to
the last), read from the children's own rows. The API's median answer time
(``GET /api/jobs?limit=50`` and ``GET /api/steps/{id}`` of the fanning step)
is measured while the children run, against the same requests idle, in the
same run.

    python bench/fanout.py [--children 2000] [--lines 10] [--map-concurrency 8]
                           [--store postgresql://user@host/db]

With a PostgreSQL store, the run uses a schema of its own and drops it after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import _drop_schema
from bench.server import BenchServer

IDLE_REQUESTS = 200


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def wait_ended(server: BenchServer, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (job := server.job(job_id))["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.05)
    return job


def fan_step(server: BenchServer, job_id: str) -> dict[str, Any] | None:
    step = server.job(job_id)["steps"][0]
    return step if step["id"] else None


def timed_ms(server: BenchServer, path: str, **params: Any) -> float:
    start = time.perf_counter()
    server.client.get(path, params=params).raise_for_status()
    return (time.perf_counter() - start) * 1000


def api_pair(server: BenchServer, step_id: str) -> tuple[float, float]:
    """One answer of each route, in ms."""
    return timed_ms(server, "/api/jobs", limit=50), timed_ms(server, f"/api/steps/{step_id}")


def children(server: BenchServer, step_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"limit": 500, **({"after": after} if after else {})}
        page = server.client.get(f"/api/steps/{step_id}/children", params=params).json()
        found += page["children"]
        after = page["next_after"]
        if after is None:
            return found


def run(store: str | None, n: int, lines: int, map_concurrency: int) -> dict[str, float]:
    store_args = ["--store", store] if store else []
    with tempfile.TemporaryDirectory() as tmp:
        server = BenchServer(Path(tmp) / "data", "--concurrency", "2", *store_args)
        try:
            # a small fan-out first: the idle baseline reads a finished one
            warm = server.submit("fanout", children=20, lines=lines)
            wait_ended(server, warm)
            warm_step = fan_step(server, warm)
            assert warm_step is not None
            idle = [api_pair(server, warm_step["id"]) for _ in range(IDLE_REQUESTS)]

            job_id = server.submit(
                "fanout", children=n, lines=lines, map_concurrency=map_concurrency
            )
            busy: list[tuple[float, float]] = []
            step = None
            while (step := fan_step(server, job_id)) is None:
                time.sleep(0.01)
            while server.job(job_id)["status"] in ("queued", "running"):
                busy.append(api_pair(server, step["id"]))
            job = wait_ended(server, job_id)
            if job["status"] != "succeeded":
                raise RuntimeError(f"the fan-out ended {job['status']}: {job['error']}")
            rows = children(server, step["id"])
        finally:
            server.close()
    assert len(rows) == n and all(c["counts"]["total"] == lines for c in rows)
    first_start = min(_ts(c["started_at"]) for c in rows)
    ends = sorted(_ts(c["finished_at"]) for c in rows)
    return {
        "start_to_end": n / (ends[-1] - first_start),
        "end_to_end": (n - 1) / (ends[-1] - ends[0]),
        "seconds": ends[-1] - first_start,
        "idle_jobs": statistics.median(a for a, _ in idle),
        "idle_step": statistics.median(b for _, b in idle),
        "busy_jobs": statistics.median(a for a, _ in busy),
        "busy_step": statistics.median(b for _, b in busy),
        "samples": len(busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--map-concurrency", type=int, default=8)
    parser.add_argument("--store", default=None, help="sqlite (default) or postgresql://...")
    args = parser.parse_args()
    store = args.store
    if store:
        store = f"{store.split('?')[0]}?schema=bench_{uuid.uuid4().hex[:8]}"
    try:
        r = run(store, args.children, args.lines, args.map_concurrency)
    finally:
        if store:
            _drop_schema(store)
    print(
        f"{args.children} children x {args.lines} lines, ctx.map concurrency"
        f" {args.map_concurrency}, serve --concurrency 2,"
        f" store: {'PostgreSQL' if store else 'SQLite files'}"
    )
    rate, seconds = r["start_to_end"], r["seconds"]
    print(f"first child started -> last ended  {rate:8.1f} children/s ({seconds:.1f} s)")
    print(f"first child ended -> last ended    {r['end_to_end']:8.1f} children/s")
    ratios = []
    for route, name in (("GET /api/jobs?limit=50", "jobs"), ("GET /api/steps/{id}", "step")):
        idle, busy = r[f"idle_{name}"], r[f"busy_{name}"]
        ratios.append(busy / idle)
        print(f"{route:<24} p50 idle {idle:6.1f} ms, during {busy:6.1f} ms: {busy / idle:5.2f}x")
    print(f"  ({r['samples']} request pairs during the fan-out, {IDLE_REQUESTS} idle)")
    met = max(ratios) <= 2 and (store is not None or rate >= 100)
    target = "API <= 2x idle" if store else ">= 100 children/s, API <= 2x idle"
    print(f"targets ({target}): {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
