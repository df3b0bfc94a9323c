"""pulse/cli/supervisor.py: `pulse ui` runs `dagster dev` as a supervised child. A stop signal to pulse reaches the
child exactly once, pulse waits for it, and nothing the child started is left behind. The child here is a small
Python stand-in for `dagster dev` that starts a grandchild (its webserver) and records the signals it gets.
tests/integration/test_ui_processes.py does the same with the real `pulse ui`."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pulse.cli.supervisor import run_supervised

STAND_IN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path
    out = Path(sys.argv[1])
    mode = sys.argv[2]
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    got = []
    def on_signal(signum, frame):
        got.append(signum)
        (out / "signals").write_text(" ".join(str(s) for s in got))
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN if mode == "stubborn" else on_signal)
    (out / "pids").write_text(f"{os.getpid()} {grandchild.pid}")
    if mode == "exit3":
        grandchild.terminate(); grandchild.wait(); sys.exit(3)
    if mode == "leaves-grandchild":
        while not got: time.sleep(0.02)
        sys.exit(0)  # exits without stopping its grandchild
    while not got and mode != "stubborn":
        time.sleep(0.02)
    if mode == "stubborn":
        time.sleep(600)
    time.sleep(0.5)  # a shutdown that takes a moment: a second signal would arrive during it
    grandchild.terminate(); grandchild.wait()
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _pids(out: Path, timeout: float = 20.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while not (out / "pids").exists() or len((out / "pids").read_text().split()) != 2:
        assert time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.02)
    child, grandchild = map(int, (out / "pids").read_text().split())
    return child, grandchild


def _signal_self_when_started(out: Path, *signums: int) -> threading.Thread:
    def send() -> None:
        _pids(out)
        for signum in signums:
            os.kill(os.getpid(), signum)
            time.sleep(0.1)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_reaches_the_child_once_and_nothing_is_left(tmp_path: Path, signum: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    sender = _signal_self_when_started(tmp_path, signum, signum)  # a second Ctrl-C while it shuts down
    code = run_supervised([sys.executable, "-c", STAND_IN, str(tmp_path), "clean"])
    sender.join(5)
    child, grandchild = _pids(tmp_path)
    assert code == 0
    assert (tmp_path / "signals").read_text() == str(int(signum))  # passed on once, not twice
    assert not _alive(child) and not _alive(grandchild)
    assert {s: signal.getsignal(s) for s in before} == before  # pulse's own handlers are back


def test_a_child_that_ignores_the_signal_is_killed_with_its_group(tmp_path: Path) -> None:
    sender = _signal_self_when_started(tmp_path, signal.SIGTERM)
    started = time.monotonic()
    code = run_supervised([sys.executable, "-c", STAND_IN, str(tmp_path), "stubborn"], grace_seconds=1.0)
    sender.join(5)
    child, grandchild = _pids(tmp_path)
    assert code == 0
    assert time.monotonic() - started < 30
    assert not _alive(child) and not _alive(grandchild)


def test_what_the_child_leaves_behind_is_stopped(tmp_path: Path) -> None:
    sender = _signal_self_when_started(tmp_path, signal.SIGTERM)
    run_supervised([sys.executable, "-c", STAND_IN, str(tmp_path), "leaves-grandchild"])
    sender.join(5)
    _, grandchild = _pids(tmp_path)
    deadline = time.monotonic() + 10
    while _alive(grandchild):  # reaped by init once killed
        assert time.monotonic() < deadline, "the grandchild outlived pulse"
        time.sleep(0.05)


def test_a_child_that_exits_on_its_own_gives_its_exit_code(tmp_path: Path) -> None:
    assert run_supervised([sys.executable, "-c", STAND_IN, str(tmp_path), "exit3"]) == 3
