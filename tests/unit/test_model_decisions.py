"""A model step refits only when its inputs changed, and refuses cleanly (recording why) when the data cannot
support it: the table digest, the decisions table, and the segment and intent steps against a real MLflow
store (temporary SQLite) on a DuckDB warehouse of synthetic users."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.decisions import MODEL_DECISIONS_TABLE, ModelDecision, input_fingerprint, record_decision
from ml.intent_synthetic import synthetic_training_frame
from ml.segmentation import SegmentationConfig, SegmentationRefused, fit_segments
from ml.synthetic import synthetic_user_features
from pulse.core.warehouse import DuckDBWarehouse


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module (creating one costs seconds); the segment and intent tests use
    different registered models in it."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


# ------------------------------------------------------------------------------------------ the digest


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    con = duckdb.connect()
    con.execute(
        """create table t as select 'u' || cast(i as varchar) as user_key, i / 3.0 as x,
            case when i % 2 = 0 then null else i end as n, date '2026-01-01' + cast(i % 7 as int) as d
        from range(2000) r(i)"""
    )
    return DuckDBWarehouse(con)


def test_the_digest_depends_on_the_rows_not_their_order(warehouse: DuckDBWarehouse) -> None:
    digest = warehouse.table_digest("t")
    warehouse.execute("create table shuffled as select * from t order by random()")
    assert warehouse.table_digest("shuffled") == digest
    # a sum of doubles in another order differs in the last bits: not a change
    warehouse.execute("update t set x = x * (1 + 1e-15) where user_key = 'u5'")
    assert warehouse.table_digest("t") == digest


@pytest.mark.parametrize(
    "change",
    [
        "update t set x = x + 0.001 where user_key = 'u5'",  # a value
        "update t set n = null where user_key = 'u5'",  # a value becomes null
        "update t set d = d + 1 where user_key = 'u5'",  # a date
        "delete from t where user_key = 'u5'",  # a row gone
        "insert into t select * from t where user_key = 'u5'",  # a row twice
        "alter table t rename column n to m",  # the schema
    ],
)
def test_the_digest_changes_with_any_row_value_or_column(warehouse: DuckDBWarehouse, change: str) -> None:
    digest = warehouse.table_digest("t")
    warehouse.execute(change)
    assert warehouse.table_digest("t") != digest


def test_the_fingerprint_covers_the_parameters(warehouse: DuckDBWarehouse) -> None:
    digest = warehouse.table_digest("t")
    base = input_fingerprint(digest, {"k_max": 10, "seed": 0}, ("numpy",))
    assert base == input_fingerprint(digest, {"seed": 0, "k_max": 10}, ("numpy",))
    assert base != input_fingerprint(digest, {"k_max": 9, "seed": 0}, ("numpy",))
    assert base != input_fingerprint(digest + "x", {"k_max": 10, "seed": 0}, ("numpy",))


def test_decisions_are_appended_with_their_reason() -> None:
    con = duckdb.connect()
    record_decision(con, ModelDecision("segment_model", "trained", "fitted version 1", "1", "1", "f1"), run_id="r1")
    when = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    record_decision(con, ModelDecision("segment_model", "refused", "it's 3 users", None, "1", "f2", when))
    rows = con.execute(
        "select model, status, reason, model_version, champion_version, run_id, decided_at "
        f"from {MODEL_DECISIONS_TABLE} order by decided_at"
    ).fetchall()
    assert rows[1] == ("segment_model", "trained", "fitted version 1", "1", "1", "r1", rows[1][6])
    assert rows[0] == ("segment_model", "refused", "it's 3 users", None, "1", None, datetime(2026, 11, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="not one of"):
        ModelDecision("segment_model", "failed", "x")


# ------------------------------------------------------------------------------------------ segmentation


def test_three_users_are_refused_with_the_reason() -> None:
    df, _ = synthetic_user_features(3, seed=1)
    with pytest.raises(SegmentationRefused, match="3 users in user_features: segmentation needs at least 20"):
        fit_segments(df)


def test_users_who_all_look_alike_are_refused_not_a_crash() -> None:
    df, _ = synthetic_user_features(200, seed=1)
    row = df.iloc[[0]]
    same = pd.concat([row] * 200, ignore_index=True)
    same["user_key"] = [f"u{i}" for i in range(200)]
    with pytest.raises(SegmentationRefused, match="0 of the 4 segmentation features vary across them"):
        fit_segments(same)
    # two kinds of users only: k is capped at 2, no warning about duplicate centroids, both found
    two = same.copy()
    two.loc[100:, "page_views"] = two.loc[100:, "page_views"] * 5 + 10
    result = fit_segments(two, SegmentationConfig(k_max=10))
    assert result.chosen_k == 2 and sorted(result.assignments["segment_id"].value_counts()) == [100, 100]


def _segment_warehouse(users: int, seed: int) -> duckdb.DuckDBPyConnection:
    df, _ = synthetic_user_features(users, seed=seed)
    con = duckdb.connect()
    con.register("planted", df)
    con.execute("create table user_features as select * from planted")
    con.unregister("planted")
    return con


def test_the_segment_model_is_refitted_only_when_its_inputs_change(store: Path) -> None:
    from mlflow import MlflowClient

    from ml.tracking import REGISTERED_MODEL, tracking_uri
    from ml.user_segments import segment_inputs_fingerprint, update_segment_model, write_segment_assignments

    con = _segment_warehouse(600, seed=5)
    config = SegmentationConfig(k_max=4, silhouette_sample=300, n_init=1)

    first = update_segment_model(con, store, config=config)
    assert first.decision.status == "trained" and first.fitted is not None
    assert first.decision.model_version == first.decision.champion_version == "1"
    assert first.decision.reason.startswith("fitted version 1: k=") and "the first version" in first.decision.reason

    again = update_segment_model(con, store, config=config)
    assert (again.decision.status, again.decision.reason, again.fitted) == (
        "unchanged",
        "inputs unchanged since version 1: kept",
        None,
    )
    client = MlflowClient(tracking_uri=tracking_uri(store), registry_uri=tracking_uri(store))
    assert len(client.search_model_versions(f"name = '{REGISTERED_MODEL}'")) == 1  # nothing registered

    # another parameter is another input (what would be fitted differs): the fingerprint moves
    assert segment_inputs_fingerprint(DuckDBWarehouse(con), SegmentationConfig(k_max=3)) != (
        segment_inputs_fingerprint(DuckDBWarehouse(con), config)
    )
    con.execute(
        "update user_features set page_views = page_views + 1 "
        "where user_key = (select min(user_key) from user_features)"
    )
    changed = update_segment_model(con, store, config=config)
    assert changed.decision.status == "trained" and changed.decision.model_version == "2"
    assert "inputs changed since version 1" in changed.decision.reason
    assert len(client.search_model_versions(f"name = '{REGISTERED_MODEL}'")) == 2

    # three users left: refused, nothing registered, the champion (version 3) stays and still assigns
    con.execute(
        "delete from user_features where user_key not in (select user_key from user_features order by 1 limit 3)"
    )
    refused = update_segment_model(con, store, config=config)
    assert refused.decision.status == "refused" and refused.decision.champion_version == "2"
    assert refused.decision.reason == "3 users in user_features: segmentation needs at least 20"
    assert len(client.search_model_versions(f"name = '{REGISTERED_MODEL}'")) == 2
    written = write_segment_assignments(con, store)
    assert written.rows == 3 and written.model_version == "2"
    [(version, trained_at)] = con.execute(
        "select distinct model_version, model_trained_at from segment_assignments"
    ).fetchall()
    assert version == "2" and trained_at is not None


def test_without_a_champion_a_refusal_leaves_the_segments_empty(tmp_path: Path) -> None:
    from ml.user_segments import update_segment_model, write_segment_assignments

    con = _segment_warehouse(3, seed=2)
    update = update_segment_model(con, tmp_path / "mlflow.db")
    assert update.decision.status == "refused" and update.decision.champion_version is None
    written = write_segment_assignments(con, tmp_path / "mlflow.db")
    assert (written.rows, written.model_version) == (0, None)
    # both narrow tables emptied (user_segments and segment_profiles: dbt's, from them)
    assert con.execute("select count(*) from segment_assignments").fetchall() == [(0,)]
    assert con.execute("select count(*) from segment_names").fetchall() == [(0,)]
    assert not (tmp_path / "mlflow.db").exists()  # nothing fitted, nothing logged


# ------------------------------------------------------------------------------------------ purchase intent


def _intent_warehouse(users: int, seed: int) -> duckdb.DuckDBPyConnection:
    frame = synthetic_training_frame(users, 6, seed=seed)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("create table purchase_intent_training_set as select * from frame")
    con.unregister("frame")
    return con


def test_the_intent_model_is_retrained_only_when_its_inputs_change(store: Path) -> None:
    from ml.purchase_intent import IntentConfig
    from ml.user_intent import plan_intent_training, train_planned_intent

    con = _intent_warehouse(1500, seed=4)
    config = IntentConfig(min_positives=20, min_negatives=20, n_estimators=40, shap_sample=200, nthread=1)

    plan = plan_intent_training(con, store, config)
    assert plan.decision is None and plan.gate.passed and plan.frame is not None
    decision, trained = train_planned_intent(plan, store, config)
    assert decision.status == "trained" and decision.model_version == "1"
    assert decision.reason.startswith("trained version 1 (the first version); promoted")

    again = plan_intent_training(con, store, config)
    assert again.decision is not None and again.frame is None  # nothing read, nothing to train
    assert (again.decision.status, again.decision.reason) == ("unchanged", "inputs unchanged since version 1: kept")
    assert again.gate.passed and again.decision.champion_version == "1"

    assert plan_intent_training(con, store, config, tolerance=0.01).decision is None  # a parameter changed
    con.execute(
        "update purchase_intent_training_set set sessions_30d = sessions_30d + 1 "
        "where user_key = (select min(user_key) from purchase_intent_training_set)"
    )
    changed = plan_intent_training(con, store, config)
    assert changed.decision is None and changed.frame is not None and changed.latest_version == "1"
    decision, _ = train_planned_intent(changed, store, config)
    assert decision.status == "trained" and decision.model_version == "2"
    assert "inputs changed since version 1" in decision.reason

    # the default gate (100 positives per part) on the same data: refused, the champion stays
    refused = plan_intent_training(con, store, IntentConfig(min_positives=100_000))
    assert refused.decision is not None and refused.decision.status == "refused" and not refused.gate.passed
    assert "positives (needs >= 100000)" in refused.decision.reason
    assert refused.decision.champion_version == decision.champion_version  # whichever is champion stays


def test_scores_from_a_champion_say_which_version_and_when_it_was_trained(tmp_path: Path) -> None:
    from ml.intent_tracking import IntentChampion
    from ml.purchase_intent import FEATURES, IntentConfig, train_purchase_intent
    from ml.user_intent import score_users

    frame = synthetic_training_frame(600, 6, seed=2)
    model = train_purchase_intent(frame, IntentConfig(min_positives=5, min_negatives=5, n_estimators=10)).model
    latest = frame[frame["as_of_date"] == frame["as_of_date"].max()].drop(
        columns=["purchased_within_horizon", "label_window_end_date"]
    )
    con = duckdb.connect()
    con.register("latest", latest)
    con.execute("create table intent_scoring_population as select * from latest")  # dbt's, in the pipeline
    trained_at = datetime(2026, 10, 26, 2, 0, 1)
    written = score_users(con, IntentChampion(model, "4", FEATURES, trained_at))
    assert written.model_version == "4" and written.model_trained_at == "2026-10-26 02:00:01"
    assert con.execute("select distinct model_version, model_trained_at from purchase_intent_scores").fetchall() == [
        ("4", trained_at)
    ]
    assert np.isfinite(written.mean_probability)
