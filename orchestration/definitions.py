import dagster as dg

from orchestration.automation.schedules import daily_pipeline, daily_pipeline_schedule
from orchestration.ingest.assets import raw_events, raw_events_reconcile
from orchestration.ml.assets import segment_model, user_segments
from orchestration.quality.checks import quality_checks
from orchestration.resources import PulseStorage, dbt_resource
from orchestration.transform.assets import pulse_dbt_models

defs = dg.Definitions(
    assets=[raw_events, pulse_dbt_models, segment_model, user_segments],
    asset_checks=[raw_events_reconcile, *quality_checks],
    jobs=[daily_pipeline],
    schedules=[daily_pipeline_schedule],
    resources={"storage": PulseStorage(), "dbt": dbt_resource()},
)
