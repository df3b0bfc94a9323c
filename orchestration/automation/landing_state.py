"""What the landing sensor and the nightly schedule know of a landing day: its files on disk, and the run
that last ingested it (from Dagster's instance). Reads only the file system and the instance, never the
warehouse (a run may hold DuckDB's lock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

RAW_EVENTS = dg.AssetKey("raw_events")
# Jobs that run everything downstream of ingestion (models, checks, segments, scores, profiles, exports).
PIPELINE_JOBS = frozenset({"daily_pipeline", "all_assets"})
PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def newest_file(folder: Path) -> tuple[float, int]:
    """(the newest modification time, the number of files) of a landing folder's files (hidden ones aside)."""
    stats = [f.stat() for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
    return (max((s.st_mtime for s in stats), default=0.0), len(stats))


@dataclass(frozen=True)
class Ingestion:
    """The latest materialization of a landing day's raw_events partition."""

    started: float  # when its run started reading files (the event's own time outside a run)
    run_id: str | None
    job_name: str | None
    succeeded: bool

    @property
    def ran_the_pipeline(self) -> bool:
        """A run of a job that builds everything downstream, which succeeded."""
        return self.succeeded and self.job_name in PIPELINE_JOBS


def last_ingestion(instance: dg.DagsterInstance, day: date) -> Ingestion | None:
    """The day's latest ingestion; None when it was never ingested. Its start is the run's start: a file
    written while that run was reading may have been missed, so only files older than that count as
    ingested (re-ingesting a day is harmless)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_EVENTS, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    if not record.run_id:
        return Ingestion(started=record.timestamp, run_id=None, job_name=None, succeeded=True)
    stats = instance.get_run_stats(record.run_id)
    run = instance.get_run_by_id(record.run_id)
    return Ingestion(
        started=stats.start_time if stats is not None and stats.start_time else record.timestamp,
        run_id=record.run_id,
        job_name=run.job_name if run is not None else None,
        succeeded=run is not None and run.status == dg.DagsterRunStatus.SUCCESS,
    )


def pending_run(instance: dg.DagsterInstance, job_name: str, day: date) -> str | None:
    """The id of a queued or running run of ``job_name`` for the partition ``day``, if there is one."""
    partition = {"dagster/partition": day.isoformat()}
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, tags=partition, statuses=PENDING_STATUSES), limit=1
    )
    return runs[0].run_id if runs else None
