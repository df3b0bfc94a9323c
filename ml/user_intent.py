"""Purchase intent against the warehouse: train and register from `purchase_intent_training_set`, then score
the latest feature snapshot into `purchase_intent_scores` (the dbt model user_intent_scores ranks them).

Plain functions over a warehouse (pulse.core.warehouse: DuckDB, or Spark with PULSE_ENGINE=spark; a DuckDB
connection is accepted as it is), callable without Dagster (orchestration/ml/intent.py wraps them).

What the pipeline runs: :func:`plan_intent_training` decides before anything is fitted: ``unchanged`` when the
inputs (the digest of the training set computed by the engine, the config, the promotion tolerance, the
library versions; ml.decisions) equal those of the latest registered version, ``refused`` when the
sufficiency gate says the data cannot support an honest evaluation, else it hands over the training frame;
:func:`train_planned_intent` then trains and registers as before. Scoring uses whichever version is champion,
so a refusal keeps the champion's scores (`purchase_intent_scores.model_version`, ``model_trained_at``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from ml.decisions import FINGERPRINT_TAG, REFUSED, TRAINED, UNCHANGED, ModelDecision, input_fingerprint
from ml.intent_tracking import (
    REGISTERED_MODEL,
    IntentChampion,
    IntentRegistration,
    load_intent_champion,
    log_intent_training,
)
from ml.purchase_intent import (
    InsufficientDataError,
    IntentConfig,
    IntentTrainingResult,
    SufficiencyReport,
    check_sufficiency,
    predict_proba,
    temporal_split,
    train_purchase_intent,
)
from ml.tracking import tracking_uri
from pulse.core.warehouse import Warehouse, as_warehouse, literal, scratch_table, user_sample

INTENT_MODEL = "purchase_intent_model"  # the Dagster asset; its decisions in model_decisions go by this name
TRAINING_SET = "purchase_intent_training_set"
INTENT_FIT_PACKAGES = ("xgboost", "scikit-learn", "numpy")  # their versions are part of the inputs' fingerprint
# What this step writes: only what Python computes. The dbt model user_intent_scores ranks the scored users
# (percentile, decile: models/profiles/user_intent_scores.sql; dbt sources `ml`, models/profiles/_ml_sources.yml).
PURCHASE_INTENT_SCORES_TABLE = "purchase_intent_scores"
INTENT_PROBABILITIES = "pulse_intent_probabilities"  # the batches' output
PROBABILITY_COLUMNS = (("user_key", "string"), ("probability", "double"), ("as_of_date", "date"))
PURCHASE_INTENT_SCORES_COLUMNS = (
    *PROBABILITY_COLUMNS,
    ("model_version", "string"),
    ("model_trained_at", "timestamp"),  # when the scoring version was registered (UTC)
    ("scored_at", "timestamp"),
)
SCORING_POPULATION = "intent_scoring_population"  # dbt (models/ml): who is scored, the threshold is a dbt var


@dataclass(frozen=True)
class TrainedIntent:
    result: IntentTrainingResult
    registration: IntentRegistration
    tracking_uri: str

    def summary(self) -> str:
        m = self.result.test_metrics
        d = self.registration.decision
        return (
            f"test ROC-AUC: xgboost {m['xgboost']['roc_auc']:.4f}, RFM logistic {m['rfm_logistic']['roc_auc']:.4f}, "
            f"recency {m['recency_heuristic']['roc_auc']:.4f}; version {self.registration.model_version}: {d.reason}"
        )


@dataclass(frozen=True)
class WrittenScores:
    rows: int
    model_version: str | None  # None: no champion yet, nobody scored
    model_trained_at: str  # when the champion was registered (UTC), "" when unknown
    as_of_date: str
    scored_at: str
    mean_probability: float


# Training reads at most about this many rows (user snapshots) into memory: ~22 features x 8 bytes, about
# 0.5 GB with pandas' copies. Past it, a sample of users is trained on (docs/purchase-intent.md).
TRAINING_MAX_ROWS = 2_000_000


def read_training_set(
    warehouse: Warehouse | duckdb.DuckDBPyConnection, max_rows: int = TRAINING_MAX_ROWS
) -> pd.DataFrame:
    """The training set, whole when it has at most ``max_rows`` rows. A larger one is sampled by user, so that
    memory stays bounded whatever the warehouse holds: every snapshot of the users whose key hashes into the
    first ``max_rows / rows`` of the hash range (deterministic: the same users on every run while the table's
    size class holds; a user is in or out with all of their snapshots, so the temporal split stays clean)."""
    warehouse = as_warehouse(warehouse)
    [[rows]] = warehouse.rows(f"select count(*) from {TRAINING_SET}")
    where = user_sample(warehouse, rows, max_rows)
    return warehouse.frame(f"select * from {TRAINING_SET} {where} order by as_of_date, user_key")


def with_table_horizon(frame: pd.DataFrame, config: IntentConfig) -> IntentConfig:
    """The config with the label horizon the dbt table was built with (var purchase_horizon_days): the
    split's gaps must follow the labels, whatever the default."""
    if frame.empty:
        return config
    days = (pd.to_datetime(frame["label_window_end_date"]) - pd.to_datetime(frame["as_of_date"])).dt.days.unique()
    if len(days) != 1:
        raise ValueError(f"{TRAINING_SET} mixes label windows of {sorted(days)} days")
    return replace(config, horizon_days=int(days[0]))


