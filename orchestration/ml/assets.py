"""Segmentation as Dagster assets: thin wrappers around ml.user_segments.

segment_model   in daily and landing-sensor runs (and `pulse materialize`) keeps the champion (a first fit
                when there is none); with `refit` (the job segment_refit, weekly or on demand) fits K-Means
                segments on `user_features` (matched to the current champion so ids and names stay), logs the
                run to MLflow and registers a new version, promoted to `champion` only when the refit rule
                holds (ml/segment_promotion.py; decision and reason in the metadata and the MLflow tags); fits
                nothing when the inputs are unchanged since the latest version (kept) or when the data cannot
                be segmented (refused: the check `enough_data_to_segment` warns, the run goes on). Each
                decision is a row of `model_decisions`.
segment_assignments, segment_names
                one row per user: the champion's segment, the distance to its centroid, the snapshot date
                and the model version; one row per segment: its name (ml/naming.py). Only what Python
                computes: the dbt model user_segments (orchestration/activation/assets.py) joins them with
                the rule-based user types. Empty while no version is champion.
"""

import dagster as dg

from ml.decisions import record_decision
from ml.segmentation import SegmentationConfig
from ml.user_segments import (
    ChampionCannotAssign,
    segment_sizes_markdown,
    segmentation_config,
    update_segment_model,
    write_segment_assignments,
)
from orchestration.ml.decisions import decision_metadata, log_decision
from orchestration.resources import PulseSettings, PulseStorage
from pulse.core.settings import PulsePaths

MLFLOW_UI = "http://127.0.0.1:5000"  # `make mlflow` serves the tracking store here
SEGMENTATION_CHECK = "enough_data_to_segment"


