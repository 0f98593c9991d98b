"""Isolation benchmark: how fast the API answers while steps burn CPU.

A real ``steptrail serve --concurrency N`` (N worker processes) with 60 jobs
in its list. ``GET /api/jobs?limit=50`` is timed idle, then while N steps run
a pure-Python CPU loop; prints both medians and their ratio.

    python bench/isolation.py [--concurrency 2] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import BenchServer


def median_ms(server: BenchServer, requests: int) -> float:
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        server.client.get("/api/jobs", params={"limit": 50}).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def wait_status(server: BenchServer, job_id: str, statuses: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 60
    while server.job(job_id)["status"] not in statuses:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} never reached {statuses}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = BenchServer(Path(tmp) / "data", "--concurrency", str(args.concurrency))
        try:
            for job_id in [server.submit("ingest", lines=20) for _ in range(60)]:
                wait_status(server, job_id, ("succeeded",))
            idle = median_ms(server, args.requests)
            burners = [server.submit("burn") for _ in range(args.concurrency)]
            for job_id in burners:
                wait_status(server, job_id, ("running",))
            busy = median_ms(server, args.requests)
            for job_id in burners:
                server.cancel(job_id)
        finally:
            server.close()
    print(f"GET /api/jobs?limit=50, median of {args.requests} requests")
    print(f"idle                                   {idle:8.1f} ms")
    print(f"while {args.concurrency} CPU-bound steps run           {busy:8.1f} ms")
    print(f"ratio busy / idle                      {busy / idle:8.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
