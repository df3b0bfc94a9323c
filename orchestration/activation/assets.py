"""Activation as Dagster assets: the dbt models after the ML steps, and publishing.

pulse_activation_models   the dbt models tagged `after_ml` (models/profiles, models/audiences): user_segments
                          (the champion's assignments joined with the segment names and user types),
                          user_intent_scores (the scores ranked: percentile, decile), model_status,
                          user_profiles (segment and user type, intent, engagement, active triggers, top
                          categories, the next action and why, consent, model versions and status),
                          consented_profiles, audience_definitions and the four audiences. They read the tables
                          the Python model steps write (segment_assignments, segment_names,
                          purchase_intent_scores, model_decisions: dbt sources mapped to those assets), so they
                          are built by a second dbt definition, after them, with the same `dbt build` call as
                          the first (orchestration/transform/assets.py).
audience_exports          the finished tables copied into an immutable snapshot under PULSE_EXPORTS (Parquet +
                          CSV + manifest), atomically; the read API serves it
"""

from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ml.user_segments import segment_sizes_markdown
from orchestration.resources import PulseSettings, PulseStorage
from orchestration.transform.assets import AFTER_ML, DbtBuildConfig, PulseDbtTranslator, build_dbt_models
from orchestration.transform.project import pulse_dbt_project
from pulse.activation.publish import publish_from_warehouse
from pulse.core.warehouse import Warehouse
from pulse.ingest.watermark import record_published

USER_PROFILES = dg.AssetKey("user_profiles")
MODEL_STATUS = dg.AssetKey("model_status")
USER_SEGMENTS = dg.AssetKey("user_segments")
USER_INTENT_SCORES = dg.AssetKey("user_intent_scores")


@dbt_assets(
    manifest=pulse_dbt_project.manifest_path,
    project=pulse_dbt_project,
    select=AFTER_ML,
    name="pulse_activation_models",
    pool="warehouse",
    dagster_dbt_translator=PulseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def pulse_activation_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    storage: PulseStorage,
    settings: PulseSettings,
    config: DbtBuildConfig,
):
    yield from build_dbt_models(context, dbt, storage, settings, config, figures=profile_figures)


def profile_figures(
    warehouse: Warehouse, built: set[dg.AssetKey], log: dg.DagsterLogManager
) -> dict[dg.AssetKey, dict[str, Any]]:
    """What the UI shows on user_segments (the users per segment and per user type), user_intent_scores (the
    lowest probability of decile 1), user_profiles (the users per next action, consented users) and on
    model_status (each model's status and reason): cheap queries on the tables dbt just built."""
    metadata: dict[dg.AssetKey, dict[str, Any]] = {}
    if USER_SEGMENTS in built:
        sizes = warehouse.rows(
            """select segment_id, segment_name, count(*) as users from user_segments
            group by segment_id, segment_name order by users desc, segment_id"""
        )
        types = warehouse.rows("select coalesce(user_type, 'none'), count(*) from user_segments group by 1")
        metadata[USER_SEGMENTS] = {
            "segments": dg.MetadataValue.md(segment_sizes_markdown([(int(i), str(n), int(u)) for i, n, u in sizes])),
            "user_types": dg.MetadataValue.json({str(t): int(n) for t, n in types}),
        }
    if USER_INTENT_SCORES in built:
        [(top_min,)] = warehouse.rows("select min(case when decile = 1 then probability end) from user_intent_scores")
        if top_min is not None:
            metadata[USER_INTENT_SCORES] = {"top_decile_min_probability": dg.MetadataValue.float(float(top_min))}
    if USER_PROFILES in built:
        actions = warehouse.rows("select next_action, count(*) from user_profiles group by next_action order by 2 desc")
        [(consented,)] = warehouse.rows("select count_if(consent_personalization) from user_profiles")
        metadata[USER_PROFILES] = {
            "next_actions": dg.MetadataValue.json({action: int(n) for action, n in actions}),
            "consented": dg.MetadataValue.int(int(consented or 0)),
        }
    if MODEL_STATUS in built:
        rows = warehouse.rows("select model, status, reason from model_status")
        status = {model: {"status": state, "reason": reason} for model, state, reason in rows}
        metadata[MODEL_STATUS] = {"model_status": dg.MetadataValue.json(status)}
        for model, state in status.items():
            if state["status"] in ("carried", "refused"):
                log.warning(f"{model}: {state['status']}: {state['reason']}")
    return metadata


@dg.asset(
    key="audience_exports",
    group_name="activation",
    deps=[
        "consented_profiles",
        "model_status",
        "audience_definitions",
        "audience_cart_abandoners",
        "audience_high_intent",
        "audience_loyal_buyers",
        "audience_win_back",
        "consent_coverage",
    ],
    pool="warehouse",
    kinds={"python", "parquet", "csv"},
    description="The finished dbt tables (consented_profiles, the audiences cart_abandoners, high_intent, "
    "loyal_buyers and win_back, model_status) copied as Parquet and CSV with a manifest, published atomically "
    "under PULSE_EXPORTS (current.json points at the snapshot the read API serves).",
)
def audience_exports(context: dg.AssetExecutionContext, storage: PulseStorage) -> dg.MaterializeResult:
    paths = storage.paths()
    with storage.open_warehouse(read_only=True) as warehouse:
        published = publish_from_warehouse(warehouse, paths.exports)
    with storage.connect() as con:
        record_published(con)  # written last: what the snapshot covers (pulse/ingest/watermark.py)
    manifest = published.manifest
    return dg.MaterializeResult(
        metadata={
            "snapshot_id": published.snapshot_id,
            "path": dg.MetadataValue.path(str(published.path)),
            "as_of_date": manifest["as_of_date"],
            "profiles": manifest["profiles"]["rows"],
            "audiences": dg.MetadataValue.json(published.audience_rows),
            "model_versions": dg.MetadataValue.json(manifest["model_versions"]),
            "consent_counts": dg.MetadataValue.json(manifest["consent_counts"] or {}),
            "model_status": dg.MetadataValue.json(
                {model: {"status": m["status"], "reason": m["reason"]} for model, m in manifest["model_status"].items()}
            ),
        }
    )
