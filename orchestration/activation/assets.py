"""Activation as Dagster assets: thin wrappers around pulse.profiles and pulse.publish.

user_profiles      one row per user in the warehouse: segment, user type, intent, engagement score, active
                   triggers, top categories, next action, consent, model versions and status (model_status:
                   current, carried from an earlier champion, or empty and why)
audience_exports   the consented profiles and the four audiences published as an immutable snapshot under
                   PULSE_EXPORTS (Parquet + CSV + manifest), atomically; the read API serves it
"""

from datetime import UTC, datetime

import dagster as dg

from orchestration.resources import PulseStorage
from pulse.profiles import build_user_profiles
from pulse.publish import publish_from_warehouse
from pulse.watermark import record_published


@dg.asset(
    key="user_profiles",
    group_name="activation",
    deps=[
        "user_features",
        "user_types",
        "user_segments",
        "user_intent_scores",
        "user_engagement_scores",
        "user_category_affinity",
        "dim_user_consent",
        "fct_trigger_firings",
        "fct_sessions",
    ],
    pool="warehouse",
    kinds={"python", "duckdb"},
    description="One row per user: segment and user type, intent probability and decile, engagement score, "
    "triggers active in the last 7 days, top categories, the recommended next action and why, consent, "
    "model versions and each model's status and reason, updated_at (docs/activation.md). Also writes "
    "model_status: per model, current / carried / refused / no_model and why.",
)
def user_profiles(context: dg.AssetExecutionContext, storage: PulseStorage) -> dg.MaterializeResult:
    with storage.open_warehouse() as warehouse:
        built = build_user_profiles(warehouse, datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    return dg.MaterializeResult(
        metadata={
            "rows": built.rows,
            "consented": built.consented,
            "as_of_date": built.as_of_date,
            "next_actions": dg.MetadataValue.json(built.next_actions),
            "active_triggers": dg.MetadataValue.json(built.active_triggers),
            "segment_model_version": built.segment_model_version or "",
            "intent_model_version": built.intent_model_version or "",
            "model_status": dg.MetadataValue.json(
                {model: {"status": status, "reason": reason} for model, (status, reason) in built.model_status.items()}
            ),
        }
    )


@dg.asset(
    key="audience_exports",
    group_name="activation",
    deps=["user_profiles", "consent_coverage"],
    pool="warehouse",
    kinds={"python", "parquet", "csv"},
    description="Consented profiles and the audiences cart_abandoners, high_intent, loyal_buyers and win_back "
    "as Parquet and CSV with a manifest, published atomically under PULSE_EXPORTS (current.json points at the "
    "snapshot the read API serves).",
)
def audience_exports(context: dg.AssetExecutionContext, storage: PulseStorage) -> dg.MaterializeResult:
    paths = storage.paths()
    with storage.open_warehouse(read_only=True) as warehouse:
        published = publish_from_warehouse(warehouse, paths.exports)
    with storage.connect() as con:
        record_published(con)  # written last: what the snapshot covers (pulse/watermark.py)
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
