"""Segmentation as Dagster assets: thin wrappers around ml.segmentation and ml.tracking.

segment_model   fits K-Means segments on `user_features` (matched to the current champion so ids and names
                stay), logs the run to MLflow and registers a new version as `champion`.
user_segments   one row per user: the champion's segment, the distance to its centroid, the rule-based
                user type, the snapshot date and the model version; a table in the warehouse.
"""

import dagster as dg

from ml.user_segments import (
    fit_and_register_segments,
    segment_sizes_markdown,
    segmentation_config,
    write_user_segments,
)
from orchestration.resources import PulseSettings, PulseStorage
from pulse.settings import PulsePaths

MLFLOW_UI = "http://127.0.0.1:5000"  # `make mlflow` serves the tracking store here


def mlflow_ui(paths: PulsePaths) -> str:
    """Where run links point: the tracking server (PULSE_MLFLOW_URI over HTTP), else `make mlflow`'s UI."""
    uri = paths.mlflow_uri or ""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else MLFLOW_UI


@dg.asset(
    key="segment_model",
    group_name="ml",
    deps=["user_features"],
    pool="warehouse",
    kinds={"python", "scikit-learn", "mlflow"},
    description="K-Means segments (k by silhouette) fitted on user_features, matched to the previous champion, "
    "tracked in MLflow and registered as `pulse_segments@champion`.",
)
def segment_model(
    context: dg.AssetExecutionContext, storage: PulseStorage, settings: PulseSettings
) -> dg.MaterializeResult:
    paths = storage.paths()
    resolved = settings.resolve()
    with storage.open_warehouse(read_only=True) as warehouse:
        fitted = fit_and_register_segments(
            warehouse,
            paths.mlflow_store,
            config=segmentation_config(resolved.segmentation_features, seed=resolved.segmentation_seed),
            ui_url=mlflow_ui(paths),
        )
    context.log.info(fitted.summary())
    for warning in fitted.warnings:
        context.log.warning(warning)
    metadata: dict[str, dg.RawMetadataValue] = {
        "chosen_k": fitted.chosen_k,
        "silhouette": dg.MetadataValue.float(fitted.silhouette),
        "ward_silhouette": dg.MetadataValue.float(fitted.ward_silhouette),
        "users": fitted.users,
        "as_of_date": fitted.as_of_date,
        "model_version": fitted.model_version,
        "segments": dg.MetadataValue.md(segment_sizes_markdown(fitted.sizes)),
        "silhouette_by_k": dg.MetadataValue.json({str(k): round(v, 4) for k, v in fitted.silhouettes.items()}),
        "mlflow_run_id": fitted.run_id,
        "mlflow_tracking_uri": fitted.tracking_uri,
        "features_used": ", ".join(fitted.features_used),
        "features_dropped": dg.MetadataValue.json(fitted.features_dropped),
    }
    if fitted.run_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(fitted.run_url)
    if fitted.ari_vs_previous is not None:
        metadata["ari_vs_previous"] = dg.MetadataValue.float(fitted.ari_vs_previous)
        metadata["id_agreement_vs_previous"] = dg.MetadataValue.float(fitted.id_agreement_vs_previous or 0.0)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key="user_segments",
    group_name="ml",
    deps=["segment_model", "user_features", "user_types"],
    pool="warehouse",
    kinds={"python", "duckdb"},
    description="One row per user: segment (id, name, distance to centroid) from the champion model, the "
    "rule-based user type and the rule that fired, the snapshot date and the model version. Also writes "
    "segment_profiles: per segment its size, share, user-type mix and every feature's mean and z-score.",
)
def user_segments(context: dg.AssetExecutionContext, storage: PulseStorage) -> dg.MaterializeResult:
    paths = storage.paths()
    with storage.open_warehouse() as warehouse:
        written = write_user_segments(warehouse, paths.mlflow_store)
    return dg.MaterializeResult(
        metadata={
            "rows": written.rows,
            "model_version": written.model_version,
            "as_of_date": written.as_of_date,
            "segments": dg.MetadataValue.md(segment_sizes_markdown(written.sizes)),
            "user_types": dg.MetadataValue.json(written.user_types),
        }
    )
