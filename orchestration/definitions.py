"""The Dagster definitions, built when they load (not at import): the daily partitions start at the first
landing day (orchestration/partitions.py), so they are computed from the landing zone each time a process
loads them: `pulse materialize` on every call, `pulse ui`'s code server at start and on each reload."""

from collections.abc import Mapping

import dagster as dg

from orchestration.activation.assets import audience_exports, pulse_activation_models
from orchestration.automation.dead_runs_sensor import dead_runs_sensor
from orchestration.automation.schedules import (
    all_assets,
    daily_pipeline,
    daily_pipeline_schedule,
    ingest_landing_day,
    intent_scoring,
    intent_training,
    segment_refit,
    weekly_intent_training_schedule,
    weekly_segment_refit_schedule,
)
from orchestration.automation.sensors import landing_files_sensor
from orchestration.ingest.assets import build_raw_events, raw_events_reconcile
from orchestration.ml.assets import segment_assignments, segment_model
from orchestration.ml.intent import purchase_intent_model, purchase_intent_scores
from orchestration.partitions import landing_partitions_from_env
from orchestration.quality.checks import quality_checks
from orchestration.resources import PulseSettings, PulseStorage, dbt_resource
from orchestration.transform.assets import pulse_dbt_models
from pulse.core.settings import load_settings


def build_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, with the partitions of ``environ``'s landing zone
    (default: the process environment). Every setting is checked first: a bad value fails the code location's
    load (`pulse ui`, `dagster dev`) with SettingsError naming the variable or key and what it accepts."""
    load_settings(environ)
    raw_events = build_raw_events(landing_partitions_from_env(environ))
    return dg.Definitions(
        assets=[
            raw_events,
            pulse_dbt_models,
            segment_model,
            segment_assignments,
            purchase_intent_model,
            purchase_intent_scores,
            pulse_activation_models,
            audience_exports,
        ],
        asset_checks=[raw_events_reconcile, *quality_checks],
        jobs=[daily_pipeline, ingest_landing_day, intent_scoring, intent_training, segment_refit, all_assets],
        schedules=[daily_pipeline_schedule, weekly_intent_training_schedule, weekly_segment_refit_schedule],
        sensors=[landing_files_sensor, dead_runs_sensor],
        resources={"storage": PulseStorage(), "settings": PulseSettings(), "dbt": dbt_resource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` / `pulse ui` (workspace.yaml) loads; call it for the Definitions object."""
    return build_definitions()
