"""The nightly schedule runs daily_pipeline for yesterday's landing day only when there is something to run:
a day without files, or whose files a run that built everything already ingested, is a SkipReason the Dagster
UI shows on the tick (it used to rebuild everything, 3-4 minutes a night, for nothing)."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.automation.landing_state import Ingestion, last_ingestion
from orchestration.automation.schedules import daily_pipeline_schedule, nightly_request
from orchestration.definitions import build_definitions
from orchestration.ingest.assets import build_raw_events
from orchestration.partitions import landing_days_partitions
from orchestration.resources import PulseSettings, PulseStorage

DAY = date(2026, 9, 2)
TICK = datetime(2026, 9, 3, 1, 0, tzinfo=UTC)  # 01:00 UTC the day after
FIRST = date(2026, 9, 1)
LINE = '{"event_id":"e1","event_type":"page_view","event_time":"2026-09-02T10:00:00Z","anonymous_id":"a"}\n'


def land(events: Path, day: date = DAY, name: str = "part.jsonl") -> Path:
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(LINE)
    return path


def ingested(started: float, job: str | None = "daily_pipeline", succeeded: bool = True) -> Ingestion:
    return Ingestion(started=started, run_id="r1", job_name=job, succeeded=succeeded)


def test_a_day_without_a_folder_or_files_is_skipped_naming_the_day_and_folder(tmp_path: Path) -> None:
    events = tmp_path / "events"
    skip = nightly_request(DAY, events, FIRST, None)
    assert isinstance(skip, dg.SkipReason)
    assert (
        skip.skip_message
        == f"2026-09-02: no landing folder {events / '2026-09-02'}: nothing landed that day, nothing to run"
    )
    (events / DAY.isoformat()).mkdir(parents=True)
    (events / DAY.isoformat() / "README.txt").write_text("not an event file")
    skip = nightly_request(DAY, events, FIRST, None)
    assert isinstance(skip, dg.SkipReason)
    assert "2026-09-02: the landing folder" in skip.skip_message and "holds no event file" in skip.skip_message


def test_files_never_ingested_get_a_run_for_their_day(tmp_path: Path) -> None:
    land(tmp_path)
    request = nightly_request(DAY, tmp_path, FIRST, None)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-09-02"


def test_files_a_successful_pipeline_run_ingested_are_not_run_again(tmp_path: Path) -> None:
    path = land(tmp_path)
    after = path.stat().st_mtime + 1
    for job in ("daily_pipeline", "all_assets"):
        skip = nightly_request(DAY, tmp_path, FIRST, ingested(after, job))
        assert isinstance(skip, dg.SkipReason), job
        assert "2026-09-02: its 1 landing file(s) are unchanged since run r1" in skip.skip_message
    # ... but a failed run, an ingestion-only run, or a file written after the run started do get one
    assert isinstance(nightly_request(DAY, tmp_path, FIRST, ingested(after, succeeded=False)), dg.RunRequest)
    assert isinstance(nightly_request(DAY, tmp_path, FIRST, ingested(after, "ingest_landing_day")), dg.RunRequest)
    assert isinstance(nightly_request(DAY, tmp_path, FIRST, ingested(after - 2)), dg.RunRequest)


def test_a_queued_run_or_a_day_before_the_loaded_partitions_is_skipped(tmp_path: Path) -> None:
    land(tmp_path)
    skip = nightly_request(DAY, tmp_path, FIRST, None, pending_run_id="abc")
    assert isinstance(skip, dg.SkipReason) and "run abc of daily_pipeline for this day is queued or running" in str(
        skip.skip_message
    )
    skip = nightly_request(DAY, tmp_path, date(2026, 9, 3), None)
    assert isinstance(skip, dg.SkipReason) and "reload the code location" in str(skip.skip_message)


@pytest.fixture
def instance(pulse_home):
    # build_schedule_context needs a persistent instance: the PULSE_HOME's, as the CLI and `pulse ui` use it.
    with dg.instance_for_test(temp_dir=str(pulse_home.dagster_home)) as instance:
        yield instance


def evaluate(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    repository = build_definitions().get_repository_def()
    # a context with resources holds them (and the instance) until it is closed: closed here, or Dagster's
    # current definitions-state storage would be left pointing at this test's instance after it is gone
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=TICK,
        repository_def=repository,
        resources={"storage": PulseStorage()},
    ) as context:
        return daily_pipeline_schedule(context)


def materialize_day(instance: dg.DagsterInstance, job_name: str) -> dg.ExecuteInProcessResult:
    """A run named ``job_name`` that ingests DAY (ingestion only: what the schedule reads is the run's name,
    status and start, and raw_events' materialization of the day)."""
    raw_events = build_raw_events(landing_days_partitions(FIRST))
    job = dg.define_asset_job(job_name, selection=[raw_events])
    definitions = dg.Definitions(
        assets=[raw_events], jobs=[job], resources={"storage": PulseStorage(), "settings": PulseSettings()}
    )
    return definitions.resolve_job_def(job_name).execute_in_process(instance=instance, partition_key=DAY.isoformat())


def test_the_schedule_on_a_dagster_instance(pulse_home, instance) -> None:
    events = pulse_home.events_landing
    land(events, FIRST)  # the first landing day: the partitions start there

    skip = evaluate(instance)  # yesterday (DAY) has no folder
    assert isinstance(skip, dg.SkipReason) and f"no landing folder {events / '2026-09-02'}" in skip.skip_message

    path = land(events)
    os.utime(path, (time.time() - 60, time.time() - 60))  # landed before the runs below start
    request = evaluate(instance)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-09-02"

    # An ingestion-only run ingested it: the models were not built, the schedule still runs the day.
    assert materialize_day(instance, "ingest_landing_day").success
    latest = last_ingestion(instance, DAY)
    assert latest is not None and latest.job_name == "ingest_landing_day" and latest.succeeded
    assert isinstance(evaluate(instance), dg.RunRequest)

    # The landing sensor's daily_pipeline run ingested it and succeeded: nothing to do.
    run = materialize_day(instance, "daily_pipeline")
    assert run.success
    skip = evaluate(instance)
    assert isinstance(skip, dg.SkipReason)
    assert f"unchanged since run {run.run_id} (daily_pipeline, started" in skip.skip_message

    # A file landing afterwards (rewritten here) asks for the day again.
    time.sleep(0.01)
    land(events, name="late.jsonl")
    assert isinstance(evaluate(instance), dg.RunRequest)
