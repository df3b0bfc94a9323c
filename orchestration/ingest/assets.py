import os
from datetime import date, timedelta

import dagster as dg
from pydantic import Field

from orchestration.partitions import landing_days
from orchestration.resources import PulseStorage
from pulse.ingest import DayResult, IngestOptions, changed_days, create_raw_tables, ingest_day, reconciliation
from pulse.spark_raw import export_raw_to_parquet, spark_raw_root


def _days_in(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def ingestion_metadata(results: list[DayResult]) -> dict[str, dg.MetadataValue]:
    rows = [
        f"| {r.day} | {len(r.files)} | {r.lines_read} | {r.accepted} | {r.quarantined} | {r.late_events} | "
        f"{'yes' if r.reconciles else '**NO**'} |"
        for r in results
    ]
    reasons: dict[str, int] = {}
    for r in results:
        for k, n in r.reasons.items():
            reasons[k] = reasons.get(k, 0) + n
    table = "\n".join(
        [
            "| day | files | lines read | accepted | quarantined | late | reconciles |",
            "|---|---|---|---|---|---|---|",
        ]
        + rows
    )
    # A single-run backfill records one materialization for all its partitions: the totals cover the
    # run's landing days, and per_day (like raw.ingested_files) holds each day's own figures.
    return {
        "landing_days": dg.MetadataValue.int(len(results)),
        "lines_read": dg.MetadataValue.int(sum(r.lines_read for r in results)),
        "accepted": dg.MetadataValue.int(sum(r.accepted for r in results)),
        "quarantined": dg.MetadataValue.int(sum(r.quarantined for r in results)),
        "late_events": dg.MetadataValue.int(sum(r.late_events for r in results)),
        "reconciles": dg.MetadataValue.bool(all(r.reconciles for r in results)),
        "quarantine_reasons": dg.MetadataValue.json(dict(sorted(reasons.items(), key=lambda kv: -kv[1]))),
        "days_without_files": dg.MetadataValue.int(sum(1 for r in results if not r.files)),
        "empty_files": dg.MetadataValue.json([f for r in results for f in r.empty_files][:50]),
        "per_day": dg.MetadataValue.md(table),
    }


class RawEventsConfig(dg.Config):
    only_changed_days: bool = Field(
        default=False,
        description="Ingest only the days of the window whose landing files changed since they were last "
        "ingested (pulse.ingest.changed_days); the others keep their rows and ingested_at, so dbt does not "
        "process them again. Off: every day of the window is re-ingested (how a range is reprocessed).",
    )


def days_to_ingest(window_days: list[date], changed: set[date] | None) -> tuple[list[date], list[date]]:
    """(days to ingest, days skipped as unchanged) of a window; changed None: every day is ingested."""
    if changed is None:
        return list(window_days), []
    return [d for d in window_days if d in changed], [d for d in window_days if d not in changed]


@dg.asset(
    key="raw_events",
    group_name="ingest",
    partitions_def=landing_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    kinds={"duckdb", "python"},
    description="Landing files (event contract v1) -> raw.events; rows that break the contract go to "
    "raw.events_quarantine with the raw line, the reason, the file and the line number.",
)
def raw_events(
    context: dg.AssetExecutionContext, config: RawEventsConfig, storage: PulseStorage
) -> dg.MaterializeResult:
    paths = storage.paths()
    options = IngestOptions.from_env(os.environ)
    results = []
    with storage.connect() as con:
        create_raw_tables(con)  # an older warehouse gets the contract's new columns even when no day is ingested
        changed = set(changed_days(con, paths.events_landing)) if config.only_changed_days else None
        window = _days_in(context.partition_time_window)
        ingest, skipped = days_to_ingest(window, changed)
        for day in window:
            if day in skipped:
                context.log.info(f"{day}: no new or changed landing files since it was ingested, skipped")
                continue
            result = ingest_day(con, paths.events_landing, day, options)
            context.log.info(
                f"{day}: {result.lines_read} lines -> {result.accepted} accepted, {result.quarantined} quarantined"
            )
            for name in result.empty_files:
                context.log.warning(f"{day}: landing file {name} is empty (no lines)")
            results.append(result)
    context.log.info(f"ingested {len(ingest)} landing day(s), skipped {len(skipped)} unchanged")
    exported: dict[str, dg.RawMetadataValue] = {}
    if paths.engine == "spark":
        # dbt's Spark target reads the raw tables as Parquet files (pulse/spark_raw.py, docs/spark.md)
        for table in export_raw_to_parquet(paths.warehouse, spark_raw_root()):
            context.log.info(f"raw.{table.table}: {table.rows:,} rows exported to {table.path} for Spark")
            exported[f"spark_raw_{table.table}_rows"] = dg.MetadataValue.int(table.rows)
    return dg.MaterializeResult(
        metadata={
            "ingested_days": dg.MetadataValue.int(len(ingest)),
            "skipped_unchanged_days": dg.MetadataValue.int(len(skipped)),
            **ingestion_metadata(results),
            **exported,
        }
    )


@dg.asset_check(
    asset=raw_events,
    blocking=True,
    pool="warehouse",
    description="Every line read is in raw.events or quarantine.",
)
def raw_events_reconcile(storage: PulseStorage) -> dg.AssetCheckResult:
    with storage.connect() as con:
        rows = reconciliation(con)
    broken = [(str(d), read, acc, q) for d, read, acc, q in rows if read != acc + q]
    return dg.AssetCheckResult(
        passed=not broken,
        metadata={
            "days_checked": len(rows),
            "days_not_reconciling": dg.MetadataValue.json(broken[:20]),
        },
    )
