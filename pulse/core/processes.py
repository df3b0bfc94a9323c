"""Which process runs something, and whether it still does: what lets a run that died be told from one that is
still going.

A run records the process that executes it (:func:`current_process`: pid, host, and the process's start time).
The start time is what makes the record safe against pid reuse and restarts: after a reboot, or once the pid
went to another program, a process with that pid may exist, but not one that started at that instant.

Children that must not outlive their parent (dbt, started by the transform step) get
:func:`die_with_parent`: on Linux the kernel kills them when the process that started them dies, even by
SIGKILL, so a killed `pulse materialize` leaves no dbt writing the warehouse after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# Process start times are compared to this precision (psutil derives them from clock ticks since boot).
START_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessIdentity:
    """A process: its pid on a host, and when it started (seconds since the epoch)."""

    pid: int
    host: str
    started: float

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def this_host() -> str:
    return socket.gethostname()


def current_process() -> ProcessIdentity:
    return ProcessIdentity(pid=os.getpid(), host=this_host(), started=psutil.Process().create_time())


def process_alive(identity: ProcessIdentity) -> bool | None:
    """True when the process still runs (same pid, same start time), False when it is gone (exited, killed, the
    machine restarted, or the pid now belongs to another process), None when it runs on another host: this
    one cannot tell."""
    if identity.host != this_host():
        return None
    try:
        started = psutil.Process(identity.pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # someone else's process: it exists; only its start time can say if it is ours
        return True
    return abs(started - identity.started) <= START_TIME_TOLERANCE_S


def pid_alive_since(pid: int, since: float) -> bool:
    """Whether a process with ``pid`` runs that started at or before ``since`` (seconds since the epoch): the
    process that started something at ``since`` may be it; one started later cannot be (the pid was reused)."""
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return started <= since + START_TIME_TOLERANCE_S


@contextlib.contextmanager
def exclusive_lock(
    path: Path, waiting: Callable[[ProcessIdentity | None], None], poll_seconds: float = 1.0
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (flock) for the block; while another process holds it, call
    ``waiting(holder)`` every ``poll_seconds`` (the holder as it wrote itself into the file, None if unreadable).
    The kernel releases the lock when the holder exits, however it exits (SIGKILL included): a lock never
    outlives its process. A KeyboardInterrupt stops the wait."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waiting(_lock_holder(path))
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(current_process())).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_holder(path: Path) -> ProcessIdentity | None:
    try:
        return ProcessIdentity(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In a child (``preexec_fn``, or the first thing a wrapper does before exec): be killed when the parent
    dies. Linux only (prctl PR_SET_PDEATHSIG); elsewhere nothing happens. The setting survives exec."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def exec_dying_with_parent(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Replace this process with ``argv``, which the kernel kills when this process's parent dies. If the
    parent died before that was in place (this process was re-parented), exit instead of running orphaned.
    ``env``: the new program's environment (default: this process's)."""
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:
        raise SystemExit(f"{argv[0]}: the process that started it is gone; not started")
    if env is None:
        os.execv(argv[0], argv)
    os.execve(argv[0], argv, env)


ENV_ARGUMENT = "--env"


def split_env_arguments(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """`pulse-dbt`'s leading ``--env NAME=VALUE`` pairs (orchestration/resources.py dbt_for_run) and the dbt
    arguments after them."""
    env: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0] == ENV_ARGUMENT:
        if len(rest) < 2 or "=" not in rest[1]:
            raise SystemExit(f"pulse-dbt: {ENV_ARGUMENT} needs NAME=VALUE, got {rest[1:2]}")
        name, _, value = rest[1].partition("=")
        env[name] = value
        rest = rest[2:]
    return env, rest


def dbt_environment(base: dict[str, str], settings_env: dict[str, str]) -> dict[str, str]:
    """dbt's environment: ``base`` with the settings' variables on top; an empty one is unset (profiles.yml's
    default applies)."""
    env = dict(base)
    for name, value in settings_env.items():
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def dbt_main() -> None:
    """`pulse-dbt`: dbt, killed with the process that started it (the transform step's DbtCliResource runs it in
    place of `dbt`: dagster-dbt starts dbt without a way to set this). Leading ``--env NAME=VALUE`` arguments
    are set in dbt's environment (the settings its profile reads: dagster-dbt passes dbt only a copy of the
    parent's environment, which pulse never writes); the rest are dbt's arguments."""
    from pulse.core.settings import process_environ

    settings_env, args = split_env_arguments(sys.argv[1:])
    dbt = os.path.join(os.path.dirname(sys.executable), "dbt")
    exec_dying_with_parent([dbt, *args], dbt_environment(process_environ(), settings_env))
