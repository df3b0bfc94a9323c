import dagster as dg

from orchestration.activation.assets import audience_exports, user_profiles
from orchestration.automation.schedules import (
    all_assets,
    daily_pipeline,
    daily_pipeline_schedule,
    ingest_landing_day,
    intent_scoring,
    intent_training,
    weekly_intent_training_schedule,
)
from orchestration.automation.sensors import landing_files_sensor
from orchestration.ingest.assets import raw_events, raw_events_reconcile
from orchestration.ml.assets import segment_model, user_segments
from orchestration.ml.intent import purchase_intent_model, user_intent_scores
from orchestration.quality.checks import quality_checks
from orchestration.resources import PulseSettings, PulseStorage, dbt_resource
from orchestration.transform.assets import pulse_dbt_models

defs = dg.Definitions(
    assets=[
        raw_events,
        pulse_dbt_models,
        segment_model,
        user_segments,
        purchase_intent_model,
        user_intent_scores,
        user_profiles,
        audience_exports,
    ],
    asset_checks=[raw_events_reconcile, *quality_checks],
    jobs=[daily_pipeline, ingest_landing_day, intent_scoring, intent_training, all_assets],
    schedules=[daily_pipeline_schedule, weekly_intent_training_schedule],
    sensors=[landing_files_sensor],
    resources={"storage": PulseStorage(), "settings": PulseSettings(), "dbt": dbt_resource()},
)
