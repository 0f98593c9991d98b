"""Bounded by default: request bodies (refused by their length, or as they
pass the limit, before they are read whole), open streams per client,
and connections left idle or sending a request a little at a time."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import JSON_HEADERS, LiveServer, ServerProcess, free_port, wait_until
from tests.test_security import SUBMIT, assert_error, position

# ---- bodies


def test_a_body_over_the_limit_is_refused(server: LiveServer) -> None:
    declared = httpx.post(
        server.base_url + "/api/jobs", headers=JSON_HEADERS, content=b" " * (1024 * 1024 + 1)
    )
    assert_error(declared, 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield SUBMIT[:-1]
        for _ in range(64):
            yield b" " * 32768

    chunked = httpx.post(server.base_url + "/api/jobs", headers=JSON_HEADERS, content=chunks())
    assert_error(chunked, 413, "body_too_large")
    assert position(server) == 0
    assert server.submit("drip", lines=1)["status"]  # a body under the limit is served


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server closes the connection (it ignores whatever comes)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


FIFTY_MB = 50 * 1024 * 1024


def _post_head(length_header: str) -> bytes:
    return (
        "POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{length_header}\r\n\r\n"
    ).encode()


def test_a_50_mb_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        idle = _rss_kb(pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again here
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(_post_head(f"Content-Length: {FIFTY_MB}"))
            # The answer comes before a byte of the body is sent.
            status, body = _read_response(sock)
            assert status == 413 and b"body_too_large" in body
            assert _closed_by_server(sock, 5)

        # Without Content-Length the body is counted as it comes; 50 MB are sent.
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(_post_head("Transfer-Encoding: chunked"))
            sent = _send_chunked(sock, FIFTY_MB)
            status, body = _read_response(sock)
            assert status == 413 and b"body_too_large" in body
        peak = _rss_kb(pid, "VmHWM")
        print(f"server RSS idle {idle} kB, peak while refusing 50 MB bodies {peak} kB")
        assert peak - idle < 10_000, f"the server grew {peak - idle} kB refusing the bodies"
        assert sent < FIFTY_MB, "the server kept reading a body it had refused"
        r = httpx.get(f"{proc.base_url}/api/jobs", timeout=10)
        assert r.json()["jobs"] == [] and r.json()["position"] == 0
    finally:
        proc.stop()


def _send_chunked(sock: socket.socket, total: int) -> int:
    """Send up to ``total`` bytes as 64 KiB chunks until the server answers or
    closes; return how many were sent."""
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent = 0
    sock.setblocking(False)
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break  # the answer is there
            assert writable, "the server neither read nor answered"
            try:
                sock.send(chunk)  # a partial send only cuts the chunk short: refused anyway
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                break
            sent += 65536
    finally:
        sock.setblocking(True)
    return sent


# ---- a server started with every protection option


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = (
        "--allowed-hosts",
        "steptrail.test, other.test",
        "--max-body-bytes",
        "2000",
        "--max-streams-per-client",
        "2",
        "--keep-alive-timeout",
        "1",
        "--header-timeout",
        "1",
    )
    proc = ServerProcess(tmp_path_factory.mktemp("configured") / "data", free_port(), args)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_allowed_hosts_and_body_limit_are_configurable(configured: ServerProcess) -> None:
    port, base = configured.port, configured.base_url
    for host in ("steptrail.test", "other.test", "localhost"):
        headers = {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}", **JSON_HEADERS}
        r = httpx.post(f"{base}/api/jobs", headers=headers, content=SUBMIT, timeout=10)
        assert r.status_code == 201, (host, r.text)
    r = httpx.get(f"{base}/api/jobs", headers={"Host": f"evil.example:{port}"}, timeout=10)
    assert_error(r, 403, "host_not_allowed")
    body = b'{"definition": "drip", "params": {}, "pad": "%s"}' % (b"x" * 2000)
    r = httpx.post(f"{base}/api/jobs", headers=JSON_HEADERS, content=body, timeout=10)
    assert_error(r, 413, "body_too_large")
    assert "2000 bytes" in r.json()["error"]["message"]


def _stream(base: str, client: httpx.Client) -> Any:
    return client.stream("GET", f"{base}/api/stream", timeout=httpx.Timeout(5, read=5))


def test_open_streams_per_client_are_capped(configured: ServerProcess) -> None:
    base = configured.base_url
    with (
        httpx.Client() as here,
        httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as elsewhere,
    ):
        with _stream(base, here) as one, _stream(base, here) as two:
            assert (one.status_code, two.status_code) == (200, 200)
            r = here.get(f"{base}/api/stream", timeout=5)
            assert_error(r, 429, "too_many_streams")
            assert r.headers["retry-after"]
            with _stream(base, elsewhere) as other:  # another address has its own allowance
                assert other.status_code == 200
        # Closed streams free their places.

        def reopened() -> bool:
            with _stream(base, here) as again:
                return again.status_code == 200

        wait_until(reopened, 10, 0.1, what="a closed stream's place to be free")


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_idle_connections_are_closed(configured: ServerProcess) -> None:
    started = time.monotonic()
    idle = [_connect(configured.port) for _ in range(300)]
    try:
        assert all(_closed_by_server(sock, 10) for sock in idle)
        took = time.monotonic() - started
        assert 0.8 < took < 5, f"idle connections closed after {took:.1f} s (timeout 1 s)"
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_idle_after_a_response_is_closed(configured: ServerProcess) -> None:
    with _connect(configured.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200
        answered = time.monotonic()
        assert _closed_by_server(sock, 10)
        assert 0.8 < time.monotonic() - answered < 5


def test_half_sent_requests_are_closed(configured: ServerProcess) -> None:
    """Slowloris: a head sent a little at a time never completes; the
    connection is closed when the head timeout passes, however busy it looks.
    A body that does not come whole in that time gets a 408."""
    partial = [_connect(configured.port) for _ in range(100)]
    try:
        for sock in partial:
            sock.sendall(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert all(_closed_by_server(sock, 10) for sock in partial)
        assert time.monotonic() - started < 5
    finally:
        for sock in partial:
            sock.close()

    with _connect(configured.port) as dribble:
        dribble.sendall(b"GET /api/jobs HTTP/1.1\r\n")
        started = time.monotonic()
        dribble.settimeout(0.2)  # a byte every 0.2 s until the server hangs up
        closed = False
        while not closed and time.monotonic() - started < 10:
            try:
                closed = dribble.recv(1024) == b""
            except TimeoutError:
                try:
                    dribble.send(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            except ConnectionResetError:
                closed = True
        took = time.monotonic() - started
        assert closed and took < 5, f"a dribbled head kept its connection {took:.1f} s"

    with _connect(configured.port) as slow_body:
        slow_body.sendall(_post_head("Content-Length: 100") + SUBMIT[:10])
        started = time.monotonic()
        status, body = _read_response(slow_body)
        assert status == 408 and b"request_timeout" in body
        assert 0.8 < time.monotonic() - started < 5
        assert _closed_by_server(slow_body, 5)

    with _connect(configured.port) as prompt:  # a whole head in time is served
        prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(prompt)[0] == 200
