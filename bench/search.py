"""Search benchmark: what "n of m" and next/previous cost on a 100,000-line
step, against the baseline of the same run, the logs route's text filter
(one page of 1,000 matches, which the page's "only matching" mode reads).

    python bench/search.py [--lines 100000] [--store postgresql://...]

Prints the median of 20 requests of each kind and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer, start_server  # noqa: E402

RUNS = 20


def median_ms(server: LiveServer, path: str, params: dict[str, Any]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        r = server.client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    server = start_server(Path(tempfile.mkdtemp()) / "data", store=args.store)
    try:
        job = server.wait_job(server.submit("burst", lines=args.lines)["id"], timeout=600)
        sid = job["steps"][0]["id"]
        logs, search = f"/api/steps/{sid}/logs", f"/api/steps/{sid}/search"
        q = "line 6779"
        base = median_ms(server, logs, {"q": q, "limit": 1000})
        cases = {
            "first match, n of m": {"q": q},
            "next match from the middle": {"q": q, "seq": args.lines // 2},
            "previous error from the end": {"level": "error", "direction": "prev"},
        }
        print(f"{args.store or 'sqlite'}, {args.lines:,} lines, median of {RUNS}")
        print(f"  baseline: logs?q= one page of matches  {base:7.1f} ms")
        for what, params in cases.items():
            ms = median_ms(server, search, params)
            print(f"  search: {what:<28} {ms:7.1f} ms  ({ms / base:.2f}x baseline)")
    finally:
        server.stop()


if __name__ == "__main__":  # worker processes import this module again
    main()
