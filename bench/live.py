"""Live delivery benchmark: from a log call to receipt by SSE clients.

1. Latency of one SSE client following a step that logs at 1,000, 10,000 and
   20,000 lines/s: receipt time minus the line's own timestamp (taken at the
   log call), per line; p50, p99, max; and the rate actually delivered.
2. 500 SSE clients (in two client processes) following one busy step: every
   client must receive every line, once, in order; latency p50/p99 over every
   line of every 10th client; the server's peak RSS.

The server is ``steptrail serve`` in its own process (with this file's
``paced`` job definition), on SQLite files in a temporary directory. The
clients share the machine with it, so their parsing competes for its CPUs.

    python bench/live.py [--clients 500] [--seconds 10] [--busy-rate 1000]

Targets: p99 <= 250 ms at 1,000 lines/s; 500 clients all complete with
p99 <= 1 s and server RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from steptrail.domain.aggregates import step_job_id_for  # noqa: E402
from steptrail.domain.context import StepContext  # noqa: E402
from steptrail.domain.definitions import JobDefinition, Param  # noqa: E402

BUCKET_MS = 1  # latency histogram resolution


def paced(ctx: StepContext) -> None:
    """Wait for the go file (clients connected), then log ``lines`` lines at
    ``rate`` lines/s, each stamped by logging at the call."""
    go = Path(ctx.params["go"])
    while not go.exists():
        ctx.sleep(0.02)
    log = logging.getLogger("bench.paced")
    n, rate = ctx.params["lines"], ctx.params["rate"]
    start = time.perf_counter()
    for i in range(n):
        ahead = start + i / rate - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)  # at high rates lines go out in ~1 ms bursts
        log.info("paced line %d of %d", i + 1, n, extra={"fields": {"i": i + 1}})


PACED = JobDefinition.of(
    "paced",
    [paced],
    [Param("lines", int, 1000), Param("rate", float, 1000.0), Param("go", str, "")],
)


# ---- measuring


class Histogram:
    """Latencies in 1 ms buckets: exact enough, mergeable across processes."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, seconds: float) -> None:
        bucket = max(0, int(seconds * 1000 / BUCKET_MS))
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def merge(self, counts: dict[int, int]) -> None:
        for bucket, n in counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + n

    def total(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float:
        """Upper edge of the bucket holding the q-quantile, in ms."""
        target = q * self.total()
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= target:
                return (bucket + 1) * BUCKET_MS
        return float("nan")

    def max(self) -> float:
        return (max(self.counts) + 1) * BUCKET_MS if self.counts else float("nan")


_epoch_of_second: dict[str, float] = {}


def epoch(iso: str) -> float:
    """``2026-11-24T10:00:00.123Z`` -> epoch seconds, cheaply (clients parse
    millions of these while competing with the server for CPU)."""
    second = iso[:19]
    base = _epoch_of_second.get(second)
    if base is None:
        base = datetime.fromisoformat(second).replace(tzinfo=UTC).timestamp()
        _epoch_of_second[second] = base
    return base + int(iso[20:23]) / 1000


LOGS_HEAD = re.compile(rb'\{"step_job_id":"[^"]*","first_seq":(\d+),"last_seq":(\d+),')


async def follow(
    host: str, port: int, query: str, lines: int, hist: Histogram | None, ready: Any
) -> bool:
    """Follow one step until ``lines`` lines; True if each came once, in order.

    A minimal HTTP/1.1 SSE reader, so that 500 clients on the server's own
    machine spend their CPU on checking, not on a client library: uvicorn
    writes each chunk of the chunked body as one SSE write. Every client
    checks every message's seq range and line count; a client given ``hist``
    also parses every line and records its latency."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
    request = (
        f"GET /api/stream?{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    if not (await reader.readline()).startswith(b"HTTP/1.1 200"):
        return False
    while await reader.readline() != b"\r\n":  # headers
        pass
    expected = 1
    try:
        while expected <= lines:
            size = int(await reader.readline(), 16)
            chunk = await reader.readexactly(size + 2)
            received = time.time()
            for event in chunk.split(b"\r\n\r\n"):
                head = event[:64]
                if b"event: ready" in head:
                    ready()
                if b"event: logs" not in head:
                    continue
                data = event[event.index(b"data: ") + 6 :]
                first, last = (int(x) for x in LOGS_HEAD.match(data).groups())  # type: ignore[union-attr]
                if first != expected or data.count(b'"seq":') != last - first + 1:
                    return False
                expected = last + 1
                if hist is not None:
                    parsed = orjson.loads(data)["lines"]
                    if [x["seq"] for x in parsed] != list(range(first, last + 1)):
                        return False
                    for line in parsed:
                        hist.add(received - epoch(line["timestamp"]))
        return True
    finally:
        writer.close()


def client_process(
    base_url: str, params: dict[str, Any], lines: int, n: int, measure_every: int, counters: Any
) -> None:
    connected, out = counters
    url = httpx.URL(base_url)
    query = str(httpx.QueryParams(params))

    async def run() -> tuple[dict[int, int], int]:
        hist = Histogram()

        def ready() -> None:
            with connected.get_lock():
                connected.value += 1

        followers = (
            follow(
                url.host,
                url.port or 80,
                query,
                lines,
                hist if i % measure_every == 0 else None,
                ready,
            )
            for i in range(n)
        )
        done = await asyncio.gather(*followers)
        return hist.counts, sum(done)

    out.put(asyncio.run(run()))


# ---- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "steptrail", "serve", "--data-dir", str(data_dir)]
        args += ["--port", str(self.port), "--jobs", __file__]
        args += ["--max-streams-per-client", "1000"]  # every client here is 127.0.0.1
        self.log = (data_dir.parent / "server.log").open("wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def run_case(
    server: Server, tmp: Path, rate: float, seconds: float, clients: int, measure_every: int = 1
) -> dict[str, Any]:
    """One step logging ``rate`` lines/s for ``seconds``, followed by ``clients``;
    every ``measure_every``-th client records per-line latency."""
    lines = int(rate * seconds)
    go = tmp / f"go-{time.monotonic_ns()}"
    r = httpx.post(
        f"{server.base_url}/api/jobs",
        json={"definition": "paced", "params": {"lines": lines, "rate": rate, "go": str(go)}},
        timeout=30,
    )
    r.raise_for_status()
    job = r.json()
    params = {"after": job["position"], "step_job_id": str(step_job_id_for(job["id"], 0, 1))}
    processes = min(2, clients)
    connected = mp.Value("i", 0)
    out: Any = mp.Queue()
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    workers = [
        mp.Process(
            target=client_process,
            args=(server.base_url, params, lines, k, measure_every, (connected, out)),
        )
        for k in share
    ]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while connected.value < clients and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # every client is connected: start logging
    started = time.monotonic()
    hist = Histogram()
    complete = 0
    for _ in workers:
        counts, done = out.get(timeout=seconds * 20 + 120)
        hist.merge(counts)
        complete += done
    for w in workers:
        w.join()
    return {
        "rate": rate,
        "lines": lines,
        "clients": clients,
        "complete": complete,
        "measured": hist.total(),
        "p50": hist.quantile(0.5),
        "p99": hist.quantile(0.99),
        "max": hist.max(),
        "wall": time.monotonic() - started,
        "peak_rss_mb": peak_rss_mb(server.proc.pid),
    }


def report(case: dict[str, Any]) -> str:
    ok = case["complete"] == case["clients"]
    return (
        f"{case['clients']:>4} client(s), {case['rate']:>6,.0f} lines/s, {case['lines']:,} lines:"
        f" p50 {case['p50']:>5.0f} ms  p99 {case['p99']:>5.0f} ms  max {case['max']:>5.0f} ms"
        f" (over {case['measured']:,} lines)\n"
        f"      all lines received by all: {'yes' if ok else 'NO'}"
        f" ({case['complete']}/{case['clients']}); delivered {case['lines'] / case['wall']:,.0f}"
        f" lines/s per client; server peak RSS {case['peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--busy-rate", type=float, default=1000.0, help="lines/s of the busy step")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(f"machine: {os.cpu_count()} CPUs; server, writer and clients share them")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results = []
        for rate in (1000.0, 10000.0, 20000.0):
            server = Server(tmp / f"data-{int(rate)}")
            try:
                results.append(run_case(server, tmp, rate, args.seconds, 1))
            finally:
                server.stop()
            print(report(results[-1]), flush=True)
        server = Server(tmp / "data-many")
        try:
            many = run_case(server, tmp, args.busy_rate, args.seconds, args.clients, 10)
        finally:
            server.stop()
        print(report(many), flush=True)
    one = results[0]
    met = (
        one["p99"] <= 250
        and many["complete"] == many["clients"]
        and many["p99"] <= 1000
        and many["peak_rss_mb"] <= 300
    )
    print(
        f"targets (p99 <= 250 ms at 1,000 lines/s; {args.clients} clients complete,"
        f" p99 <= 1 s, RSS <= 300 MB): {'met' if met else 'MISSED'}"
    )
    print(
        f"ratios: p99 at 1,000 lines/s is {one['p99'] / 250:.2f}x its target;"
        f" {args.clients} clients' p99 {many['p99'] / 1000:.2f}x and RSS"
        f" {many['peak_rss_mb'] / 300:.2f}x theirs"
    )


if __name__ == "__main__":
    main()
