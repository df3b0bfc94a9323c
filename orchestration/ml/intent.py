"""Purchase intent as Dagster assets: thin wrappers around ml.user_intent.

purchase_intent_model   trains XGBoost and its two baselines on `purchase_intent_training_set` (temporal split),
                        logs them side by side in MLflow, registers the model as `challenger` and promotes it
                        to `champion` only when it is at least as good (see ml/intent_tracking.py). When the data
                        cannot support an honest evaluation its check `enough_labelled_data` warns and training
                        refuses; when the inputs are unchanged since the latest version nothing is trained. Either
                        way the step succeeds, the decision is a row of `model_decisions`, and the champion, if
                        any, keeps scoring.
purchase_intent_scores  every user of the dbt model intent_scoring_population (who is active enough to score)
                        scored with the champion (the probability; the dbt model user_intent_scores ranks them:
                        percentile, decile).
"""

import dagster as dg

from ml.decisions import record_decision
from ml.purchase_intent import IntentConfig
from ml.user_intent import plan_intent_training, train_planned_intent, write_purchase_intent_scores
from orchestration.ml.assets import mlflow_ui
from orchestration.ml.decisions import decision_metadata, log_decision
from orchestration.resources import PulseSettings, PulseStorage
from pulse.core.settings import Settings

SUFFICIENCY_CHECK = "enough_labelled_data"


def intent_config(settings: Settings) -> tuple[IntentConfig, float]:
    """The training config from the settings door (gate, test / validation snapshots, evaluation date) and the
    promotion tolerance. The label horizon comes from the training table itself."""
    try:
        config = IntentConfig(
            min_positives=settings.intent_min_positives,
            min_negatives=settings.intent_min_negatives,
            test_snapshots=settings.intent_test_snapshots,
            validation_snapshots=settings.intent_validation_snapshots,
            test_as_of=settings.intent_test_as_of,
        )
    except ValueError as exc:  # the door checks each value; this is the config's own rule
        raise dg.Failure(description=f"settings: {exc}") from None
    return config, settings.intent_promotion_tolerance


@dg.asset(
    key="purchase_intent_model",
    group_name="ml",
    deps=["purchase_intent_training_set"],
    pool="warehouse",
    kinds={"python", "xgboost", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            SUFFICIENCY_CHECK,
            asset="purchase_intent_model",
            blocking=False,
            description="Train and test each have at least the minimum positives and negatives, and some snapshot "
            "has a complete label window; otherwise training refuses (a warning: the run goes on, the champion, "
            "if any, keeps scoring).",
        )
    ],
    description="XGBoost purchase-intent model (purchase within the horizon) trained on point-in-time snapshots "
    "with a temporal split, beside an RFM logistic regression and a recency heuristic on the same test rows; "
    "registered in MLflow as `purchase_intent_model@challenger`, promoted to `@champion` only if at least as "
    "good as the champion and better than the RFM baseline. Not retrained when the inputs are unchanged since "
    "the latest version; refuses, with the reason, when the data cannot support an honest evaluation.",
)
def purchase_intent_model(context: dg.AssetExecutionContext, storage: PulseStorage, settings: PulseSettings):
    paths = storage.paths()
    # The evaluation date (`pulse materialize --test-as-of D`, setting intent_test_as_of) picks which snapshot is
    # test; the scored snapshot and the profiles' as-of stay the latest.
    config, tolerance = intent_config(settings.resolve())
    with storage.open_warehouse() as warehouse:
        plan = plan_intent_training(warehouse, paths.mlflow_store, config, tolerance=tolerance)
        if plan.decision is not None:  # unchanged or refused: nothing to train
            record_decision(warehouse, plan.decision, run_id=context.run_id)
    gate = plan.gate
    yield dg.AssetCheckResult(
        check_name=SUFFICIENCY_CHECK,
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=gate.message,
        metadata={"counts": dg.MetadataValue.json(gate.counts), "message": gate.message},
    )
    if plan.decision is not None:
        log_decision(context, plan.decision)
        yield dg.MaterializeResult(metadata=decision_metadata(plan.decision))
        return
    # training needs no warehouse connection (the frame was read once); the decision is recorded after it
    decision, trained = train_planned_intent(
        plan, paths.mlflow_store, config, tolerance=tolerance, ui_url=mlflow_ui(paths)
    )
    with storage.open_warehouse() as warehouse:
        record_decision(warehouse, decision, run_id=context.run_id)
    log_decision(context, decision)
    context.log.info(trained.summary())
    result, registration = trained.result, trained.registration
    promotion = registration.decision
    metadata: dict[str, dg.RawMetadataValue] = {
        **decision_metadata(decision),
        "promoted": promotion.promote,
        "decision": promotion.reason,
        "test_roc_auc": dg.MetadataValue.float(promotion.challenger_auc),
        "rfm_test_roc_auc": dg.MetadataValue.float(promotion.rfm_auc),
        "recency_test_roc_auc": dg.MetadataValue.float(result.test_metrics["recency_heuristic"]["roc_auc"]),
        "metrics": dg.MetadataValue.json(
            {name: {k: round(float(v), 4) for k, v in m.items()} for name, m in result.test_metrics.items()}
        ),
        "split": dg.MetadataValue.json(result.split.describe()),
        "test_as_of": config.test_as_of.isoformat() if config.test_as_of else "",
        "best_iteration": result.best_iteration,
        "mlflow_run_id": registration.run_id,
        "mlflow_tracking_uri": trained.tracking_uri,
    }
    if promotion.champion_auc is not None:
        metadata["previous_champion_test_roc_auc"] = dg.MetadataValue.float(promotion.champion_auc)
    if registration.url:
        metadata["mlflow_run"] = dg.MetadataValue.url(registration.url)
    yield dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key="purchase_intent_scores",
    group_name="ml",
    deps=["purchase_intent_model", "intent_scoring_population"],
    pool="warehouse",
    kinds={"python", "duckdb"},
    description="Every user of intent_scoring_population (dbt: the latest snapshot's users with a session in the 30 "
    "days before it; var intent_scoring_min_sessions_30d) scored with "
    "`purchase_intent_model@champion`: probability of a purchase within the horizon, snapshot date, model version, "
    "when it was trained and scored_at. Empty, with a warning, while no model is champion. The dbt model "
    "user_intent_scores ranks them (percentile, decile).",
)
def purchase_intent_scores(context: dg.AssetExecutionContext, storage: PulseStorage) -> dg.MaterializeResult:
    paths = storage.paths()
    with storage.open_warehouse() as warehouse:
        written = write_purchase_intent_scores(warehouse, paths.mlflow_store)
    if written.model_version is None:
        context.log.warning(
            "no purchase_intent_model@champion yet: nobody scored (purchase_intent_scores is empty). "
            "Run the intent_training job once enough labelled snapshots exist."
        )
        return dg.MaterializeResult(metadata={"rows": 0, "model_version": "none: no champion yet"})
    return dg.MaterializeResult(
        metadata={
            "rows": written.rows,
            "model_version": written.model_version,
            "model_trained_at": written.model_trained_at,
            "as_of_date": written.as_of_date,
            "scored_at": written.scored_at,
            "mean_probability": dg.MetadataValue.float(written.mean_probability),
        }
    )
