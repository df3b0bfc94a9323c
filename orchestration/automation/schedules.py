import dagster as dg

from orchestration.partitions import landing_days

INTENT_ASSETS = ("purchase_intent_model", "user_intent_scores")

# Yesterday's landing files, then every dbt model and test, and the segments. Runs are queued one at a time
# (the instance's run queue, see pulse.instance): DuckDB allows one writer per file.
daily_pipeline = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*INTENT_ASSETS),
    partitions_def=landing_days,
    description="Ingest one landing day, rebuild the dbt models and the segments.",
)
daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(daily_pipeline, hour_of_day=1, minute_of_hour=0)

# Scoring with the current champion, every day after the pipeline has refreshed the features.
intent_scoring = dg.define_asset_job(
    "intent_scoring",
    selection=dg.AssetSelection.assets("user_intent_scores"),
    description="Score every active user with purchase_intent_model@champion.",
)
daily_intent_scoring_schedule = dg.ScheduleDefinition(
    name="daily_intent_scoring", job=intent_scoring, cron_schedule="0 3 * * *", execution_timezone="UTC"
)

# Retraining once a week (a new weekly snapshot has completed its label window), then scoring with whichever
# model is champion afterwards.
intent_training = dg.define_asset_job(
    "intent_training",
    selection=dg.AssetSelection.assets(*INTENT_ASSETS),
    description="Train the purchase-intent model (challenger; promoted only if at least as good), then score.",
)
weekly_intent_training_schedule = dg.ScheduleDefinition(
    name="weekly_intent_training", job=intent_training, cron_schedule="0 2 * * 1", execution_timezone="UTC"
)

# Everything, for `pulse materialize` / `make run`: the landing days of the range, the models, segments,
# the intent model and the scores, in one run.
all_assets = dg.define_asset_job(
    "all_assets",
    selection=dg.AssetSelection.all(),
    partitions_def=landing_days,
    description="Every asset: ingestion, dbt models, segments, the purchase-intent model and scores.",
)
