"""Request heads are bounded on the real server (issue 20, point 8): a request whose headers are over the limit
is answered 431 after the first few dozen kilobytes, never parsed to its end, and the collector keeps answering
everyone else. Headers within the limit, and several requests on one keep-alive connection, are served as
before."""

from __future__ import annotations

import http.client
import json
import select
import socket
import subprocess
from pathlib import Path

import pytest
from collector_process import free_port, start_collector

pytestmark = pytest.mark.integration


def send_oversized_head(port: int, header_bytes: int) -> tuple[bytes, int]:
    """Send a POST whose one header is ``header_bytes`` long, 16 KB at a time, stopping as soon as the server
    answers; (the answer, bytes of the head sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /collect HTTP/1.1\r\nHost: collector\r\nX-Padding: ")
        sent = 0
        while sent < header_bytes:
            try:
                sock.sendall(b"a" * (16 << 10))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 16 << 10
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, sent


@pytest.fixture
def collector(tmp_path: Path):
    port = free_port()
    process = start_collector(tmp_path, port)
    yield port
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def event(n: int) -> dict:
    return {"event_id": f"h{n}", "event_type": "page_view", "event_time": "2026-01-05T10:00:00Z", "anonymous_id": "a"}


def test_an_oversized_head_gets_431_and_the_collector_keeps_answering(collector: int) -> None:
    port = collector
    answer, sent = send_oversized_head(port, 4 << 20)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request headers over 32768 bytes" in answer
    assert sent < 1 << 20  # refused long before the 4 MB head was sent

    # A client that sends its whole head at once (the probe: a 200 KB User-Agent) reads the 431 too: the
    # server closes lingering, not with a reset.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/collect", json.dumps({"events": [event(0)]}), {"User-Agent": "U" * 200_000})
    refused = connection.getresponse()
    assert refused.status == 431 and json.loads(refused.read()) == {"error": "request headers over 32768 bytes"}
    connection.close()

    # A head over the limit that arrives in one read (40 KB in one write, under the loopback's 64 KB segments)
    # is measured once parsed: 431 as well.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        body = json.dumps({"events": [event(99)]}).encode()
        head = b"POST /collect HTTP/1.1\r\nHost: collector\r\nX-Padding: " + b"p" * (40 << 10)
        sock.sendall(head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/healthz")
    health = connection.getresponse()
    assert health.status == 200 and health.read() == b'{"status": "alive"}'
    shop_cookies = "; ".join(f"c{n}={'v' * 200}" for n in range(80))  # 16 KB of cookies: within the limit
    for n in range(3):  # one keep-alive connection: the head count starts again with every request
        body = json.dumps({"events": [event(n)]})
        connection.request("POST", "/collect", body, {"Cookie": shop_cookies, "User-Agent": "Mozilla/5.0"})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["accepted"] == 1
    connection.request("GET", "/metrics")
    metrics = connection.getresponse().read().decode()
    assert "pulse_collector_headers_refused_total 3\n" in metrics
    connection.close()
