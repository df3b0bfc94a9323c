"""Runs whose process died are found, marked failed and their pool slots freed (orchestration/dead_runs.py); runs
whose process lives, or runs elsewhere, are left alone; a step waiting for a pool slot says who holds it and Ctrl-C
stops it (orchestration/run_watch.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import dead_runs
from orchestration.dead_runs import (
    fail_dead_runs,
    free_slots_of_finished_runs,
    live_runs,
    pool_waits,
    process_tags,
    runs_of_process,
)
from orchestration.run_watch import RunWatch
from pulse.cli.commands import DAGSTER_YAML
from pulse.core.processes import ProcessIdentity, current_process, process_alive, this_host

POOL = "warehouse"


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def gone_process() -> ProcessIdentity:
    """A process that ran on this host and exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    import psutil

    started = psutil.Process(child.pid).create_time()
    child.wait()
    return ProcessIdentity(pid=child.pid, host=this_host(), started=started)


def started_run(instance: dg.DagsterInstance, tags: dict[str, str], slot: str | None = None) -> str:
    run = dg.DagsterRun(job_name="all_assets", status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    if slot is not None:
        instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, slot)
    return run.run_id


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def claimed(instance: dg.DagsterInstance) -> list[str]:
    return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def test_a_process_is_alive_only_with_its_pid_and_its_start_time() -> None:
    me = current_process()
    assert process_alive(me) is True
    assert process_alive(gone_process()) is False
    # the pid now belongs to a process that started at another time: reused, or the machine restarted
    assert process_alive(ProcessIdentity(me.pid, me.host, me.started - 3600)) is False
    assert process_alive(ProcessIdentity(me.pid, "another-host", me.started)) is None


def test_a_run_whose_process_is_gone_is_marked_failed_and_its_slot_freed(instance) -> None:
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    dead = started_run(instance, process_tags(gone_process()), slot="raw_events")
    mine = started_run(instance, process_tags())
    elsewhere = started_run(instance, process_tags(ProcessIdentity(os.getpid(), "another-host", 1.0)))
    assert claimed(instance) == [dead] and status(instance, dead) == dg.DagsterRunStatus.STARTED
    assert {r.run_id for r in live_runs(instance)} == {mine, elsewhere}  # a run on another host: not known dead

    marked = fail_dead_runs(instance)

    assert [r.run_id for r in marked] == [dead]
    assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    [failure] = instance.get_records_for_run(dead, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert f"(pid {marked[0].process.pid} on {this_host()}) is gone" in failure.event_log_entry.dagster_event.message
    assert claimed(instance) == []
    assert status(instance, mine) == status(instance, elsewhere) == dg.DagsterRunStatus.STARTED
    assert {r.run_id for r in live_runs(instance)} == {mine, elsewhere}
    assert fail_dead_runs(instance) == []  # once


def test_a_run_without_pulse_tags_is_judged_by_the_pid_of_its_run_start_event(instance) -> None:
    """A run the daemon launched: its RUN_START event names the run worker's pid."""
    gone = gone_process()
    run = dg.DagsterRun(job_name="daily_pipeline", status=dg.DagsterRunStatus.STARTING)
    instance.add_run(run)
    start = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_START.value, job_name="daily_pipeline", pid=gone.pid
    )
    instance.report_dagster_event(start, run_id=run.run_id)
    assert status(instance, run.run_id) == dg.DagsterRunStatus.STARTED
    assert [r.run_id for r in fail_dead_runs(instance)] == [run.run_id]
    assert status(instance, run.run_id) == dg.DagsterRunStatus.FAILURE


def test_slots_held_by_finished_runs_are_freed(instance) -> None:
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = dg.DagsterRun(job_name="all_assets", status=dg.DagsterRunStatus.FAILURE)
    instance.add_run(run)
    instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "raw_events")
    assert free_slots_of_finished_runs(instance) == [run.run_id]
    assert claimed(instance) == []


