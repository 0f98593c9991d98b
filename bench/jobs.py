"""Job throughput: 1,000 demo jobs of 20 lines each (``rate=0``) on a real
``steptrail serve --concurrency 4``; jobs/s from the first submit until all
have ended. The baseline, measured in the same run, is the submit rate alone
(the API taking jobs without running them: ``--no-workers``).

    python bench/jobs.py [--jobs 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import BenchServer


def submit_all(server: BenchServer, n: int) -> list[str]:
    return [server.submit("demo", lines=20, rate=0) for _ in range(n)]


def all_ended(server: BenchServer) -> bool:
    return not any(
        server.client.get("/api/jobs", params={"status": status, "limit": 1}).json()["jobs"]
        for status in ("queued", "running")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        server = BenchServer(Path(tmp) / "only-api", "--no-workers")
        try:
            start = time.perf_counter()
            submit_all(server, n)
            submit_rate = n / (time.perf_counter() - start)
        finally:
            server.close()
        server = BenchServer(Path(tmp) / "data", "--concurrency", str(args.concurrency))
        try:
            start = time.perf_counter()
            submit_all(server, n)
            deadline = time.monotonic() + 600
            while not all_ended(server):
                if time.monotonic() > deadline:
                    raise RuntimeError("jobs still not ended after 600 s")
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
        finally:
            server.close()
    rate = n / elapsed
    print(f"{n} demo jobs (4 steps x 20 lines), --concurrency {args.concurrency}")
    print(f"submit only (no workers)           {submit_rate:8.1f} jobs/s")
    print(f"submit -> all ended                {rate:8.1f} jobs/s ({elapsed:.1f} s)")
    print(f"ratio to submit-only               {rate / submit_rate:8.2f}x")
    print(f"target (>= 20 jobs/s): {'met' if rate >= 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