def sufficiency(frame: pd.DataFrame, config: IntentConfig | None = None) -> SufficiencyReport:
    """The data-sufficiency gate on the training set (:func:`read_training_set`); raises
    InsufficientDataError when the snapshots cannot even be split."""
    config = with_table_horizon(frame, config or IntentConfig())
    split = temporal_split(
        frame["as_of_date"], config.horizon_days, config.test_snapshots, config.validation_snapshots, config.test_as_of
    )
    return check_sufficiency(frame, split, config)


def train_and_register_intent(
    frame: pd.DataFrame,
    mlflow_store: Path | str,
    config: IntentConfig | None = None,
    *,
    tolerance: float = 0.005,
    ui_url: str | None = None,
    version_tags: dict[str, str] | None = None,
) -> TrainedIntent:
    """Train on the training set (:func:`read_training_set`), log and register, promote if it earns it."""
    result = train_purchase_intent(frame, with_table_horizon(frame, config or IntentConfig()))
    uri = tracking_uri(mlflow_store)
    registration = log_intent_training(result, uri, tolerance=tolerance, ui_url=ui_url, version_tags=version_tags)
    return TrainedIntent(result=result, registration=registration, tracking_uri=uri)


@dataclass(frozen=True)
class IntentGate:
    """The sufficiency gate's verdict, as the check `enough_labelled_data` shows it."""

    passed: bool
    message: str
    counts: dict[str, int]


@dataclass(frozen=True)
class IntentPlan:
    """What :func:`plan_intent_training` found: ``decision`` is set when nothing is to be trained (unchanged or
    refused); otherwise ``frame`` is the training set to train on."""

    gate: IntentGate
    fingerprint: str
    decision: ModelDecision | None
    frame: pd.DataFrame | None
    latest_version: str | None  # the latest registered version before this training
    champion_version: str | None


def intent_inputs_fingerprint(
    warehouse: Warehouse | duckdb.DuckDBPyConnection, config: IntentConfig, tolerance: float
) -> str:
    """What a training depends on: the training set (its digest, by the engine), the config (minus the thread
    count, which does not change the model), the promotion tolerance, the training row cap and the versions of
    XGBoost, scikit-learn and numpy."""
    params = {k: v for k, v in config.params().items() if k != "nthread"}
    params |= {"promotion_tolerance": tolerance, "training_max_rows": TRAINING_MAX_ROWS}
    return input_fingerprint(as_warehouse(warehouse).table_digest(TRAINING_SET), params, INTENT_FIT_PACKAGES)


def plan_intent_training(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    mlflow_store: Path | str,
    config: IntentConfig | None = None,
    *,
    tolerance: float = 0.005,
) -> IntentPlan:
    """Decide before fitting anything:

    * ``unchanged``: the inputs equal those of the latest registered version (its ``input_fingerprint`` tag),
      which was trained on them after passing the gate: nothing to train, the registry stays as it is;
    * ``refused``: the sufficiency gate fails (too few positives / negatives per part, too few snapshots):
      nothing to train; the champion, if any, keeps scoring;
    * otherwise the training frame, read once (training needs no warehouse connection)."""
    from ml.tracking import champion_info, latest_version

    config = config or IntentConfig()
    uri = tracking_uri(mlflow_store)
    fingerprint = intent_inputs_fingerprint(warehouse, config, tolerance)
    latest = latest_version(uri, REGISTERED_MODEL)
    champion = champion_info(uri, REGISTERED_MODEL)
    champion_version = None if champion is None else champion.version
    latest_number = None if latest is None else latest.version
    if latest is not None and latest.tags.get(FINGERPRINT_TAG) == fingerprint:
        reason = f"inputs unchanged since version {latest.version}: kept"
        gate = IntentGate(True, f"{reason} (version {latest.version} was trained on these inputs, past this gate)", {})
        decision = ModelDecision(INTENT_MODEL, UNCHANGED, reason, latest.version, champion_version, fingerprint)
        return IntentPlan(gate, fingerprint, decision, None, latest_number, champion_version)
    frame = read_training_set(warehouse)
    try:
        report = sufficiency(frame, config)
        gate = IntentGate(report.ok, report.message, report.counts())
    except InsufficientDataError as exc:
        gate = IntentGate(False, str(exc), {})
    if not gate.passed:
        decision = ModelDecision(INTENT_MODEL, REFUSED, gate.message, None, champion_version, fingerprint)
        return IntentPlan(gate, fingerprint, decision, None, latest_number, champion_version)
    return IntentPlan(gate, fingerprint, None, frame, latest_number, champion_version)


