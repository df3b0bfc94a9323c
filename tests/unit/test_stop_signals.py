"""`pulse materialize` stops on Ctrl-C and SIGTERM while it waits, also when it was started with SIGINT ignored
(Python leaves an inherited SIG_IGN in place: the child of a pytest-xdist worker or of a shell's background job
would otherwise sit out Ctrl-C and `kill -INT`, as the kill-chain test found under `make test`)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

WAIT = """
import sys, time
from pulse.cli.commands import _stop_signals_interrupt
with _stop_signals_interrupt():
    try:
        print("waiting", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_wait_stops_on_the_signal_even_with_sigint_ignored_by_the_parent(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", WAIT], stdout=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "waiting"
        process.send_signal(stop)
        assert process.wait(timeout=20) == 130, process.stdout.read()
    finally:
        process.kill()
