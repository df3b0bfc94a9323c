"""Beside a run executed in this process (`pulse materialize`): say when a step waits for a pool slot and who
holds it, free what dead runs hold, and let Ctrl-C / SIGTERM stop a step that waits.

Dagster 1.13's in-process executor waits for a pool slot in a loop that neither logs (its "blocked" engine event
comes every 5 minutes, at debug level) nor looks at interrupts: Ctrl-C and SIGTERM are captured and acted on only
when the step starts, which may be never if the holder died. `pulse materialize` waits for other runs before it
starts its own (pulse/cli/commands.py), so this is the rare case of a run started by another process in the same
instant.
The watch is a thread polling the instance once a second; it learns of signals through the interpreter's
wakeup fd (``signal.set_wakeup_fd``, which records every signal the process handles), and stops a waiting run by
marking it canceling and raising KeyboardInterrupt in the main thread (SIGUSR1 to it, whose handler raises):
Dagster then ends the run CANCELED and releases its pending claims.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType

import dagster as dg

from orchestration.dead_runs import fail_dead_runs, pool_waits, runs_of_process

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
# Consecutive failed polls (the instance's storage busy) after which the watch gives up, saying so.
MAX_ERRORS = 30
# The signal the watch sends the main thread to stop a waiting run; its handler raises KeyboardInterrupt.
INTERRUPT_SIGNAL = signal.SIGUSR1


class RunWatch:
    """``with RunWatch(instance, say): execute the run``. ``say(line)`` prints a line for the user."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        say: Callable[[str], None],
        *,
        report_seconds: float = 5.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.instance = instance
        self.say = say
        self.report_seconds = report_seconds
        self.poll_seconds = poll_seconds
        self._done = threading.Event()
        # held while the watch decides to interrupt the main thread and sends the signal, and while __exit__
        # marks the watch done: once done, no interrupt is sent, and one sent before is ignored there
        self._interrupt_lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="pulse-run-watch", daemon=True)
        self._pipe: tuple[int, int] | None = None
        self._previous_wakeup_fd: int | None = None
        self._previous_handler: object = None

    def __enter__(self) -> RunWatch:
        if threading.current_thread() is threading.main_thread():
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self._previous_handler = signal.signal(INTERRUPT_SIGNAL, self._raise_interrupt)
            self._previous_wakeup_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            self._pipe = (read, write)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            with self._interrupt_lock:
                self._done.set()
            self._thread.join(timeout=10)
        finally:
            if self._pipe is not None:
                signal.set_wakeup_fd(self._previous_wakeup_fd if self._previous_wakeup_fd is not None else -1)
                signal.signal(INTERRUPT_SIGNAL, self._previous_handler)  # type: ignore[arg-type]
                for fd in self._pipe:
                    os.close(fd)

    def _raise_interrupt(self, _signum: int, _frame: FrameType | None) -> None:
        if not self._done.is_set():  # the run has ended: too late to stop it
            raise KeyboardInterrupt

    def _signals(self) -> set[int]:
        if self._pipe is None:
            return set()
        try:
            return set(os.read(self._pipe[0], 512))
        except BlockingIOError:
            return set()

    def _watch(self) -> None:
        last_report = 0.0
        errors = 0
        while not self._done.wait(self.poll_seconds):
            stop = bool(self._signals() & STOP_SIGNALS)
            try:
                runs = [record.dagster_run for record in runs_of_process(self.instance)]
                waits = pool_waits(self.instance, runs[0].run_id) if runs else []
                errors = 0
                if not waits:
                    continue  # a signal while a step runs is Dagster's to handle (the step is interrupted)
                fail_dead_runs(self.instance, exclude=[runs[0].run_id])
                if stop and pool_waits(self.instance, runs[0].run_id):
                    with self._interrupt_lock:
                        if self._done.is_set():
                            return  # the run ended meanwhile
                        self.instance.report_run_canceling(runs[0], "interrupted (Ctrl-C or SIGTERM) while it waited")
                        signal.pthread_kill(threading.main_thread().ident or 0, INTERRUPT_SIGNAL)
                    return
                if time.monotonic() - last_report >= self.report_seconds:
                    last_report = time.monotonic()
                    for wait in waits:
                        held = "; ".join(h.describe() for h in wait.holders) or "no run (being handed over)"
                        self.say(f"step {wait.step_key} waits for a slot of the {wait.pool} pool, held by {held}")
            except Exception as exc:  # noqa: BLE001 - a watch that fails must not take the run down
                errors += 1  # the instance's storage busy with the run's own writes: the next poll will do
                if errors >= MAX_ERRORS:
                    with contextlib.suppress(Exception):
                        self.say(f"stopped watching the run for pool waits after {errors} errors (it goes on): {exc}")
                    return
