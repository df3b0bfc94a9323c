"""Materialize a range of landing days and every dbt model in ONE Dagster run (a single-run backfill):
one run costs ~10 s of overhead, so a run per day would make a 60-day demo take minutes."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.dead_runs import process_tags
from orchestration.ml.decisions import CHAMPION_KEY, REASON_KEY, STATUS_KEY
from orchestration.partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG


def materialize_range(
    first: date,
    last: date,
    instance: dg.DagsterInstance | None = None,
    quiet: bool = False,
    log_file: Path | None = None,
    job_name: str = "daily_pipeline",
    only_changed_days: bool = False,
    dbt_config: dict | None = None,
    overrides: dict[str, Any] | None = None,
    before_run: Callable[[], None] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run a partitioned job (`daily_pipeline`; `all_assets` adds the intent model and scores) over
    [first, last]. quiet: only warnings from Dagster; log_file: where dbt's own output goes (it is printed
    to stdout otherwise); only_changed_days: `raw_events` skips the days whose landing files it already
    ingested (otherwise it re-ingests every day of the range); dbt_config: the dbt step's config
    (orchestration.transform.assets.DbtBuildConfig, e.g. full_refresh); overrides: the run's settings
    (name -> value text, as `pulse materialize --var`: dbt vars, reprocess_from, intent_test_as_of...);
    before_run: called once the definitions are loaded, right before the run starts (`pulse materialize` waits
    there for a run another process started meanwhile). The run's tags name this process (dead_runs.py): if it
    dies, the next `pulse materialize` marks the run failed and frees its pool slots."""
    from orchestration.definitions import build_definitions

    job = build_definitions().resolve_job_def(job_name)
    if before_run is not None:
        before_run()
    with contextlib.ExitStack() as stack:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(log_file.open("w"))))
        return job.execute_in_process(
            instance=instance or dg.DagsterInstance.get(),
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(), **process_tags()},
            raise_on_error=False,
            run_config=run_config(
                quiet=quiet, only_changed_days=only_changed_days, dbt_config=dbt_config, overrides=overrides
            ),
        )


def run_config(
    quiet: bool = False,
    only_changed_days: bool = False,
    dbt_config: dict | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    config: dict = {"loggers": {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}}
    if overrides:
        config["resources"] = {"settings": {"config": {"overrides": dict(overrides)}}}
    ops: dict = {}
    if only_changed_days:
        ops["raw_events"] = {"config": {"only_changed_days": True}}
    if dbt_config:
        ops["pulse_dbt_models"] = {"config": dbt_config}
    if ops:
        config["ops"] = ops
    return config


def last_run_failed(instance: dg.DagsterInstance, job_name: str) -> tuple[date, date] | None:
    """The landing days [first, last] of the latest run of `job_name` when it did not succeed (failed or
    canceled); None when it succeeded, is still going, or there is none. A run that skips unchanged days must
    not take a failed run's ingestion for a finished pipeline."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name), limit=1)
    if not runs or runs[0].status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return None
    tags = runs[0].tags
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG])
    if PARTITION_TAG in tags:
        day = date.fromisoformat(tags[PARTITION_TAG])
        return day, day
    return None


@dataclass(frozen=True)
class ReportedDecision:
    """A model asset's decision in a run (orchestration/ml/decisions.py metadata)."""

    asset: str
    status: str  # trained, unchanged, refused
    reason: str
    champion_version: str  # "" without a champion


def model_decisions(result: dg.ExecuteInProcessResult) -> list[ReportedDecision]:
    """The decisions the run's model assets reported, in the order they were made."""
    found = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        if STATUS_KEY not in metadata:
            continue
        found.append(
            ReportedDecision(
                asset=materialization.asset_key.to_user_string(),
                status=str(metadata[STATUS_KEY].value),
                reason=str(metadata[REASON_KEY].value) if REASON_KEY in metadata else "",
                champion_version=str(metadata[CHAMPION_KEY].value) if CHAMPION_KEY in metadata else "",
            )
        )
    return found
