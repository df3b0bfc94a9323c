"""Points where a test kills a run, to prove that the next run recovers (tests/integration/test_killed_runs.py).

``PULSE_TEST_KILL_AT=<point>`` makes the process that reaches ``<point>`` send itself SIGKILL there: nothing
after it runs, no handler, no clean-up, as when the machine loses power or an operator runs ``kill -9``.
``PULSE_TEST_KILL_AT=<point>:STOP`` sends SIGSTOP instead: the process stays alive, frozen where it is, holding
whatever it holds (a test of waiting for a live run). Unset, every point does nothing. A test hook, not a
setting: this is the one place that reads it.
"""

from __future__ import annotations

import os
import signal

KILL_AT_VARIABLE = "PULSE_TEST_KILL_AT"

# The points, in the order a run reaches them.
INGEST_BEFORE_COMMIT = "ingest:before-commit"  # raw tables written, the transaction not committed
INGEST_AFTER_COMMIT = "ingest:after-commit"  # a batch of landing days committed, the run still ingesting
DBT_RUNNING = "dbt:running"  # dbt has built its first model and goes on building
PUBLISH_SWITCHED = "publish:switched"  # current.json points at the new snapshot, the fixed-path files not copied


def kill_point(point: str) -> None:
    """Kill (or freeze) this process here when PULSE_TEST_KILL_AT names ``point``."""
    wanted = os.environ.get(KILL_AT_VARIABLE, "")
    if wanted.removesuffix(":STOP") == point:
        os.kill(os.getpid(), signal.SIGSTOP if wanted.endswith(":STOP") else signal.SIGKILL)
