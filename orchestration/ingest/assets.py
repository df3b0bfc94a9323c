from datetime import date, timedelta

import dagster as dg
from pydantic import Field

from orchestration.resources import PulseSettings, PulseStorage
from pulse.ingest.raw_events import (
    DayResult,
    IngestOptions,
    changed_days,
    create_raw_tables,
    ingest_days,
    reconciliation,
)
from pulse.ingest.spark_raw import export_raw_to_parquet, spark_raw_root


def _listed(days: list[date]) -> str:
    return ", ".join(str(d) for d in days)


def _days_in(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


# Days listed in the per_day table of the metadata. A single-run backfill repeats the metadata on each of its
# partitions' materializations (Dagster records one per partition): a table of every day of a 546-day history,
# 546 times, was 18 MB of event log. raw.ingested_files keeps every day's figures.
MAX_DAYS_SHOWN = 40
# Up to this many days, each ingested day gets its own log line; beyond, only the days worth a look do (each
# log line is an event Dagster writes to its instance, ~20-100 ms each).
MAX_DAYS_LOGGED = 31


def _notable(r: DayResult) -> bool:
    return bool(r.quarantined or r.empty_files or r.unsupported or not r.reconciles)


def days_shown(results: list[DayResult], limit: int = MAX_DAYS_SHOWN) -> list[DayResult]:
    """The days of the per_day table: all when they fit, else the notable ones (quarantine, empty files, not
    reconciling) first, then the latest, in day order."""
    if len(results) <= limit:
        return list(results)
    notable = [r for r in results if _notable(r)][:limit]
    rest = [r for r in results if not _notable(r)][-(limit - len(notable)) :] if len(notable) < limit else []
    return sorted(notable + rest, key=lambda r: r.day)


def ingestion_metadata(results: list[DayResult]) -> dict[str, dg.MetadataValue]:
    shown = days_shown(results)
    rows = [
        f"| {r.day} | {len(r.files)} | {r.lines_read} | {r.accepted} | {r.quarantined} | {r.late_events} | "
        f"{'yes' if r.reconciles else '**NO**'} |"
        for r in shown
    ]
    if len(shown) < len(results):
        rows.append(
            f"\n({len(shown)} of {len(results)} days: those with quarantined lines, empty files or not reconciling, "
            "then the latest; raw.ingested_files has every day)"
        )
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
        # Entries of the landing days not read (an unsupported name: notes.txt, x.jsonl.bz2), with why.
        "unsupported_entries": dg.MetadataValue.int(sum(len(r.unsupported) for r in results)),
        "unsupported": dg.MetadataValue.json(dict([(e.name, e.why) for r in results for e in r.unsupported][:50])),
        "per_day": dg.MetadataValue.md(table),
    }


class RawEventsConfig(dg.Config):
    only_changed_days: bool = Field(
        default=False,
        description="Ingest only the days of the window whose landing files (or validation settings) changed "
        "since they were last ingested (pulse.ingest.raw_events.changed_days); the others keep their rows and "
        "ingested_at, so dbt does not process them again. Off: every day of the window is re-ingested (how a range "
        "is reprocessed).",
    )


def days_to_ingest(window_days: list[date], changed: set[date] | None) -> tuple[list[date], list[date]]:
    """(days to ingest, days skipped as unchanged) of a window; changed None: every day is ingested."""
    if changed is None:
        return list(window_days), []
    return [d for d in window_days if d in changed], [d for d in window_days if d not in changed]


def raw_events(  # the asset's body; build_raw_events makes it the asset `raw_events` (op name raw_events)
    context: dg.AssetExecutionContext, config: RawEventsConfig, storage: PulseStorage, settings: PulseSettings
) -> dg.MaterializeResult:
    paths = storage.paths()
    try:
        options = IngestOptions.from_settings(settings.resolve())
    except ValueError as exc:
        raise dg.Failure(description=f"settings: {exc}") from None
    with storage.connect() as con:
        create_raw_tables(con)  # an older warehouse gets the contract's new columns even when no day is ingested
        changed = set(changed_days(con, paths.events_landing, options)) if config.only_changed_days else None
        window = _days_in(context.partition_time_window)
        ingest, skipped = days_to_ingest(window, changed)
        if skipped and len(skipped) <= MAX_DAYS_LOGGED:
            context.log.info(f"no new or changed landing files since they were ingested, skipped: {_listed(skipped)}")
        results = ingest_days(con, paths.events_landing, ingest, options)
    logged = results if len(results) <= MAX_DAYS_LOGGED else [r for r in results if _notable(r)][:MAX_DAYS_LOGGED]
    for result in logged:
        day = result.day
        context.log.info(
            f"{day}: {result.lines_read} lines -> {result.accepted} accepted, {result.quarantined} quarantined"
        )
        for name in result.empty_files:
            context.log.warning(f"{day}: landing file {name} is empty (no lines)")
        for entry in result.unsupported:
            context.log.warning(f"{day}: landing entry {entry}")
    if len(logged) < len(results):
        context.log.info(
            f"{len(results) - len(logged)} more landing days ingested (raw.ingested_files; quarantined lines: "
            "raw.events_quarantine)"
        )
    context.log.info(
        f"ingested {len(ingest)} landing day(s) ({sum(r.lines_read for r in results):,} lines, "
        f"{sum(r.quarantined for r in results):,} quarantined), skipped {len(skipped)} unchanged"
    )
    exported: dict[str, dg.RawMetadataValue] = {}
    if paths.engine == "spark":
        # dbt's Spark target reads the raw tables as Parquet files (pulse/ingest/spark_raw.py, docs/spark.md)
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


def build_raw_events(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The ingestion asset over these partitions (orchestration/partitions.py: landing days from the first
    one); built when the definitions load, not at import."""
    return dg.asset(
        key="raw_events",
        group_name="ingest",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="warehouse",
        kinds={"duckdb", "python"},
        description="Landing files (event contract v1) -> raw.events; rows that break the contract go to "
        "raw.events_quarantine with the raw line, the reason, the file and the line number.",
    )(raw_events)


@dg.asset_check(
    asset="raw_events",
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
