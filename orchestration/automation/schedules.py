import dagster as dg

from orchestration.partitions import landing_days

# Yesterday's landing files, then every dbt model and test. Runs are queued one at a time (the
# instance's run queue, see pulse.instance): DuckDB allows one writer per file.
daily_pipeline = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all(),
    partitions_def=landing_days,
    description="Ingest one landing day and rebuild the dbt models.",
)

daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(daily_pipeline, hour_of_day=1, minute_of_hour=0)