def train_planned_intent(
    plan: IntentPlan,
    mlflow_store: Path | str,
    config: IntentConfig | None = None,
    *,
    tolerance: float = 0.005,
    ui_url: str | None = None,
) -> tuple[ModelDecision, TrainedIntent]:
    """Train, register and maybe promote on ``plan.frame`` (a plan without a decision); the decision
    ``trained``, with the new version and the promotion's reason, and the training."""
    if plan.frame is None or plan.decision is not None:
        raise ValueError("this plan trains nothing: its decision is already made")
    trained = train_and_register_intent(
        plan.frame,
        mlflow_store,
        config,
        tolerance=tolerance,
        ui_url=ui_url,
        version_tags={FINGERPRINT_TAG: plan.fingerprint},
    )
    registration = trained.registration
    since = (
        "the first version" if plan.latest_version is None else f"inputs changed since version {plan.latest_version}"
    )
    reason = f"trained version {registration.model_version} ({since}); {registration.decision.reason}"
    decision = ModelDecision(
        INTENT_MODEL, TRAINED, reason, registration.model_version, registration.champion_version, plan.fingerprint
    )
    return decision, trained


SCORING_BATCH_ROWS = 100_000


def write_purchase_intent_scores(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    mlflow_store: Path | str,
    *,
    now: datetime | None = None,
    batch_rows: int = SCORING_BATCH_ROWS,
) -> WrittenScores:
    """Score every user of `intent_scoring_population` (dbt: the latest snapshot's users active enough to score)
    with the registry's champion and replace `purchase_intent_scores`, ``batch_rows`` users at a time (bounded
    memory; on Spark the executors score)."""
    champion = load_intent_champion(tracking_uri(mlflow_store))
    return score_users(warehouse, champion, now=now, batch_rows=batch_rows)


def score_users(
    warehouse: Warehouse | duckdb.DuckDBPyConnection,
    champion: IntentChampion | None,
    *,
    now: datetime | None = None,
    batch_rows: int = SCORING_BATCH_ROWS,
) -> WrittenScores:
    """:func:`write_purchase_intent_scores` with a given model (None: no champion, nobody is scored)."""
    warehouse = as_warehouse(warehouse)
    scored_at = (now or datetime.now(UTC)).replace(microsecond=0)
    if champion is None:
        # Before the first promoted model (a new installation, or too little data so far) nobody is scored:
        # the table is emptied, and the caller reports it (rows 0, model_version None).
        warehouse.create_empty_table(PURCHASE_INTENT_SCORES_TABLE, PURCHASE_INTENT_SCORES_COLUMNS)
        return WrittenScores(0, None, "", "", scored_at.isoformat(), float("nan"))

    def score(users: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user_key": users["user_key"].to_numpy(),
                "probability": predict_proba(champion.model, users, champion.features),
                "as_of_date": pd.to_datetime(users["as_of_date"]).dt.date.to_numpy(),
            }
        )

    # Scored in batches of `batch_rows` users: memory holds one batch of features, whatever the table's size.
    # The ranking among the scored users (percentile, decile) is the dbt model user_intent_scores.
    # Who is scored is a rule, so a dbt model decides it (models/ml/intent_scoring_population); Python scores
    # every row it is given.
    population = f"select * from {SCORING_POPULATION}"
    with scratch_table(warehouse, INTENT_PROBABILITIES) as probabilities:
        scored = warehouse.map_batches(population, score, PROBABILITY_COLUMNS, probabilities, batch_rows)
        if scored == 0:
            raise RuntimeError(
                f"nobody to score: {SCORING_POPULATION} is empty (no user of user_features has at least "
                "intent_scoring_min_sessions_30d sessions in the 30 days before the snapshot)"
            )
        warehouse.replace_table(
            PURCHASE_INTENT_SCORES_TABLE,
            f"""select user_key, probability, as_of_date,
                {literal(str(champion.version))} as model_version,
                cast({literal(champion.trained_at)} as timestamp) as model_trained_at,
                {literal(scored_at.replace(tzinfo=None))} as scored_at
            from {probabilities}""",
        )
    [(rows, as_of, mean)] = warehouse.rows(
        f"select count(*), min(as_of_date), avg(probability) from {PURCHASE_INTENT_SCORES_TABLE}"
    )
    return WrittenScores(
        rows=int(rows),
        model_version=champion.version,
        model_trained_at="" if champion.trained_at is None else champion.trained_at.isoformat(sep=" "),
        as_of_date=str(as_of),
        scored_at=scored_at.isoformat(),
        mean_probability=float(mean),
    )