@dg.op(pool=POOL)
def writes_the_warehouse() -> int:
    return 1


@dg.job
def one_step() -> None:
    writes_the_warehouse()


def test_a_step_waiting_for_a_slot_says_who_holds_it_and_ctrl_c_stops_it(instance) -> None:
    """The slot is held by a live run (this process, as far as the check can tell); the step waits. Dagster's own
    loop would wait without a word and ignore Ctrl-C until the slot frees: here the slot is freed after 60 s at
    the latest, so without the watch the run succeeds late instead of being canceled."""
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    holder = started_run(instance, process_tags(), slot="raw_events")
    said: list[str] = []
    release = threading.Timer(60, lambda: instance.event_log_storage.free_concurrency_slots_for_run(holder))
    interrupt = threading.Timer(3, lambda: os.kill(os.getpid(), signal.SIGINT))
    release.start()
    started = time.monotonic()
    try:
        with RunWatch(instance, said.append, report_seconds=1.0, poll_seconds=0.2):
            interrupt.start()
            result = one_step.execute_in_process(instance=instance, tags=process_tags(), raise_on_error=False)
    finally:
        release.cancel()
        interrupt.cancel()
    assert result.dagster_run.status == dg.DagsterRunStatus.CANCELED
    assert time.monotonic() - started < 30
    assert any(
        f"held by run {holder[:8]} (all_assets)" in line and "waits for a slot of the warehouse pool" in line
        for line in said
    ), said
    assert pool_waits(instance, result.run_id) == []  # its pending claim is gone
    assert runs_of_process(instance) == [r for r in runs_of_process(instance) if r.dagster_run.run_id == holder]


def test_a_run_launched_whose_worker_never_started_is_dead_after_the_start_timeout(instance, monkeypatch) -> None:
    run = dg.DagsterRun(job_name="daily_pipeline", status=dg.DagsterRunStatus.STARTING)
    instance.add_run(run)
    assert fail_dead_runs(instance) == [] and [r.run_id for r in live_runs(instance)] == [run.run_id]
    monkeypatch.setattr(dead_runs, "START_TIMEOUT_SECONDS", 0.0)
    time.sleep(0.01)
    assert [r.run_id for r in fail_dead_runs(instance)] == [run.run_id]
    assert status(instance, run.run_id) == dg.DagsterRunStatus.FAILURE


def test_the_watch_outlasts_a_few_failed_polls_and_still_reports_the_wait(instance, monkeypatch) -> None:
    """The instance's storage is busy with the run's own writes now and then ("database is locked"): a failed poll
    must not end the watch, or a run that then waits for a slot waits without a word again."""
    import sqlite3
    from types import SimpleNamespace

    from orchestration import run_watch

    failures = iter(range(3))

    def busy_then_running(_instance: dg.DagsterInstance) -> list[object]:
        if next(failures, None) is not None:
            raise sqlite3.OperationalError("database is locked")
        return [SimpleNamespace(dagster_run=SimpleNamespace(run_id="waiting-run"))]

    wait = dead_runs.PoolWait(step_key="raw_events", pool=POOL, holders=[])
    monkeypatch.setattr(run_watch, "runs_of_process", busy_then_running)
    monkeypatch.setattr(run_watch, "pool_waits", lambda _instance, run_id: [wait] if run_id == "waiting-run" else [])
    monkeypatch.setattr(run_watch, "fail_dead_runs", lambda _instance, exclude=(): [])
    said: list[str] = []
    watch = RunWatch(instance, said.append, report_seconds=60.0, poll_seconds=0.05)
    watch._watch_thread = threading.Thread(target=watch._watch)  # the loop alone: no signal plumbing
    watch._watch_thread.start()
    deadline = time.monotonic() + 20
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    watch._done.set()
    watch._watch_thread.join(timeout=10)
    assert said == ["step raw_events waits for a slot of the warehouse pool, held by no run (being handed over)"]
