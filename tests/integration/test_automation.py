"""Automation: the landing sensor requests runs for new files, and two runs launched at once both succeed
(the run queue serializes them: DuckDB allows one writer per file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pulse.cli.commands import DAGSTER_YAML
from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _sensor_requests(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    from orchestration.automation.sensors import landing_files_sensor
    from orchestration.resources import PulseStorage

    with dg.build_sensor_context(instance=instance, resources={"storage": PulseStorage()}) as context:
        result = landing_files_sensor(context)
    return list(result) if isinstance(result, list) else []


def test_the_landing_sensor_requests_a_run_for_new_or_changed_files(pulse_home) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert _sensor_requests(instance) == []  # nothing landed yet
    day = pulse_home.events_landing / "2026-09-01"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("{}\n")
    [request] = _sensor_requests(instance)
    assert request.partition_key == "2026-09-01" and request.job_name in (None, "daily_pipeline")
    # the same files on the next tick: the same run key (Dagster launches a run key once)
    assert [r.run_key for r in _sensor_requests(instance)] == [request.run_key]
    # once the day is ingested, nothing to do
    time.sleep(0.01)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="raw_events", partition="2026-09-01"))
    assert _sensor_requests(instance) == []
    # a file landing later in the same day asks for that day again, under a new run key
    time.sleep(0.01)
    (day / "b.jsonl").write_text("{}\n")
    [again] = _sensor_requests(instance)
    assert again.partition_key == "2026-09-01" and again.run_key != request.run_key


def _runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs())


def test_two_runs_launched_at_once_queue_and_both_succeed(pulse_home) -> None:
    """Two runs that write the warehouse (ingestion of two landing days) submitted at the same moment through
    the run queue, then the Dagster daemon (as `make ui` runs it): both succeed, one after the other. The
    queue is the instance's, so this holds for every job; ingestion is the quickest writer to run twice."""
    (pulse_home.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    generate_demo(pulse_home.landing, users=60, days=2, seed=5, start=date(2026, 9, 1), progress=False)
    days = [d.isoformat() for d in landed_days(pulse_home.events_landing)]
    assert len(days) >= 2
    env = {**os.environ, "DAGSTER_HOME": str(pulse_home.dagster_home)}
    # The instance's SQLite storage exists before the two launches (as `make ui` creates it): two processes
    # creating a fresh storage at the same moment race on its schema, which is not what this test is about.
    instance = dg.DagsterInstance.from_config(str(pulse_home.dagster_home))
    assert _runs(instance) == []
    bin_dir = Path(sys.executable).parent
    launches = [
        subprocess.Popen(
            [str(bin_dir / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "ingest_landing_day"]
            + ["--tags", json.dumps({"dagster/partition": day})],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in days[:2]
    ]
    for p in launches:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out[-2000:]
    # The landing sensor runs by default: stop it here, so that the daemon only dequeues the two runs.
    stop = subprocess.run(
        [str(bin_dir / "dagster"), "sensor", "stop", "-w", "workspace.yaml", "landing_files_sensor"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert stop.returncode == 0, stop.stdout[-2000:] + stop.stderr[-2000:]
    queued = _runs(instance)
    assert len(queued) == 2 and {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}

    daemon = subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = _runs(instance)
            if all(r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for r in runs):
                break
            time.sleep(2)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    runs = _runs(instance)
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2, [
        (r.run_id, r.status, r.tags.get("dagster/partition")) for r in runs
    ]
    stats = sorted((instance.get_run_stats(r.run_id) for r in runs), key=lambda s: s.start_time)
    assert stats[0].end_time <= stats[1].start_time  # queued, not concurrent
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        loaded = {str(d) for (d,) in con.execute("select distinct load_date from raw.events").fetchall()}
    assert loaded == set(days[:2])
