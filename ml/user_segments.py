"""Segmentation against the warehouse: fit and register from `user_features`, then write the champion's
`segment_assignments` and `segment_names` (the dbt model user_segments joins them with the user types).

Plain functions over a warehouse (pulse.core.warehouse: DuckDB, or Spark with PULSE_ENGINE=spark; a DuckDB
connection is accepted as it is), callable without Dagster (the assets in orchestration/ml are thin
wrappers). The stability figure `ari_vs_previous` compares the new fit with the `segment_assignments` of the
previous run, on the users present in both.

:func:`update_segment_model` is what the pipeline runs: it fits and registers only when the inputs changed
since the latest registered version (ml.decisions: the digest of `user_features` plus the parameters), and
refuses, fitting nothing, when the data cannot support a segmentation (ml.segmentation.SegmentationRefused).
`segment_assignments` then assigns with whichever version is champion; with none, it is empty.

Refits run on a cadence, not on every run (``refit``): the daily and landing-sensor runs keep the champion and
only assign with it (a first fit when there is none yet), and so does ``pulse materialize``; the job
``segment_refit`` (weekly, or on demand) refits, and a refit replaces the champion only when
ml.segment_promotion's rule holds (silhouette on the same sample not worse than the champion's by more than
``segment_promotion_tolerance``, at least 90 % of the users keeping their segment id). A refused refit stays
registered as ``challenger``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ml.decisions import FINGERPRINT_TAG, REFUSED, TRAINED, UNCHANGED, ModelDecision, input_fingerprint
from ml.matching import adjusted_rand_on_common, id_agreement_on_common
from ml.segment_promotion import compare_with_champion, decide_segment_promotion, missing_features
from ml.segmentation import (
    DERIVED_FEATURES,
    FEATURE_COLUMNS,
    SegmentationConfig,
    SegmentationRefused,
    SegmentModel,
    fit_segments,
)
from pulse.core.warehouse import Warehouse, as_warehouse, literal, scratch_table, user_sample

SEGMENT_MODEL = "segment_model"  # the Dagster asset; its decisions in model_decisions go by this name
FEATURES_TABLE = "user_features"
# What this step writes: only what Python computes. The dbt model user_segments joins them with the names and
# the rule-based user types (models/profiles/user_segments.sql; dbt sources `ml`, models/profiles/_ml_sources.yml).
SEGMENT_ASSIGNMENTS_TABLE = "segment_assignments"  # one row per user: the champion's segment and distance
SEGMENT_NAMES_TABLE = "segment_names"  # one row per segment of the champion: its name (ml/naming.py)
ASSIGNED_SEGMENTS = "pulse_assigned_segments"  # the batches' output
ASSIGNED_COLUMNS = (
    ("user_key", "string"),
    ("segment_id", "bigint"),
    ("distance_to_centroid", "double"),
    ("as_of_date", "date"),
    ("model_version", "string"),
)
SEGMENT_ASSIGNMENTS_COLUMNS = (
    *ASSIGNED_COLUMNS,
    ("model_trained_at", "timestamp"),  # when the assigning version was registered (UTC)
)
SEGMENT_NAMES_COLUMNS = (
    ("model_version", "string"),
    ("segment_id", "bigint"),
    ("segment_name", "string"),
)
SEGMENT_FIT_PACKAGES = ("scikit-learn", "numpy")  # their versions are part of the inputs' fingerprint
DEFAULT_PROMOTION_TOLERANCE = 0.02  # the setting segment_promotion_tolerance's default (pulse/core/settings.py)
REFIT_JOB = "segment_refit"  # the Dagster job (weekly, or on demand) that refits; named in the reasons


class ChampionCannotAssign(ValueError):
    """The champion reads `user_features` columns that are gone: the daily run cannot assign with it."""


FEATURES_SETTING = "segmentation_features"


def segmentation_config(features: str | None = None, seed: int = 0) -> SegmentationConfig:
    """The production :class:`SegmentationConfig`, with ``features`` (the setting ``segmentation_features``:
    comma-separated ``user_features`` or derived columns, e.g. ``purchases,revenue,avg_order_value,
    days_since_last_purchase`` for an order log) when given; None or empty: the defaults (which fall back to
    the purchase history on an order log, see :func:`ml.segmentation.fit_segments`)."""
    value = features or ""
    if not value.strip():
        return SegmentationConfig(seed=seed)
    chosen = tuple(f.strip() for f in value.split(",") if f.strip())
    known = (*FEATURE_COLUMNS, *DERIVED_FEATURES)
    unknown = [f for f in chosen if f not in known]
    if unknown:
        raise ValueError(
            f"{FEATURES_SETTING}={value!r}: {', '.join(unknown)} is not a user_features or derived column; "
            f"choose from {', '.join(known)}"
        )
    repeated = sorted({f for f in chosen if chosen.count(f) > 1})
    if repeated:
        raise ValueError(f"{FEATURES_SETTING}={value!r}: {', '.join(repeated)} listed more than once")
    return SegmentationConfig(features=chosen, seed=seed)


@dataclass(frozen=True)
class FittedSegments:
    chosen_k: int
    silhouette: float
    ward_silhouette: float
    silhouettes: dict[int, float]
    users: int
    as_of_date: str
    sizes: list[tuple[int, str, int]]  # (segment_id, name, users)
    model_version: str
    run_id: str
    run_url: str | None
    tracking_uri: str
    ari_vs_previous: float | None
    id_agreement_vs_previous: float | None
    features_used: tuple[str, ...] = ()
    features_dropped: dict[str, str] = field(default_factory=dict)  # feature -> why (near-constant)
    warnings: tuple[str, ...] = ()  # for the caller's run log
    promoted: bool = True  # the refit became champion (ml.segment_promotion's rule)
    decision_reason: str = ""
    champion_version: str | None = None  # after the decision
    compared_with_champion: str | None = None  # the champion before it, which the rule compared with
    champion_silhouette: float | None = None  # the champion's silhouette on the same sample, in the same space
    id_agreement_vs_champion: float | None = None  # users keeping their segment id (ids matched first)

    def summary(self) -> str:
        segments = ", ".join(f"{name} {n:,}" for _, name, n in self.sizes)
        stability = "" if self.ari_vs_previous is None else f"; ARI vs previous {self.ari_vs_previous:.3f}"
        return (
            f"k={self.chosen_k} (silhouette {self.silhouette:.3f}, Ward {self.ward_silhouette:.3f}) over "
            f"{self.users:,} users as of {self.as_of_date}: {segments}; model version {self.model_version}{stability}; "
            f"{self.decision_reason}"
        )


@dataclass(frozen=True)
class SegmentModelUpdate:
    """What :func:`update_segment_model` did: the decision (trained / unchanged / refused, and why) and, when
    it trained, the fit."""

    decision: ModelDecision
    fitted: FittedSegments | None


@dataclass(frozen=True)
class WrittenSegments:
    rows: int
    model_version: str | None  # None: no champion, nobody assigned (the tables are empty)
    as_of_date: str
    sizes: list[tuple[int, str, int]]  # (segment_id, name, users), largest first


# Users assigned to segments per batch when segment_assignments is written (memory holds one batch).
ASSIGNMENT_BATCH_ROWS = 100_000


# The K-Means fit reads at most about this many users (one row each, ~30 columns: ~0.3 GB in pandas); past it,
# a sample of users by key hash (pulse.core.warehouse.user_sample). Every user is still assigned, in batches.
FIT_MAX_USERS = 1_000_000


def read_features(warehouse: Warehouse | duckdb.DuckDBPyConnection, max_users: int = FIT_MAX_USERS) -> pd.DataFrame:
    """`user_features` in key order, whole up to ``max_users`` users, else a deterministic sample of them."""
    warehouse = as_warehouse(warehouse)
    [[users]] = warehouse.rows("select count(*) from user_features")
    where = user_sample(warehouse, users, max_users)
    features = warehouse.frame(f"select * from user_features {where} order by user_key")
    if features.empty:
        raise SegmentationRefused("user_features is empty: no user had activity before the snapshot date")
    return features


def _previous_assignment(warehouse: Warehouse) -> pd.DataFrame | None:
    """The assignments of the previous run (`segment_assignments`), None before the first."""
    if not warehouse.table_exists(SEGMENT_ASSIGNMENTS_TABLE):
        return None
    return warehouse.frame(f"select user_key, segment_id from {SEGMENT_ASSIGNMENTS_TABLE}")


def _sizes(assignments: pd.DataFrame) -> list[tuple[int, str, int]]:
    counts = assignments.groupby(["segment_id", "segment_name"]).size().sort_values(ascending=False)
    return [(int(i), str(name), int(n)) for (i, name), n in counts.items()]


def fit_and_register_segments(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    mlflow_store: Path | str,
    seed: int = 0,
    config: SegmentationConfig | None = None,
    ui_url: str | None = None,
    version_tags: dict[str, str] | None = None,
    promotion_tolerance: float = DEFAULT_PROMOTION_TOLERANCE,
) -> FittedSegments:
    """Fit on `user_features`, matched to the current champion; compare the fit with the champion on the same
    users (ml.segment_promotion), log the run and register the version, promoted to champion only when the
    rule holds (the first fit always). Raises :class:`ml.segmentation.SegmentationRefused` when the features
    cannot be segmented."""
    from ml.tracking import champion_version, load_champion, log_segmentation_run, tracking_uri

    warehouse = as_warehouse(warehouse)
    features = read_features(warehouse)
    uri = tracking_uri(mlflow_store)
    previous_model = load_champion(uri)
    previous_version = champion_version(uri) if previous_model is not None else None
    result = fit_segments(features, config or SegmentationConfig(seed=seed), previous=previous_model)
    comparison = None if previous_model is None else compare_with_champion(result, features, previous_model)
    promotion = decide_segment_promotion(comparison, previous_version, promotion_tolerance)
    ari = agreement = None
    previous = _previous_assignment(warehouse)
    if previous is not None and not previous.empty:
        ari_value, _ = adjusted_rand_on_common(previous, result.assignments)
        agreement_value, _ = id_agreement_on_common(previous, result.assignments)
        ari = None if math.isnan(ari_value) else ari_value
        agreement = None if math.isnan(agreement_value) else agreement_value
    run = log_segmentation_run(
        result,
        features,
        uri,
        ari_vs_previous=ari,
        previous_version=previous_version,
        promote=promotion.promote,
        decision_reason=promotion.reason,
        ui_url=ui_url,
        version_tags=version_tags,
        extra_metrics={"champion_silhouette": None if comparison is None else comparison.champion_silhouette},
    )
    return FittedSegments(
        chosen_k=result.chosen_k,
        silhouette=result.silhouette,
        ward_silhouette=result.ward_silhouette,
        silhouettes=dict(result.silhouettes),
        users=result.n_users,
        as_of_date=str(features["as_of_date"].iloc[0])[:10],
        sizes=_sizes(result.assignments),
        model_version=run.model_version,
        run_id=run.run_id,
        run_url=run.url,
        tracking_uri=uri,
        ari_vs_previous=ari,
        id_agreement_vs_previous=agreement,
        features_used=tuple(result.model.transform.features),
        features_dropped=result.features_dropped,
        warnings=tuple(result.warnings),
        promoted=promotion.promote,
        decision_reason=promotion.reason,
        champion_version=run.model_version if promotion.promote else previous_version,
        compared_with_champion=previous_version,
        champion_silhouette=None if comparison is None else comparison.champion_silhouette,
        id_agreement_vs_champion=None if comparison is None else comparison.id_agreement,
    )


def segment_inputs_fingerprint(warehouse: Warehouse, config: SegmentationConfig) -> str:
    """What a fit depends on: `user_features` (its digest, by the engine), the config, the fit's user cap and
    the versions of scikit-learn and numpy. The champion the fit is matched to is not part of it: matching
    names the segments, it does not move them."""
    params = {**config.params(), "fit_max_users": FIT_MAX_USERS}
    return input_fingerprint(warehouse.table_digest(FEATURES_TABLE), params, SEGMENT_FIT_PACKAGES)


def update_segment_model(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    mlflow_store: Path | str,
    seed: int = 0,
    config: SegmentationConfig | None = None,
    ui_url: str | None = None,
    *,
    refit: bool = True,
    promotion_tolerance: float = DEFAULT_PROMOTION_TOLERANCE,
) -> SegmentModelUpdate:
    """Refit and register the segments unless

    * ``refit`` is False (the daily and landing-sensor runs) and a champion exists: nothing is fitted or
      registered, status ``unchanged`` ("assigning with champion vN"); :class:`ChampionCannotAssign` when the
      champion reads columns `user_features` no longer has (the run fails, naming them and the refit job);
    * the inputs equal those of the latest registered version (its ``input_fingerprint`` tag): nothing is
      fitted or registered, status ``unchanged`` ("inputs unchanged since version N: kept");
    * the data cannot support a segmentation (:class:`~ml.segmentation.SegmentationRefused`): nothing is
      fitted or registered, status ``refused`` with the reason; the champion, if any, stays.

    Otherwise :func:`fit_and_register_segments`, status ``trained``: a new version, promoted to champion only
    when ml.segment_promotion's rule holds (the reason says). With no champion the first fit is made whatever
    ``refit`` says, and becomes champion. The caller records the decision (ml.decisions.record_decision)."""
    from ml.tracking import REGISTERED_MODEL, champion_info, latest_version, load_champion, tracking_uri

    warehouse = as_warehouse(warehouse)
    config = config or SegmentationConfig(seed=seed)
    uri = tracking_uri(mlflow_store)
    champion = champion_info(uri, REGISTERED_MODEL)
    champion_version = None if champion is None else champion.version
    if not refit and champion is not None:
        require_champion_can_assign(warehouse, load_champion(uri, REGISTERED_MODEL), champion.version)
        reason = (
            f"assigning with champion v{champion.version}: segments are refitted by the job {REFIT_JOB} "
            "(weekly, or on demand), not by daily runs"
        )
        decision = ModelDecision(SEGMENT_MODEL, UNCHANGED, reason, champion.version, champion.version)
        return SegmentModelUpdate(decision, None)
    fingerprint = segment_inputs_fingerprint(warehouse, config)
    latest = latest_version(uri, REGISTERED_MODEL)
    if latest is not None and latest.tags.get(FINGERPRINT_TAG) == fingerprint:
        reason = f"inputs unchanged since version {latest.version}: kept"
        decision = ModelDecision(SEGMENT_MODEL, UNCHANGED, reason, latest.version, champion_version, fingerprint)
        return SegmentModelUpdate(decision, None)
    try:
        fitted = fit_and_register_segments(
            warehouse,
            mlflow_store,
            config=config,
            ui_url=ui_url,
            version_tags={FINGERPRINT_TAG: fingerprint},
            promotion_tolerance=promotion_tolerance,
        )
    except SegmentationRefused as exc:
        decision = ModelDecision(SEGMENT_MODEL, REFUSED, str(exc), None, champion_version, fingerprint)
        return SegmentModelUpdate(decision, None)
    since = "the first version" if latest is None else f"inputs changed since version {latest.version}"
    reason = (
        f"fitted version {fitted.model_version}: k={fitted.chosen_k} over {fitted.users:,} users ({since}); "
        f"{fitted.decision_reason}"
    )
    decision = ModelDecision(SEGMENT_MODEL, TRAINED, reason, fitted.model_version, fitted.champion_version, fingerprint)
    return SegmentModelUpdate(decision, fitted)


def require_champion_can_assign(warehouse: Warehouse, model: SegmentModel | None, version: str) -> None:
    """Raise :class:`ChampionCannotAssign` when the champion ``model`` reads `user_features` columns that are
    gone (a changed mart): a daily run does not refit on its own, the refit job decides."""
    if model is None:
        return
    columns = warehouse.frame(f"select * from {FEATURES_TABLE} limit 0").columns
    missing = missing_features(model, columns)
    if missing:
        raise ChampionCannotAssign(
            f"pulse_segments champion v{version} reads {', '.join(missing)}, which {FEATURES_TABLE} no longer has: "
            f"it cannot assign today's users. Run the job {REFIT_JOB} (Dagster UI, or `dagster job execute -w "
            f"workspace.yaml -j {REFIT_JOB}`): a champion that cannot assign is replaced by the refit"
        )


def write_segment_assignments(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    mlflow_store: Path | str,
    batch_rows: int = ASSIGNMENT_BATCH_ROWS,
) -> WrittenSegments:
    """Assign every user of `user_features` with the champion, ``batch_rows`` users at a time (memory holds one
    batch, whatever the table's size; on Spark the executors assign), and replace `segment_assignments` and
    `segment_names`. Without a champion (segmentation refused so far) both are emptied and ``model_version`` is
    None: the profiles say why (the dbt models model_status and user_profiles). The join with the names and the
    user types is the dbt model user_segments; per-segment profiles are the dbt model segment_profiles."""
    from ml import tracking

    uri = tracking.tracking_uri(mlflow_store)
    model = tracking.load_champion(uri)
    if model is None:
        warehouse = as_warehouse(warehouse)
        warehouse.create_empty_table(SEGMENT_ASSIGNMENTS_TABLE, SEGMENT_ASSIGNMENTS_COLUMNS)
        warehouse.create_empty_table(SEGMENT_NAMES_TABLE, SEGMENT_NAMES_COLUMNS)
        return WrittenSegments(rows=0, model_version=None, as_of_date="", sizes=[])
    version = str(tracking.champion_version(uri))
    info = tracking.champion_info(uri)
    trained_at = info.created_at if info is not None and info.version == version else None
    return assign_segments(warehouse, model, version, batch_rows, trained_at=trained_at)


def write_segment_names(warehouse: Warehouse, model: SegmentModel, version: str) -> None:
    """Replace `segment_names` with the names ``model`` gives its segments (ml/naming.py, from the centroids):
    one row per segment of version ``version``."""
    warehouse.create_empty_table(SEGMENT_NAMES_TABLE, SEGMENT_NAMES_COLUMNS)
    rows = ", ".join(
        f"({literal(version)}, {int(segment_id)}, {literal(name)})"
        for segment_id, name in sorted(model.name_by_id().items())
    )
    warehouse.execute(f"insert into {SEGMENT_NAMES_TABLE} values {rows}")


def assign_segments(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    model: SegmentModel,
    version: str,
    batch_rows: int = ASSIGNMENT_BATCH_ROWS,
    trained_at: datetime | None = None,
) -> WrittenSegments:
    """:func:`write_segment_assignments` with a given model, its version and when it was registered (UTC)."""
    warehouse = as_warehouse(warehouse)
    names = model.name_by_id()

    def assign(features: pd.DataFrame) -> pd.DataFrame:
        segment_id, distance = model.assign(features)
        return pd.DataFrame(
            {
                "user_key": features["user_key"].to_numpy(),
                "segment_id": segment_id.astype("int64"),
                "distance_to_centroid": distance.astype("float64"),
                "as_of_date": pd.to_datetime(features["as_of_date"]).dt.date.to_numpy(),
                "model_version": version,
            }
        )

    with scratch_table(warehouse, ASSIGNED_SEGMENTS) as assigned:
        rows = warehouse.map_batches("select * from user_features", assign, ASSIGNED_COLUMNS, assigned, batch_rows)
        if rows == 0:
            raise ValueError("user_features is empty: no user had activity before the snapshot date")
        warehouse.replace_table(
            SEGMENT_ASSIGNMENTS_TABLE,
            f"""select user_key, segment_id, distance_to_centroid, as_of_date, model_version,
                cast({literal(trained_at)} as timestamp) as model_trained_at
            from {assigned}""",
        )
    write_segment_names(warehouse, model, version)
    sizes = warehouse.rows(
        f"""select segment_id, count(*) as users from {SEGMENT_ASSIGNMENTS_TABLE}
        group by segment_id order by users desc, segment_id"""
    )
    [[as_of]] = warehouse.rows(f"select min(as_of_date) from {SEGMENT_ASSIGNMENTS_TABLE}")
    return WrittenSegments(
        rows=rows,
        model_version=version,
        as_of_date=str(as_of),
        sizes=[(int(i), names[int(i)], int(n)) for i, n in sizes],
    )


def segment_sizes_markdown(sizes: list[tuple[int, str, int]]) -> str:
    total = sum(n for _, _, n in sizes) or 1
    rows = [f"| {i} | {name} | {n:,} | {100 * n / total:.1f} % |" for i, name, n in sizes]
    return "\n".join(["| segment_id | name | users | share |", "|---|---|---|---|", *rows])
