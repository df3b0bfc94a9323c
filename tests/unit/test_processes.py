"""Processes (pulse/core/processes.py, pulse/core/kill_points.py): the lock `pulse materialize` waits on names its
holder and dies with it; a child started through `exec_dying_with_parent` (how the transform step starts dbt) does
not outlive its parent's SIGKILL; a kill point kills only where it is asked to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from pulse.core.kill_points import INGEST_AFTER_COMMIT, INGEST_BEFORE_COMMIT, KILL_AT_VARIABLE
from pulse.core.processes import ProcessIdentity, exclusive_lock, this_host


def python(code: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, **kwargs)


def test_the_lock_names_its_holder_and_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "materialize.lock"
    holder = python(
        f"""
        import time
        from pathlib import Path
        from pulse.core.processes import exclusive_lock
        with exclusive_lock(Path({str(lock)!r}), lambda holder: None):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder_is = ProcessIdentity(holder.pid, this_host(), psutil.Process(holder.pid).create_time())
    seen: list[ProcessIdentity | None] = []

    def waiting(who: ProcessIdentity | None) -> None:
        seen.append(who)
        if len(seen) == 2:
            holder.send_signal(signal.SIGKILL)  # no clean-up of any kind: the kernel releases the lock

    with exclusive_lock(lock, waiting, poll_seconds=0.1):
        acquired = True
    holder.wait()
    assert acquired and len(seen) >= 2
    assert seen[0] == holder_is


def test_a_child_started_dying_with_its_parent_does_not_outlive_a_sigkill_of_the_parent() -> None:
    parent = python(
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "from pulse.core.processes import exec_dying_with_parent; exec_dying_with_parent(['/bin/sleep', '120'])"])
        time.sleep(1)
        print(child.pid, flush=True)
        time.sleep(120)
        """
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert psutil.Process(child).cmdline()[0] == "/bin/sleep"  # it exec'd
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.1)


def test_a_kill_point_kills_the_process_only_at_the_point_asked_for() -> None:
    code = f"""
        from pulse.core.kill_points import kill_point
        kill_point({INGEST_BEFORE_COMMIT!r})
        print("passed", flush=True)
        kill_point({INGEST_AFTER_COMMIT!r})
        print("not reached", flush=True)
        """
    env = {**os.environ, KILL_AT_VARIABLE: INGEST_AFTER_COMMIT}
    killed = python(code, env=env)
    out, _ = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL and out.splitlines() == ["passed"]
    unset = python(code, env={k: v for k, v in os.environ.items() if k != KILL_AT_VARIABLE})
    out, _ = unset.communicate(timeout=60)
    assert unset.returncode == 0 and out.splitlines() == ["passed", "not reached"]
