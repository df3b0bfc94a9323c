"""The purchase-intent model on the demo shop: point-in-time snapshots that nothing later can change, XGBoost
against its baselines on a later period, and the champion / challenger rule in a real MLflow registry.

A fresh demo (3 000 users x 45 days) in a temporary folder, ingested with ``pulse.ingest.raw_events.ingest_day`` and
built with ``dbt run --select +purchase_intent_training_set`` (the last tests run the Dagster assets on copies of it).
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from demo_warehouse import ingest_days, ingest_demo, read_frame, run_dbt

from ml.intent_tracking import REGISTERED_MODEL, log_intent_training
from ml.purchase_intent import IntentConfig, IntentTrainingResult, train_purchase_intent
from ml.tracking import tracking_uri
from ml.user_intent import PURCHASE_INTENT_SCORES_COLUMNS
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 3000, 45, 7
PRE_PLANTED_USERS = 60  # users given a page view 10 minutes before the leakage snapshot (in both warehouses)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _event(event_id: str, event_type: str, t: datetime, who: pd.Series, **fields: object) -> dict:
    e: dict[str, object] = {"event_id": event_id, "event_type": event_type, "event_time": _iso(t)}
    for column, field in (
        ("user_id", "user_id"),
        ("anonymous_id", "anonymous_id"),
        ("client_session_id", "session_id"),
    ):
        if pd.notna(who[column]):
            e[field] = who[column]
    e.update(fields)
    return e


def _write_day(landing_events: Path, day: date, name: str, events: list[dict]) -> None:
    folder = landing_events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in events).encode()))


@dataclass(frozen=True)
class Demo:
    home: Path
    landing_events: Path
    warehouse: Path
    leakage_t: date  # the snapshot the leakage test plants events after
    pre_planted: list[str]  # user_keys with a page view at t - 10 min


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("intent_on_demo")
    landing, warehouse = ingest_demo(home, USERS, DAYS, SEED)
    events_dir = landing / "events"
    days = landed_days(events_dir)
    # Snapshot t: two weeks before the latest snapshot, so its label window and the next one are complete.
    latest = days[-1] + timedelta(days=1)
    t = latest - timedelta(days=14)
    midnight = datetime(t.year, t.month, t.day)
    # Users seen before t get a page view 10 minutes before it: their session is still open at t, the case
    # where a later event could join it.
    who = read_frame(
        warehouse,
        # logged-in users (their user_key is their user_id, stitched or not)
        f"""select user_id as user_key, user_id, anonymous_id, session_id as client_session_id
        from raw.events where event_time < timestamp '{midnight}' and user_id is not null
        qualify row_number() over (partition by user_id order by event_time desc) = 1
        order by user_key limit {PRE_PLANTED_USERS}""",
    )
    pre = [
        _event(f"pre-{i}", "page_view", midnight - timedelta(minutes=10), row, page_view_id=f"pre-pv-{i}")
        for i, (_, row) in enumerate(who.iterrows())
    ]
    day_before = t - timedelta(days=1)
    _write_day(events_dir, day_before, "pre_planted.jsonl.gz", pre)
    ingest_days(warehouse, events_dir, [day_before])
    run_dbt(
        home,
        warehouse,
        "run",
        "--select",
        "+purchase_intent_training_set",
        "user_features",
        "intent_scoring_population",
    )
    return Demo(home, events_dir, warehouse, t, list(who["user_key"]))


@pytest.fixture(scope="module")
def trained(demo: Demo) -> IntentTrainingResult:
    frame = read_frame(demo.warehouse, "select * from purchase_intent_training_set order by as_of_date, user_key")
    return train_purchase_intent(frame, IntentConfig())


def test_snapshots_are_weekly_and_only_complete_windows_are_labelled(demo: Demo) -> None:
    snapshots = read_frame(demo.warehouse, "select distinct as_of_date from user_feature_snapshots order by 1")
    dates = [pd.Timestamp(d).date() for d in snapshots["as_of_date"]]
    assert len(dates) >= 5
    assert {(b - a).days for a, b in zip(dates, dates[1:], strict=False)} == {7}
    labelled = read_frame(demo.warehouse, "select distinct as_of_date from purchase_intent_training_set order by 1")
    assert [pd.Timestamp(d).date() for d in labelled["as_of_date"]] == dates[:-1]  # the latest has no label yet


def test_xgboost_beats_the_rfm_logistic_and_the_recency_heuristic_on_a_later_period(
    trained: IntentTrainingResult,
) -> None:
    m = trained.test_metrics
    xgb, rfm, recency = m["xgboost"]["roc_auc"], m["rfm_logistic"]["roc_auc"], m["recency_heuristic"]["roc_auc"]
    assert xgb >= rfm + 0.02, (xgb, rfm)
    assert xgb > recency, (xgb, recency)
    assert m["xgboost"]["n"] == m["rfm_logistic"]["n"] == m["recency_heuristic"]["n"] == trained.rows["test"]
    split = trained.split
    assert max(split.train_dates) < min(split.validation_dates) < min(split.test_dates)


def test_the_champion_is_replaced_only_by_a_model_at_least_as_good(demo: Demo, trained: IntentTrainingResult) -> None:
    from mlflow import MlflowClient

    uri = tracking_uri(demo.home / "mlflow.db")
    first = log_intent_training(trained, uri)
    assert first.decision.promote and first.champion_version == first.model_version
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # the three models side by side: one child run each, same metric names, same test rows
    runs = client.search_runs(
        [first.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'", max_results=10
    )
    test_date = trained.split.describe()["test_from"]
    assert sorted(r.info.run_name for r in runs) == [
        f"{model} test {test_date}" for model in ("recency_heuristic", "rfm_logistic", "xgboost")
    ]
    parent = client.get_run(first.run_id)
    assert parent.info.run_name == f"purchase_intent v{first.model_version} test {test_date}"
    # the baselines' test metrics beside the model's on the parent run: one row per training in the runs table
    assert parent.data.metrics["rfm_test_roc_auc"] == pytest.approx(trained.test_metrics["rfm_logistic"]["roc_auc"])
    assert {"test_roc_auc", "recency_test_roc_auc", "rfm_test_pr_auc"} <= set(parent.data.metrics)
    assert all({"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier"} <= set(r.data.metrics) for r in runs)
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"roc_curve.png", "calibration_curve.png", "feature_importance_gain.png", "shap_summary.png"} <= artifacts

    # A second training on unchanged data: the same model, as good as the champion, which it was scored
    # against on the same test rows.
    frame = read_frame(demo.warehouse, "select * from purchase_intent_training_set order by as_of_date, user_key")
    again = log_intent_training(train_purchase_intent(frame, IntentConfig()), uri)
    assert again.decision.champion_auc == pytest.approx(again.decision.challenger_auc, abs=1e-9)
    assert again.decision.promote and again.champion_version == again.model_version

    # The champion comparison itself, on the same test rows: the same model again, under a policy that asks for
    # an improvement of 0.001 (a negative tolerance), beats RFM but not the champion: it stays challenger.
    strict = log_intent_training(train_purchase_intent(frame, IntentConfig()), uri, tolerance=-0.001)
    assert not strict.decision.promote and "the champion stays" in strict.decision.reason
    assert strict.decision.challenger_auc > strict.decision.rfm_auc
    assert strict.champion_version == again.model_version

    # A worse challenger (a few shallow trees) is registered as challenger but does not replace the champion.
    weak = train_purchase_intent(frame, IntentConfig(max_depth=1, n_estimators=2, early_stopping_rounds=1))
    assert weak.test_metrics["xgboost"]["roc_auc"] < again.decision.challenger_auc - 0.005
    worse = log_intent_training(weak, uri)
    assert not worse.decision.promote
    assert "does not beat the RFM baseline" in worse.decision.reason or "the champion stays" in worse.decision.reason
    assert worse.champion_version == again.model_version
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == again.model_version
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, "challenger").version) == worse.model_version
    tags = client.get_model_version(REGISTERED_MODEL, worse.model_version).tags
    assert tags["decision"] == "not_promoted" and tags["decision_reason"] == worse.decision.reason


def test_events_after_a_snapshot_change_none_of_its_features(demo: Demo, tmp_path: Path) -> None:
    t = demo.leakage_t
    midnight = datetime(t.year, t.month, t.day)
    copy = tmp_path / "planted.duckdb"
    shutil.copy(demo.warehouse, copy)
    users = read_frame(
        demo.warehouse,
        f"""select user_key, user_id, anonymous_id, client_session_id from stg_events
        where event_time < timestamp '{midnight}'
        qualify row_number() over (partition by user_key order by event_time desc, event_id desc) = 1""",
    )
    # After t: a page view one minute after midnight in the user's last session (it joins the sessions still
    # open at t), a cart add and a large purchase, and another purchase two days later.
    planted: list[dict] = []
    for i, (_, who) in enumerate(users.iterrows()):
        planted += [
            _event(f"post-{i}-1", "page_view", midnight + timedelta(minutes=1), who, page_view_id=f"post-pv-{i}"),
            _event(f"post-{i}-2", "add_to_cart", midnight + timedelta(minutes=2), who, product_id="p1", price=10.0),
            _event(f"post-{i}-3", "purchase", midnight + timedelta(minutes=3), who, order_id=f"o-{i}", revenue=999.0),
            _event(f"post-{i}-4", "purchase", midnight + timedelta(days=2), who, order_id=f"o2-{i}", revenue=5.0),
        ]
    landing = tmp_path / "landing" / "events"
    for day in (t, t + timedelta(days=2)):
        shutil.copytree(demo.landing_events / day.isoformat(), landing / day.isoformat())
    _write_day(landing, t, "planted.jsonl.gz", [e for e in planted if e["event_time"] < _iso(midnight + timedelta(1))])
    _write_day(landing, t + timedelta(days=2), "planted.jsonl.gz", [e for e in planted if e["event_id"].endswith("-4")])
    ingest_days(copy, landing, [t, t + timedelta(days=2)])
    run_dbt(tmp_path, copy, "run", "--select", "+purchase_intent_training_set")

    def snapshot(warehouse: Path, where: str) -> pd.DataFrame:
        return read_frame(
            warehouse, f"select * from user_feature_snapshots where {where} order by as_of_date, user_key"
        )

    before, after = snapshot(demo.warehouse, f"as_of_date <= date '{t}'"), snapshot(copy, f"as_of_date <= date '{t}'")
    assert len(before) > 1000 and (pd.to_datetime(before["as_of_date"]).dt.date == t).sum() > 1000
    pd.testing.assert_frame_equal(before, after)

    # The planted events did land where a leak would show: sessions open at t now run past it, a rule like
    # "sessions that ended before t" would count different sessions, and the labels of snapshot t changed.
    crossing = f"session_start < timestamp '{midnight}' and session_end >= timestamp '{midnight}'"
    open_at_t = read_frame(copy, f"select user_key from fct_sessions where {crossing}")["user_key"]
    assert set(demo.pre_planted) <= set(open_at_t)
    naive = f"select user_key, count(*) as n from fct_sessions where session_end < timestamp '{midnight}' group by 1"
    naive_before, naive_after = read_frame(demo.warehouse, naive), read_frame(copy, naive)
    assert (
        not naive_before.sort_values("user_key")
        .reset_index(drop=True)
        .equals(naive_after.sort_values("user_key").reset_index(drop=True))
    )
    labels = (
        f"select count_if(purchased_within_horizon) as n from purchase_intent_training_set where as_of_date = '{t}'"
    )
    assert read_frame(copy, labels)["n"][0] > read_frame(demo.warehouse, labels)["n"][0]
    later = snapshot(copy, f"as_of_date > date '{t}'")
    assert not later.equals(snapshot(demo.warehouse, f"as_of_date > date '{t}'"))  # later snapshots do see them


# ------------------------------------------------------------------------------------------ Dagster assets


def _materialize_intent(home: Path) -> dg.ExecuteInProcessResult:
    from orchestration.ml.intent import purchase_intent_model, purchase_intent_scores
    from orchestration.resources import PulseSettings, PulseStorage

    storage = PulseStorage(home=str(home), warehouse=str(home / "warehouse.duckdb"))
    return dg.materialize(
        [purchase_intent_model, purchase_intent_scores],
        resources={"storage": storage, "settings": PulseSettings()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _ranked(probability: np.ndarray) -> pd.DataFrame:
    """Percentile (0-100, the share of scored users with a lower or equal probability, 2 decimals) and decile
    (1 = the top 10 %, 10 = the bottom, from the unrounded percentile) of each probability, in memory: the
    oracle of the dbt model user_intent_scores."""
    s = pd.Series(probability)
    percentile = s.rank(method="max", pct=True) * 100
    decile = np.minimum(10, np.floor((100 - percentile) / 10).astype(int) + 1)
    return pd.DataFrame({"probability": s, "percentile": percentile.round(2), "decile": decile.astype(int)})


def _check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def test_the_intent_assets_train_register_and_score_every_active_user(demo: Demo, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(demo.warehouse, home / "warehouse.duckdb")
    result = _materialize_intent(home)
    assert result.success
    [check] = _check_evaluations(result)
    assert check.check_name == "enough_labelled_data" and check.passed
    metadata = result.asset_materializations_for_node("purchase_intent_model")[0].metadata
    assert metadata["promoted"].value is True
    assert metadata["decision"].value.startswith("promoted: no champion yet")
    assert metadata["test_roc_auc"].value > metadata["rfm_test_roc_auc"].value

    # what Python wrote: one probability per active user, nothing ranked
    warehouse = home / "warehouse.duckdb"
    written = read_frame(warehouse, "select * from purchase_intent_scores")
    assert list(written.columns) == [name for name, _ in PURCHASE_INTENT_SCORES_COLUMNS]
    active = read_frame(warehouse, "select user_key from user_features where sessions_30d >= 1")
    assert sorted(written["user_key"]) == sorted(active["user_key"])
    assert set(written["model_version"]) == {"1"} and written["probability"].between(0, 1).all()
    # the ranking is the dbt model user_intent_scores: percentile and decile as an in-memory pass gives them
    run_dbt(home, warehouse, "run", "--select", "user_intent_scores")
    scores = read_frame(warehouse, "select * from user_intent_scores order by user_key")
    assert scores["user_key"].tolist() == sorted(written["user_key"])
    ranked = _ranked(written.sort_values("user_key")["probability"].to_numpy())
    assert (scores["probability"].to_numpy() == ranked["probability"].to_numpy()).all()
    assert scores["percentile"].tolist() == pytest.approx(ranked["percentile"].tolist())
    assert scores["decile"].tolist() == ranked["decile"].tolist()
    assert sorted(scores["decile"].unique()) == list(range(1, 11)) and scores["percentile"].max() == 100
    assert sorted(scores["decile"].unique()) == list(range(1, 11))
    by_decile = scores.groupby("decile")["probability"].agg(["min", "max", "size"])
    assert (by_decile["min"].iloc[:-1].to_numpy() >= by_decile["max"].iloc[1:].to_numpy()).all()  # 1 = the top
    assert by_decile["size"].max() <= 1.1 * len(scores) / 10 + 1
    assert scores["percentile"].between(0, 100).all() and scores["percentile"].max() == 100


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"PULSE_INTENT_MIN_POSITIVES": "100000"}, "positives (needs >= 100000)"),
        ({"empty": "yes"}, "no snapshot has a complete label window"),
    ],
)
def test_training_refuses_with_a_warning_when_the_data_cannot_support_it(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: dict, message: str
) -> None:
    """A refusal is local: the check warns (the UI shows it), the step succeeds and records the decision, nothing
    is trained or registered, and scoring still runs (nobody scored: no champion)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(demo.warehouse, home / "warehouse.duckdb")
    if "empty" in setting:
        con = duckdb.connect(str(home / "warehouse.duckdb"))
        con.execute("delete from purchase_intent_training_set")
        con.close()
    for var, value in setting.items():
        if var.startswith("PULSE_"):
            monkeypatch.setenv(var, value)
    result = _materialize_intent(home)
    assert result.success
    [check] = _check_evaluations(result)
    assert check.check_name == "enough_labelled_data" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert message in check.description
    [model] = result.asset_materializations_for_node("purchase_intent_model")
    assert model.metadata["model_status"].value == "refused" and message in model.metadata["model_status_reason"].value
    assert model.metadata["champion_version"].value == ""
    assert not (home / "mlflow.db").exists()  # nothing was trained or registered
    assert len(result.asset_materializations_for_node("purchase_intent_scores")) == 1  # scoring ran: nobody scored
    assert read_frame(home / "warehouse.duckdb", "select count(*) as n from purchase_intent_scores")["n"][0] == 0
    decisions = read_frame(home / "warehouse.duckdb", "select model, status, reason from model_decisions")
    assert decisions[["model", "status"]].values.tolist() == [["purchase_intent_model", "refused"]]
    assert message in decisions["reason"][0]
