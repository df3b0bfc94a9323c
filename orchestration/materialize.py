"""Materialize a range of landing days and every dbt model in ONE Dagster run (a single-run backfill):
one run costs ~10 s of overhead, so a run per day would make a 60-day demo take minutes."""

import contextlib
from datetime import date
from pathlib import Path

import dagster as dg

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def materialize_range(
    first: date,
    last: date,
    instance: dg.DagsterInstance | None = None,
    quiet: bool = False,
    log_file: Path | None = None,
    job_name: str = "daily_pipeline",
) -> dg.ExecuteInProcessResult:
    """Run a partitioned job (`daily_pipeline`; `all_assets` adds the intent model and scores) over
    [first, last]. quiet: only warnings from Dagster; log_file: where dbt's own output goes (it is printed
    to stdout otherwise)."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def(job_name)
    with contextlib.ExitStack() as stack:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(log_file.open("w"))))
        return job.execute_in_process(
            instance=instance or dg.DagsterInstance.get(),
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}},
        )
