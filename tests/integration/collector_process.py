"""Start `pulse collect` as a separate process on a free port (the crash and end-to-end tests), and clients that
send it batches as the tracker does."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PULSE = REPO / ".venv" / "bin" / "pulse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs a command under a file size limit (RLIMIT_FSIZE): the kernel then treats every regular file the process
# writes as a disk of that size: a write crossing the limit stores what fits and returns that count (a short
# write), the next fails with EFBIG. (Python ignores SIGXFSZ, so the process lives on.) No root needed.
_UNDER_FILE_SIZE_LIMIT = (
    "import os, resource, sys; limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); os.execv(sys.argv[2], sys.argv[2:])"
)


def start_collector(
    home: Path, port: int, *, file_size_limit: int | None = None, stderr: Any = subprocess.PIPE
) -> subprocess.Popen:
    """``pulse collect`` under ``home`` on ``port``, ready; with ``file_size_limit``, under RLIMIT_FSIZE."""
    # every path under `home`: no PULSE_* variable of the test process may send the landing zone elsewhere
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    env["PULSE_HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing but the collector's own files under the limit
    cmd = [str(PULSE), "collect", "--port", str(port), "--roll-seconds", "0.5", "--min-free-mb", "16"]
    if file_size_limit is not None:
        cmd = [sys.executable, "-c", _UNDER_FILE_SIZE_LIMIT, str(file_size_limit), *cmd]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the collector did not become ready")


class RetryingClient(threading.Thread):
    """Sends batches of five page views with ids of its own until ``stop`` is set; a batch that fails (connection
    refused or reset, a non-200 answer) is retried with the SAME ids, as the tracker does, until acknowledged."""

    def __init__(self, name: str, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.name, self.port, self.stop = name, port, stop
        self.sent: set[str] = set()
        self.acknowledged: set[str] = set()
        self.uncertain: set[str] = set()  # ids of batches an attempt of which lost its connection
        self.failures = 0  # attempts that lost their connection or were refused
        self.refusals: list[tuple[int, dict]] = []  # (status, answer) of every non-200 answer

    def run(self) -> None:
        n = 0
        connection: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            ids = [f"{self.name}-{n + i}" for i in range(5)]
            n += 5
            events = [
                {"event_id": i, "event_type": "page_view", "event_time": now, "anonymous_id": self.name, "n": k}
                for k, i in enumerate(ids)
            ]
            body = json.dumps({"events": events})
            self.sent.update(ids)
            while not self.stop.is_set():
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    connection.request("POST", "/collect", body, {"Content-Type": "text/plain;charset=UTF-8"})
                    response = connection.getresponse()
                    answer = response.read()
                except (OSError, http.client.HTTPException):  # refused, reset, or cut mid-response
                    self.failures += 1
                    self.uncertain.update(ids)
                    connection = None
                    time.sleep(0.02)
                    continue
                try:
                    payload = json.loads(answer)
                except ValueError:  # not the collector's JSON answer: kept as text for the assertion that reads it
                    payload = {"error": answer.decode(errors="replace")}
                if response.status == 200:
                    assert payload["accepted"] == 5, payload
                    self.acknowledged.update(ids)
                    break
                self.failures += 1
                self.refusals.append((response.status, payload))
                time.sleep(0.02)
