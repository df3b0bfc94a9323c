"""MLflow bookkeeping for the purchase-intent model: runs side by side, the registry, champion / challenger.

One training (:func:`ml.purchase_intent.train_purchase_intent`) is logged as

* a parent run ``purchase_intent v7 test 2026-10-24`` (:func:`intent_run_name`: the registered version,
  added once known, and the test snapshot date) in the experiment ``pulse-purchase-intent`` (marked as model
  training, :func:`ml.tracking.experiment_id_for`): the config, the temporal split's dates, row and label
  counts as params; the XGBoost test and validation metrics (``test_roc_auc``, ``validation_roc_auc``, ...)
  and, beside them, every baseline's test metrics under its short name (``rfm_test_roc_auc``,
  ``recency_test_roc_auc``, ...: :func:`baseline_metric_prefix`), so the experiment's runs table shows the
  model and its baselines in columns side by side; the plots (ROC, calibration, gain importance, SHAP
  summary) and the importance tables as artifacts;
* one child run per model (``xgboost test 2026-10-24``, ``rfm_logistic test 2026-10-24``, ...) with the
  same metric names (``test_roc_auc``, ``test_pr_auc``, ``test_log_loss``, ``test_brier``,
  ``test_top_decile_lift``) on the same test rows, so the MLflow UI compares them row by row;
* a new version of the registered model ``purchase_intent_model`` (XGBoost flavor, with signature and input
  example), which gets the alias ``challenger`` (:func:`ml.tracking.register_version`, the registration path
  the segment model shares: version tags, ``challenger``, then ``champion`` when promoted, last).

Promotion (:func:`decide_promotion`): the challenger becomes ``champion`` only if it beats the RFM baseline on
the test set and its test ROC-AUC is at least the current champion's, scored now on the *same* test rows,
minus a tolerance. The decision and its reason are tags on the model version and on the run, and the
caller shows them (Dagster metadata). The alias moves last, so a failure anywhere leaves the champion alone.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.purchase_intent import FEATURES, IntentTrainingResult, predict_proba, write_intent_plots
from ml.tracking import (
    alias_version,
    decision_run_tags,
    experiment_id_for,
    now_ms,
    register_version,
    ui_run_url,
    using_store,
)

__all__ = [
    "EXPERIMENT",
    "REGISTERED_MODEL",
    "IntentChampion",
    "IntentRegistration",
    "PromotionDecision",
    "champion_tags",
    "baseline_metric_prefix",
    "decide_promotion",
    "intent_run_name",
    "load_intent_champion",
    "log_intent_training",
]

EXPERIMENT = "pulse-purchase-intent"
REGISTERED_MODEL = "purchase_intent_model"
MODEL_NAME = "model"  # the logged model's name within the run
METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift")
MODEL = "xgboost"  # the model that is registered; the other entries of test_metrics are its baselines


def split_test_dates(split: dict[str, str]) -> str:
    """The test snapshot date, or ``first..last`` with several test snapshots."""
    first, last = split.get("test_from", ""), split.get("test_to", "")
    return first if first == last or not last else f"{first}..{last}"


def intent_run_name(split: dict[str, str], version: str | None = None) -> str:
    """``purchase_intent v7 test 2026-10-24``: the registered version (known only once the model is
    registered; the run is renamed then) and the test snapshot date(s)."""
    name = "purchase_intent" + (f" v{version}" if version else "")
    dates = split_test_dates(split)
    return f"{name} test {dates}" if dates else name


def table_metrics(baseline_prefixes: Iterable[str]) -> list[str]:
    """The runs table's default columns in `pulse mlflow` (pulse.ui.mlflow_ui): the model's and each baseline's test
    ROC-AUC and PR-AUC side by side, the model's top-decile lift, and the champion's ROC-AUC on the same rows."""
    prefixes = list(baseline_prefixes)
    columns = []
    for metric in ("roc_auc", "pr_auc"):
        columns += [f"test_{metric}", *(f"{p}_test_{metric}" for p in prefixes)]
    return [*columns, "test_top_decile_lift", "champion_test_roc_auc"]


def baseline_metric_prefix(model: str) -> str:
    """A baseline's metrics on the parent run are ``<prefix>_test_<metric>``: the model name's first word
    (``rfm_logistic`` -> ``rfm``, ``recency_heuristic`` -> ``recency``), as in the model version's tags and the
    Dagster metadata (``rfm_test_roc_auc``)."""
    return model.split("_", 1)[0]


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_auc: float
    rfm_auc: float
    champion_version: str | None
    champion_auc: float | None  # the champion scored on the challenger's test rows
    tolerance: float


@dataclass(frozen=True)
class IntentRegistration:
    run_id: str
    experiment_id: str
    model_version: str
    model_uri: str
    decision: PromotionDecision
    champion_version: str | None  # after the decision
    url: str | None


@dataclass(frozen=True)
class IntentChampion:
    model: Any  # xgboost.Booster
    version: str
    features: tuple[str, ...]
    trained_at: datetime | None = None  # when the version was registered (UTC, naive)


def decide_promotion(
    challenger_auc: float,
    rfm_auc: float,
    champion_auc: float | None,
    champion_version: str | None,
    tolerance: float,
) -> PromotionDecision:
    """The challenger is promoted when it beats the RFM baseline and is not worse than the champion by more
    than ``tolerance`` (ROC-AUC on the same test rows). With no champion, beating the baseline is enough."""
    if not challenger_auc > rfm_auc:
        reason = f"not promoted: test ROC-AUC {challenger_auc:.4f} does not beat the RFM baseline's {rfm_auc:.4f}"
        return PromotionDecision(False, reason, challenger_auc, rfm_auc, champion_version, champion_auc, tolerance)
    if champion_auc is None:
        reason = (
            f"promoted: no champion yet, and test ROC-AUC {challenger_auc:.4f} beats the RFM baseline's {rfm_auc:.4f}"
        )
        return PromotionDecision(True, reason, challenger_auc, rfm_auc, champion_version, champion_auc, tolerance)
    if challenger_auc >= champion_auc - tolerance:
        reason = (
            f"promoted: test ROC-AUC {challenger_auc:.4f} >= champion v{champion_version}'s {champion_auc:.4f} "
            f"- tolerance {tolerance:g} on the same test rows, and beats the RFM baseline's {rfm_auc:.4f}"
        )
        return PromotionDecision(True, reason, challenger_auc, rfm_auc, champion_version, champion_auc, tolerance)
    reason = (
        f"not promoted: test ROC-AUC {challenger_auc:.4f} < champion v{champion_version}'s {champion_auc:.4f} "
        f"- tolerance {tolerance:g} on the same test rows; the champion stays"
    )
    return PromotionDecision(False, reason, challenger_auc, rfm_auc, champion_version, champion_auc, tolerance)


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def load_intent_champion(tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> IntentChampion | None:
    """The champion booster, its version and the features it was trained on; None without a champion."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///") :]).exists():
        return None  # no database yet: nothing was ever logged (and do not create one by looking)
    with using_store(tracking_uri) as mlflow:
        client = _client(tracking_uri)
        version = alias_version(client, registered_model)
        if version is None:
            return None
        model = mlflow.xgboost.load_model(f"models:/{registered_model}/{version}")
        details = client.get_model_version(registered_model, version)
        tags = details.tags
    features = tuple(json.loads(tags["features"])) if "features" in tags else tuple(model.feature_names or FEATURES)
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    created = details.creation_timestamp
    # to the second: the reasons print it, and both engines print whole seconds alike
    trained_at = datetime.fromtimestamp(created // 1000, UTC).replace(tzinfo=None) if created else None
    return IntentChampion(model=booster, version=version, features=features, trained_at=trained_at)


def champion_tags(tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> dict[str, str] | None:
    """The champion version's tags (test ROC-AUCs, decision, test dates) plus ``version``; None without one."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///") :]).exists():
        return None
    with using_store(tracking_uri):
        client = _client(tracking_uri)
        version = alias_version(client, registered_model)
        if version is None:
            return None
        return {**client.get_model_version(registered_model, version).tags, "version": version}


def _test_rows(result: IntentTrainingResult) -> tuple[pd.DataFrame, np.ndarray]:
    test = result.test_frame
    return test, test[result.label].to_numpy(dtype=bool)


def _signature(model: Any, features: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    with warnings.catch_warnings():  # "integer columns cannot hold missing values": counts, by design
        warnings.simplefilter("ignore", UserWarning)
        return infer_signature(features, predict_proba(model, features))


def log_intent_training(
    result: IntentTrainingResult,
    tracking_uri: str,
    *,
    tolerance: float = 0.005,
    experiment: str = EXPERIMENT,
    registered_model: str = REGISTERED_MODEL,
    ui_url: str | None = None,
    run_name: str | None = None,
    version_tags: dict[str, str] | None = None,
) -> IntentRegistration:
    """Log the training (parent run + one child run per model), register the XGBoost model as ``challenger``
    and promote it to ``champion`` when :func:`decide_promotion` says so. ``version_tags`` are added to the
    new version's tags (e.g. ``input_fingerprint``, which the next training compares its inputs with)."""
    from sklearn.metrics import roc_auc_score

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    test, y_test = _test_rows(result)
    champion = load_intent_champion(tracking_uri, registered_model)
    champion_auc = None
    if champion is not None:
        champion_auc = float(roc_auc_score(y_test, predict_proba(champion.model, test, champion.features)))
    decision = decide_promotion(
        challenger_auc=float(result.test_metrics["xgboost"]["roc_auc"]),
        rfm_auc=float(result.test_metrics["rfm_logistic"]["roc_auc"]),
        champion_auc=champion_auc,
        champion_version=None if champion is None else champion.version,
        tolerance=tolerance,
    )
    split = result.split.describe()
    baselines = [model for model in result.test_metrics if model != MODEL]
    prefixes = {model: baseline_metric_prefix(model) for model in baselines}
    if len(set(prefixes.values())) < len(prefixes):  # two baselines sharing a first word: full names
        prefixes = {model: model for model in baselines}
    with using_store(tracking_uri) as mlflow:
        from mlflow.entities import Metric, Param

        client = _client(tracking_uri)
        experiment_id = experiment_id_for(client, experiment, tracking_uri, table_metrics(prefixes.values()))
        tags = {"pulse.model": "purchase_intent", **decision_run_tags(decision.promote, decision.reason)}
        name = run_name or intent_run_name(split)
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
            run_id = run.info.run_id
            params: dict[str, Any] = {**result.config.params(), **{f"split_{k}": v for k, v in split.items()}}
            params.update({f"rows_{part}": n for part, n in result.rows.items()})
            params.update({f"positives_{part}": n for part, n in result.positives.items()})
            params["features"] = ",".join(result.features)
            params["best_iteration"] = result.best_iteration
            params["previous_champion_version"] = decision.champion_version
            now = now_ms()
            metrics = [Metric(f"test_{k}", float(v), now, 0) for k, v in result.test_metrics[MODEL].items()]
            metrics += [Metric(f"validation_{k}", float(v), now, 0) for k, v in result.validation_metrics.items()]
            for model, prefix in prefixes.items():
                metrics += [
                    Metric(f"{prefix}_test_{k}", float(v), now, 0)
                    for k, v in result.test_metrics[model].items()
                    if k in METRIC_NAMES
                ]
            if champion_auc is not None:
                metrics.append(Metric("champion_test_roc_auc", champion_auc, now, 0))
            metrics.append(Metric("fit_seconds", float(result.fit_seconds), now, 0))
            client.log_batch(
                run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items() if v is not None]
            )
            dates = split_test_dates(split)
            for model, values in result.test_metrics.items():
                with mlflow.start_run(
                    experiment_id=experiment_id,
                    run_name=f"{model} test {dates}" if dates else model,
                    nested=True,
                    tags={"pulse.model": "purchase_intent", "pulse.compared_model": model},
                ) as child:
                    client.log_batch(
                        child.info.run_id,
                        metrics=[Metric(f"test_{k}", float(v), now, 0) for k, v in values.items()],
                        params=[Param("model", model), *(Param(f"split_{k}", str(v)) for k, v in split.items())],
                    )
            with tempfile.TemporaryDirectory(prefix="pulse-intent-") as tmp:
                out = Path(tmp)
                write_intent_plots(result, out)
                importance = pd.DataFrame(
                    {
                        "feature": list(result.features),
                        "gain": [result.feature_gain.get(f, 0.0) for f in result.features],
                        "mean_abs_shap": [result.shap_mean_abs.get(f, 0.0) for f in result.features],
                    }
                ).sort_values("mean_abs_shap", ascending=False)
                importance.to_csv(out / "feature_importance.csv", index=False)
                (out / "split.json").write_text(json.dumps(split, indent=2))
                client.log_artifacts(run_id, str(out))
            x_test = test[list(result.features)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.xgboost.log_model(
                    result.model,
                    name=MODEL_NAME,
                    signature=_signature(result.model, x_test),
                    input_example=x_test.head(5),
                    registered_model_name=registered_model,
                )
        version = str(info.registered_model_version)
        if run_name is None:  # the version is part of the name: known only now
            client.update_run(run_id, name=intent_run_name(split, version))
        champion_after = register_version(
            client,
            registered_model,
            version,
            run_id=run_id,
            promote=decision.promote,
            reason=decision.reason,
            tags={
                "features": json.dumps(list(result.features)),
                "test_roc_auc": f"{decision.challenger_auc:.4f}",
                "rfm_test_roc_auc": f"{decision.rfm_auc:.4f}",
                "recency_test_roc_auc": f"{result.test_metrics['recency_heuristic']['roc_auc']:.4f}",
                "champion_test_roc_auc": "" if champion_auc is None else f"{champion_auc:.4f}",
                "compared_with_champion": "" if champion is None else champion.version,
                "test_dates": split.get("test_from", "") + ".." + split.get("test_to", ""),
                **(version_tags or {}),
            },
        )
    return IntentRegistration(
        run_id=run_id,
        experiment_id=experiment_id,
        model_version=version,
        model_uri=f"models:/{registered_model}/{version}",
        decision=decision,
        champion_version=champion_after,
        url=ui_run_url(ui_url, experiment_id, run_id),
    )
