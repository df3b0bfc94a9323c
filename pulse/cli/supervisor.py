"""Run a UI's server process (``dagster dev``) as a child and stop it with this process, leaving no orphan.

`pulse ui` and `pulse live` run ``dagster dev`` this way beside the docs server (a thread of the pulse process):
Ctrl-C or SIGTERM to pulse reaches ``dagster dev`` exactly once, pulse waits until it has stopped its own
children (webserver, daemon, code servers), and only then returns, which stops the docs server.

The child runs in a process group of its own: a Ctrl-C in the terminal goes to pulse only, which passes it
on (``dagster dev`` would otherwise get it twice, from the terminal and from pulse, and a second interrupt
makes it skip its clean shutdown). If the child has not exited ``grace_seconds`` after the signal, its whole
process group is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 60.0


def run_supervised(
    command: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    grace_seconds: float = GRACE_SECONDS,
) -> int:
    """Run ``command`` until it exits; return its exit code, or 0 when it exited after a stop signal that
    this process received and passed on. Call from the main thread (signal handlers are installed there)."""
    stopping: list[int] = []
    started: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        if not stopping and started:  # once: a second Ctrl-C must not cut the child's shutdown short
            with contextlib.suppress(ProcessLookupError):
                started[0].send_signal(signum)
        stopping.append(signum)

    # The handlers come first: a signal that arrives while the child starts is passed on right after.
    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        child = subprocess.Popen(list(command), cwd=cwd, env=None if env is None else dict(env), start_new_session=True)
    except BaseException:
        for s, handler in previous.items():
            signal.signal(s, handler)
        raise
    started.append(child)
    if stopping:
        child.send_signal(stopping[0])
    deadline: float | None = None
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stopping and deadline is None:
                    deadline = time.monotonic() + grace_seconds
                if deadline is not None and time.monotonic() > deadline:
                    # the child did not stop in time: its whole group (it and whatever it started)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                    code = child.wait()
                    break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:  # an exception in this process: do not leave the child behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        _end_group(child.pid)
    return 0 if stopping else code


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _end_group(pgid: int, seconds: float = 5.0) -> None:
    """What the child started and left behind in its group (none when it shut down cleanly): SIGTERM, then
    SIGKILL after ``seconds``."""
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)
