from datetime import timedelta

import dagster as dg

from orchestration.partitions import landing_days

INTENT_ASSETS = ("purchase_intent_model", "user_intent_scores")

# The daily job: yesterday's landing files, every dbt model and test, the quality checks, the segments,
# scoring with the current intent champion, the profiles and the audience exports. Only the weekly training
# is left out. Runs are queued one at a time and writers share the `warehouse` pool (pulse/cli.py writes
# the instance's dagster.yaml): DuckDB allows one writer per file.
daily_pipeline = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("purchase_intent_model"),
    partitions_def=landing_days,
    description="Ingest one landing day; dbt models and checks; segments; intent scores; profiles; exports.",
)


@dg.schedule(
    job=daily_pipeline,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 01:00 UTC: yesterday's landing day (the landing sensor has usually ingested it already).",
)
def daily_pipeline_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # Explicit rather than build_schedule_from_partitioned_job: with end_offset=1 that would pick today.
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


# Scoring alone, by hand (e.g. after promoting a model in MLflow): the daily pipeline already scores.
intent_scoring = dg.define_asset_job(
    "intent_scoring",
    selection=dg.AssetSelection.assets("user_intent_scores", "user_profiles", "audience_exports"),
    description="Score every active user with purchase_intent_model@champion, then refresh profiles and exports.",
)

# Retraining once a week (a new weekly snapshot has completed its label window), then scoring with whichever
# model is champion afterwards.
intent_training = dg.define_asset_job(
    "intent_training",
    selection=dg.AssetSelection.assets(*INTENT_ASSETS, "user_profiles", "audience_exports"),
    description="Train the purchase-intent model (challenger; promoted only if at least as good), then score "
    "and refresh profiles and exports.",
)
weekly_intent_training_schedule = dg.ScheduleDefinition(
    name="weekly_intent_training",
    job=intent_training,
    cron_schedule="0 2 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# Ingestion alone (one landing day into raw.events, with its checks): re-ingest a day without rebuilding.
ingest_landing_day = dg.define_asset_job(
    "ingest_landing_day",
    selection=dg.AssetSelection.assets("raw_events"),
    partitions_def=landing_days,
    description="Validate and load one landing day into raw.events (quarantine included); nothing downstream.",
)

# Everything, for `pulse materialize` / `make run`: the landing days of the range, the models, segments,
# the intent model and the scores, in one run.
all_assets = dg.define_asset_job(
    "all_assets",
    selection=dg.AssetSelection.all(),
    partitions_def=landing_days,
    description="Every asset: ingestion, dbt models, segments, the purchase-intent model and scores.",
)
