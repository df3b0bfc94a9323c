"""The move of the profiles, the model status and the audiences from Python (pulse/profiles.py and the audience
predicates of pulse/activation/publish.py), and of the segments' join with their names and user types and the intent
scores' ranking (ml/user_segments.py, ml/user_intent.py), to dbt (models/profiles, models/audiences) changed no
result: on a demo
warehouse with the same segment and intent models, the legacy builder (legacy_activation.py, the old code) and
the dbt models give the same tables row for row, the published snapshots hold the same files and manifest, and
``GET /users/{key}`` returns the same profile for every user.

The models are applied once (segments, intent scores, one refused training so that a status is ``carried``);
both builds read the same tables. The one difference allowed is what identifies a publication (snapshot id,
publication time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import ingest_demo, run_dbt
from engines import SEGMENTS_TRAINED_AT, compare_published, fit_models
from legacy_activation import AUDIENCES as AUDIENCE_RULES
from legacy_activation import build_legacy_activation

USERS, DAYS, SEED = 300, 42, 11
NOW = datetime(2026, 9, 22, 6, 0, 0, tzinfo=UTC)
UPDATED_AT = datetime(2026, 9, 22, 5, 30, 0)
AUDIENCES = ("cart_abandoners", "high_intent", "loyal_buyers", "win_back")
# daily feature snapshots and a 2-day purchase horizon: six weeks: enough to train the intent model
DBT_VARS = {"feature_snapshot_interval_days": 1, "purchase_horizon_days": 2}
TABLES = (
    "user_segments",
    "user_intent_scores",
    "segment_profiles",
    "model_status",
    "user_profiles",
    "consented_profiles",
    *(f"audience_{a}" for a in AUDIENCES),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ml.decisions import ModelDecision, record_decision
    from ml.user_intent import score_users
    from ml.user_segments import assign_segments

    home = tmp_path_factory.mktemp("activation")
    _, warehouse = ingest_demo(home, USERS, DAYS, SEED)
    run_dbt(home, warehouse, "run", "--exclude", "tag:after_ml", "--vars", json.dumps(DBT_VARS))
    models = fit_models(warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        assign_segments(con, models.segments, "1", trained_at=SEGMENTS_TRAINED_AT)
        score_users(con, models.intent, now=NOW)
        for model, status, reason in (
            ("segment_model", "trained", "fitted version 1"),
            ("purchase_intent_model", "refused", "not enough labelled data: train has 3 positives (needs >= 100)"),
        ):
            record_decision(con, ModelDecision(model, status, reason, None, "1", "fingerprint", NOW))
        build_legacy_activation(con, "legacy", UPDATED_AT)
    finally:
        con.close()
    stamp = UPDATED_AT.isoformat(sep=" ")
    dbt_vars = json.dumps({**DBT_VARS, "profiles_updated_at": stamp})
    run_dbt(home, warehouse, "run", "--select", "tag:after_ml", "--vars", dbt_vars)
    return {"home": home, "warehouse": warehouse}


def _only_in(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    """Rows of ``left`` not in ``right``; doubles to 9 decimals (DuckDB sums them in whatever order its threads
    meet them: the last bits of a mean may differ between two builds of the same rows)."""
    described = con.execute(f"describe {left}").fetchall()
    columns = ", ".join(f'round("{c}", 9)' if kind == "DOUBLE" else f'"{c}"' for c, kind, *_ in described)
    sql = f"select count(*) from (select {columns} from {left} except all select {columns} from {right})"
    [[rows]] = con.execute(sql).fetchall()
    return rows


@pytest.mark.parametrize("table", TABLES)
def test_dbt_builds_what_python_built(built: dict, table: str) -> None:
    con = duckdb.connect(str(built["warehouse"]), read_only=True)
    try:
        columns = [r[0] for r in con.execute(f"describe main.{table}").fetchall()]
        assert columns == [r[0] for r in con.execute(f"describe legacy.{table}").fetchall()]
        [[rows]] = con.execute(f"select count(*) from main.{table}").fetchall()
        assert rows > 0, f"{table} is empty: the comparison would prove nothing"
        only_dbt = _only_in(con, f"main.{table}", f"legacy.{table}")
        only_legacy = _only_in(con, f"legacy.{table}", f"main.{table}")
        assert (only_dbt, only_legacy) == (0, 0)
    finally:
        con.close()


def _legacy_copy(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding the legacy tables under the names publishing copies (the audiences'
    names and descriptions are dbt's, the same as the legacy code's constants; the rules' text is the legacy's)."""
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as w (read_only)")
    for table in (*TABLES, "user_profiles"):
        con.execute(f"create or replace table main.{table} as select * from w.legacy.{table}")
    for table in ("audience_definitions", "consent_coverage"):
        con.execute(f"create table main.{table} as select * from w.main.{table}")
    for name, rule, _, _ in AUDIENCE_RULES:  # the rules' text as the legacy code held it
        con.execute("update main.audience_definitions set audience_rule = ? where audience = ?", [rule, name])
    return con


def test_the_published_snapshot_and_the_read_api_are_unchanged(built: dict, tmp_path: Path) -> None:
    from pulse.activation.publish import publish_snapshot
    from pulse.activation.serve import load_snapshot

    con = duckdb.connect(str(built["warehouse"]), read_only=True)
    try:
        new = publish_snapshot(con, tmp_path / "dbt", now=NOW)
    finally:
        con.close()
    legacy_con = _legacy_copy(built["warehouse"])
    try:
        old = publish_snapshot(legacy_con, tmp_path / "legacy", now=NOW)
    finally:
        legacy_con.close()
    assert compare_published(old.path, new.path) == []
    # the manifest: the same but for what identifies a publication, and the rules' text of the two audiences
    # that test a list: DuckDB's list_contains before, array_contains now (DuckDB's alias of it, which Spark
    # spells the same: one rule text whatever the engine)
    identity = ("snapshot_id", "published_at")
    renamed = {"cart_abandoners", "high_intent"}
    for name, audience in old.manifest["audiences"].items():
        if name in renamed:
            assert "list_contains(" in audience["rule"]
            audience["rule"] = audience["rule"].replace("list_contains(", "array_contains(")
    assert {k: v for k, v in new.manifest.items() if k not in identity} == {
        k: v for k, v in old.manifest.items() if k not in identity
    }
    assert new.manifest["model_status"]["purchase_intent"]["status"] == "carried"
    assert all(a["rows"] > 0 for a in new.manifest["audiences"].values()), new.manifest["audiences"]
    # GET /users/{key}: the row the read API returns for a key, from each snapshot
    served = {
        name: load_snapshot(root, snapshot.snapshot_id, f"snapshots/{snapshot.snapshot_id}")
        for name, snapshot, root in (("dbt", new, tmp_path / "dbt"), ("legacy", old, tmp_path / "legacy"))
    }
    assert served["dbt"].index.keys() == served["legacy"].index.keys() and len(served["dbt"].index) > 0
    for key, row in served["legacy"].index.items():
        assert served["dbt"].profiles.row(served["dbt"].index[key]) == served["legacy"].profiles.row(row), key
