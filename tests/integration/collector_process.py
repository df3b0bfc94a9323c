"""Start `pulse collect` as a separate process on a free port (the crash and end-to-end tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
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
