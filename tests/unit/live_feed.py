"""Test helpers for delivery: the feed ``live_trigger_firings`` with the shared schema of the live state database
(the stream processor writes it; tests write it here), and webhook receivers (local HTTP servers) that check every
request's signature the way docs/realtime.md tells a receiver to, with plain hmac (not pulse's own helper)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pulse.live.store import LiveStateStore

SECRET_A = "a" * 16 + "0123456789abcdef0123456789abcdef"
SECRET_B = "b" * 16 + "fedcba9876543210fedcba9876543210"
SECRET_C = "c" * 40
SECRET_D = "d" * 40


def create_feed(state_db: Path) -> None:
    state_db.parent.mkdir(parents=True, exist_ok=True)
    with LiveStateStore(state_db):  # the processor's own schema (WAL), so the feed is the one it writes
        pass


def insert_firings(state_db: Path, n: int, *, start: int = 0, trigger: str = "cart_abandonment") -> list[str]:
    """``n`` firings, as the processor records them (one transaction); returns their firing keys."""
    base = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    keys = []
    with sqlite3.connect(state_db, timeout=30) as conn:
        for i in range(start, start + n):
            fired = base + timedelta(minutes=i)
            key = f"{trigger}|user-{i}|{fired.isoformat()}"
            conn.execute(
                "insert into live_trigger_firings (firing_key, trigger_name, user_key, fired_at, recorded_at, evidence)"
                " values (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    trigger,
                    f"user-{i}",
                    fired.isoformat(timespec="microseconds"),
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                    json.dumps({"cart_adds": 1, "last_cart_add_at": (fired - timedelta(minutes=30)).isoformat()}),
                ),
            )
            keys.append(key)
    return keys


class Receiver:
    """A webhook on a free loopback port. ``answer(request_number, headers) -> (status, extra headers)`` decides
    each answer (it may sleep); every request is recorded with whether its signature checked out."""

    def __init__(self, secret: str, answer: Callable[[int, dict], tuple[int, dict]] | None = None) -> None:
        self.secret = secret
        self.answer = answer or (lambda n, headers: (200, {}))
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                timestamp = headers.get("x-pulse-timestamp", "")
                expected = (
                    "sha256="
                    + hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                )
                signed = hmac.compare_digest(expected, headers.get("x-pulse-signature", "")) and (
                    abs(time.time() - int(timestamp)) <= 300
                )
                with receiver.lock:
                    n = len(receiver.requests) + 1
                    receiver.requests.append(
                        {"n": n, "headers": headers, "body": json.loads(body), "raw": body, "signed": signed}
                    )
                status, extra = receiver.answer(n, headers)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (a timeout) or was killed

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys(self) -> list[str]:
        with self.lock:
            return [r["headers"]["idempotency-key"] for r in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not met in {timeout} s"
        time.sleep(0.02)
