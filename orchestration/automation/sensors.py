"""A sensor that ingests landing files as they arrive.

Every ``minimum_interval_seconds`` it lists ``$PULSE_LANDING/events/<YYYY-MM-DD>/``: a landing day whose
newest file is not older than the start of the run that last ingested it (or that was never ingested) gets
a `daily_pipeline` run for that partition (a file landing while that run was reading is not missed).
The run key is the day plus the newest file's mtime and the
number of files, so a tick that sees the same files requests nothing new, and a file added or rewritten later
requests a fresh run. It reads only the file system and Dagster's instance, never the warehouse (a run may
hold DuckDB's lock). Runs it requests wait in the run queue like any other (one at a time).
"""

import os
from datetime import date

import dagster as dg

from orchestration.automation.schedules import daily_pipeline
from pulse.ingest import landed_days
from pulse.settings import paths_from_env

RAW_EVENTS = dg.AssetKey("raw_events")


def _newest_file(folder) -> tuple[float, int]:
    stats = [f.stat() for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
    return (max((s.st_mtime for s in stats), default=0.0), len(stats))


def _last_ingested(instance: dg.DagsterInstance, day: date) -> float | None:
    """When the day's latest ingestion STARTED reading files (its run's start; the event's own time for a
    materialization reported outside a run). A file written while that run was reading may have been missed,
    so only files older than the run's start count as ingested; re-ingesting a day is harmless."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_EVENTS, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    stats = instance.get_run_stats(record.run_id) if record.run_id else None
    return stats.start_time if stats is not None and stats.start_time else record.timestamp


@dg.sensor(
    job=daily_pipeline,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts daily_pipeline for a landing day when new or changed files land in it.",
)
def landing_files_sensor(context: dg.SensorEvaluationContext):
    landing = paths_from_env(os.environ).events_landing
    if not landing.exists():
        return dg.SkipReason(f"no landing zone at {landing}")
    requests = []
    for day in landed_days(landing):
        newest, count = _newest_file(landing / day.isoformat())
        done = _last_ingested(context.instance, day)
        if done is not None and newest < done:
            continue
        requests.append(dg.RunRequest(partition_key=day.isoformat(), run_key=f"{day.isoformat()}:{newest:.6f}:{count}"))
    if not requests:
        return dg.SkipReason("every landing day is ingested")
    return requests