class SegmentModelConfig(dg.Config):
    """refit: fit a new version and promote it by the rule (the job segment_refit); off (the daily and
    landing-sensor runs, `pulse materialize`): keep the champion, fitting only when there is none yet."""

    refit: bool = False


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
    check_specs=[
        dg.AssetCheckSpec(
            SEGMENTATION_CHECK,
            asset="segment_model",
            blocking=False,
            description=f"user_features has at least {SegmentationConfig().min_users} users whose features differ, "
            "and K-Means finds groups; otherwise segmentation refuses (a warning: the run goes on, the champion, "
            "if any, stays).",
        )
    ],
    description="K-Means segments (k by silhouette) fitted on user_features, matched to the previous champion, "
    "tracked in MLflow and registered as `pulse_segments@challenger`, promoted to `@champion` only when its "
    "silhouette on the same sample is not worse than the champion's by more than segment_promotion_tolerance "
    "and at least 90 % of users keep their segment id (the first fit always). Refitted only with `refit` (job "
    "segment_refit, weekly or on demand): daily runs and `pulse materialize` keep the champion. Not refitted when "
    "the inputs are unchanged since the latest version; refuses, with the reason, when the data cannot be "
    "segmented.",
)
def segment_model(
    context: dg.AssetExecutionContext, config: SegmentModelConfig, storage: PulseStorage, settings: PulseSettings
):
    paths = storage.paths()
    resolved = settings.resolve()
    try:
        segmentation = segmentation_config(resolved.segmentation_features, seed=resolved.segmentation_seed)
    except ValueError as exc:  # a setting naming an unknown or repeated column
        raise dg.Failure(description=f"settings: {exc}") from None
    with storage.open_warehouse() as warehouse:
        try:
            update = update_segment_model(
                warehouse,
                paths.mlflow_store,
                config=segmentation,
                ui_url=mlflow_ui(paths),
                refit=config.refit,
                promotion_tolerance=resolved.segment_promotion_tolerance,
            )
        except ChampionCannotAssign as exc:
            raise dg.Failure(description=str(exc)) from None
        record_decision(warehouse, update.decision, run_id=context.run_id)
    decision, fitted = update.decision, update.fitted
    log_decision(context, decision)
    yield dg.AssetCheckResult(
        check_name=SEGMENTATION_CHECK,
        passed=not decision.refused,
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.reason,
    )
    metadata = decision_metadata(decision)
    if fitted is not None:
        context.log.info(fitted.summary())
        for warning in fitted.warnings:
            context.log.warning(warning)
        metadata |= {
            "chosen_k": fitted.chosen_k,
            "silhouette": dg.MetadataValue.float(fitted.silhouette),
            "ward_silhouette": dg.MetadataValue.float(fitted.ward_silhouette),
            "users": fitted.users,
            "as_of_date": fitted.as_of_date,
            "segments": dg.MetadataValue.md(segment_sizes_markdown(fitted.sizes)),
            "silhouette_by_k": dg.MetadataValue.json({str(k): round(v, 4) for k, v in fitted.silhouettes.items()}),
            "mlflow_run_id": fitted.run_id,
            "mlflow_tracking_uri": fitted.tracking_uri,
            "features_used": ", ".join(fitted.features_used),
            "features_dropped": dg.MetadataValue.json(fitted.features_dropped),
            "decision": "promoted" if fitted.promoted else "not_promoted",
            "decision_reason": fitted.decision_reason,
            "compared_with_champion": fitted.compared_with_champion or "",
        }
        if fitted.champion_silhouette is not None:
            metadata["champion_silhouette"] = dg.MetadataValue.float(fitted.champion_silhouette)
        if fitted.id_agreement_vs_champion is not None:
            metadata["id_agreement_vs_champion"] = dg.MetadataValue.float(fitted.id_agreement_vs_champion)
        if fitted.run_url:
            metadata["mlflow_run"] = dg.MetadataValue.url(fitted.run_url)
        if fitted.ari_vs_previous is not None:
            metadata["ari_vs_previous"] = dg.MetadataValue.float(fitted.ari_vs_previous)
            metadata["id_agreement_vs_previous"] = dg.MetadataValue.float(fitted.id_agreement_vs_previous or 0.0)
    yield dg.MaterializeResult(metadata=metadata)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "segment_assignments",
            group_name="ml",
            deps=["segment_model", "user_features"],
            kinds={"python", "duckdb"},
            description="One row per user of user_features: the champion's segment id, the distance to its "
            "centroid, the snapshot date, the model version and when it was registered; empty while no version is "
            "champion. The dbt model user_segments joins it with the names and the rule-based user types.",
        ),
        dg.AssetSpec(
            "segment_names",
            group_name="ml",
            deps=["segment_model"],
            kinds={"python", "duckdb"},
            description="One row per segment of the champion that assigned segment_assignments: its plain name, "
            "from its centroid (ml/naming.py); empty while no version is champion.",
        ),
    ],
    name="segment_assignments",
    pool="warehouse",
)
def segment_assignments(context: dg.AssetExecutionContext, storage: PulseStorage):
    paths = storage.paths()
    with storage.open_warehouse() as warehouse:
        written = write_segment_assignments(warehouse, paths.mlflow_store)
    if written.model_version is None:
        context.log.warning(
            "no pulse_segments@champion: nobody assigned (segment_assignments is empty); the profiles say why "
            "(segment_status_reason)."
        )
        metadata = {"rows": 0, "model_version": "none: no champion"}
        yield dg.MaterializeResult(asset_key="segment_assignments", metadata=metadata)
        yield dg.MaterializeResult(asset_key="segment_names", metadata=metadata)
        return
    yield dg.MaterializeResult(
        asset_key="segment_assignments",
        metadata={
            "rows": written.rows,
            "model_version": written.model_version,
            "as_of_date": written.as_of_date,
            "segments": dg.MetadataValue.md(segment_sizes_markdown(written.sizes)),
        },
    )
    yield dg.MaterializeResult(
        asset_key="segment_names",
        metadata={"rows": len(written.sizes), "model_version": written.model_version},
    )
