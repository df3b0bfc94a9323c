from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from orchestration.automation.landing_state import Ingestion, last_ingestion, pending_run
from orchestration.partitions import loaded_partitions_start
from orchestration.resources import PulseStorage
from pulse.ingest.raw_events import files_for_day

# The Python steps' assets and the dbt models that join and rank what they write (models/profiles)
INTENT_ASSETS = ("purchase_intent_model", "purchase_intent_scores", "user_intent_scores")
SEGMENT_ASSETS = ("segment_model", "segment_assignments", "segment_names", "user_segments", "segment_profiles")
# The run config that makes segment_model refit (orchestration/ml/assets.py SegmentModelConfig); without it the
# step keeps the champion (a first fit only when there is none).
REFIT_SEGMENTS = {"ops": {"segment_model": {"config": {"refit": True}}}}

# The daily job: yesterday's landing files, every dbt model and test, the quality checks, segments assigned
# with the segments' champion (segment_model refits nothing here: it fits only when there is no champion yet),
# scoring with the current intent champion, the profiles and the audience exports. The weekly training and
# segment refit are left out. Runs are queued one at a time and writers share the `warehouse` pool
# (pulse/cli/commands.py writes the instance's dagster.yaml): DuckDB allows one writer per file. The partitioned
# jobs take their partitions from raw_events (orchestration/partitions.py: landing days, built when the definitions
# load).
daily_pipeline = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("purchase_intent_model"),
    description="Ingest one landing day; dbt models and checks; segments; intent scores; profiles; exports.",
)


def nightly_request(
    day: date,
    events_landing: Path,
    first_partition: date,
    ingestion: Ingestion | None,
    pending_run_id: str | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """The nightly run for landing day ``day``, or why there is none (shown on the schedule's tick in the UI):
    - no landing folder, or no event file in it: nothing landed, and rebuilding every model, segment, score
      and export on unchanged data would change nothing (it took 3-4 minutes a night);
    - a daily_pipeline run for the day is already queued or running (the landing sensor's);
    - its files were all there when a run that builds everything (the sensor's daily_pipeline, or `pulse
      materialize`) ingested them, and that run succeeded: the models, scores and exports already hold them.
      Every output is a function of what the warehouse holds, which that run left as it is now. A failed run,
      an ingestion-only run (ingest_landing_day) or a file added or rewritten after it does get a run: the
      schedule is the safety net of the sensor (stopped, or its run failed);
    - the day is before the first partition of the loaded definitions (a history imported after the code
      location loaded): reload it first."""
    folder = events_landing / day.isoformat()
    if not folder.is_dir():
        return dg.SkipReason(f"{day}: no landing folder {folder}: nothing landed that day, nothing to run")
    files = files_for_day(events_landing, day)
    if not files:
        return dg.SkipReason(f"{day}: the landing folder {folder} holds no event file: nothing to run")
    if day < first_partition:
        return dg.SkipReason(
            f"{day} is before the first partition ({first_partition}) of the loaded definitions: reload the code "
            "location (Deployment > Reload, or restart `pulse ui`) to run it"
        )
    if pending_run_id is not None:
        return dg.SkipReason(f"{day}: run {pending_run_id} of daily_pipeline for this day is queued or running")
    newest = max(path.lstat().st_mtime for path in files)  # lstat: a broken link is a file to name, not a crash
    if ingestion is not None and ingestion.ran_the_pipeline and newest < ingestion.started:
        when = datetime.fromtimestamp(ingestion.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return dg.SkipReason(
            f"{day}: its {len(files)} landing file(s) are unchanged since run {ingestion.run_id} "
            f"({ingestion.job_name}, started {when}) ingested them and built everything downstream, successfully"
        )
    return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())


@dg.schedule(
    job=daily_pipeline,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 01:00 UTC: yesterday's landing day, unless it has no files or the landing sensor's run "
    "already ingested them (the tick's skip reason says which).",
)
def daily_pipeline_schedule(
    context: dg.ScheduleEvaluationContext, storage: PulseStorage
) -> dg.RunRequest | dg.SkipReason:
    # Explicit rather than build_schedule_from_partitioned_job: with end_offset=1 that would pick today.
    day = (context.scheduled_execution_time - timedelta(days=1)).date()
    landing = storage.settings().paths.events_landing  # the settings door, as the run reads it
    return nightly_request(
        day,
        landing,
        loaded_partitions_start(context),
        last_ingestion(context.instance, day),
        pending_run(context.instance, daily_pipeline.name, day),
    )


# The dbt models after the ML steps (model_status, user_profiles, the audiences) and publishing.
ACTIVATION = dg.AssetSelection.groups("activation")

# Scoring alone, by hand (e.g. after promoting a model in MLflow): the daily pipeline already scores.
intent_scoring = dg.define_asset_job(
    "intent_scoring",
    selection=dg.AssetSelection.assets("purchase_intent_scores") | ACTIVATION,
    description="Score every active user with purchase_intent_model@champion, then refresh profiles and exports.",
)

# Retraining once a week (a new weekly snapshot has completed its label window), then scoring with whichever
# model is champion afterwards.
intent_training = dg.define_asset_job(
    "intent_training",
    selection=dg.AssetSelection.assets(*INTENT_ASSETS) | ACTIVATION,
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

# Refitting the segments once a week, and on demand (launch the job in the UI, or `dagster job execute -w
# workspace.yaml -j segment_refit`), then assigning with whichever version is champion afterwards: a refit replaces
# the champion only when the rule holds (ml/segment_promotion.py). Not partitioned, so its `config` is the
# default run config of every launch (the schedule's, the UI's launchpad).
segment_refit = dg.define_asset_job(
    "segment_refit",
    selection=dg.AssetSelection.assets(*SEGMENT_ASSETS, "user_profiles", "audience_exports"),
    config=REFIT_SEGMENTS,
    description="Refit the segments (challenger; promoted only if its silhouette holds and 90 % of users keep "
    "their segment id), then assign with the champion and refresh profiles and exports.",
)
weekly_segment_refit_schedule = dg.ScheduleDefinition(
    name="weekly_segment_refit",
    job=segment_refit,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# Ingestion alone (one landing day into raw.events, with its checks): re-ingest a day without rebuilding.
ingest_landing_day = dg.define_asset_job(
    "ingest_landing_day",
    selection=dg.AssetSelection.assets("raw_events"),
    description="Validate and load one landing day into raw.events (quarantine included); nothing downstream.",
)

# Everything, for `pulse materialize` / `make run`: the landing days of the range, the models, the segments
# (assigned with the champion, as in daily runs: a first fit only when there is none), the intent model and the
# scores, in one run. (A partitioned job's run config is the caller's: a `config` default here would not apply.)
all_assets = dg.define_asset_job(
    "all_assets",
    selection=dg.AssetSelection.all(),
    description="Every asset: ingestion, dbt models, segments, the purchase-intent model and scores.",
)
