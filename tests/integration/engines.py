"""Comparing what the same dbt project built on DuckDB and on Spark (tests/integration/test_engines_equal.py).

Spark's tables are read from their Parquet files in the Spark warehouse folder (``<warehouse>/<schema>.db/
<table>/``) with DuckDB, so the comparison needs no Spark session. Column types may differ between engines
(bigint vs int, double vs decimal, TIMESTAMP vs TIMESTAMP WITH TIME ZONE): values are compared, not types.
Timestamps are normalized to UTC; floating-point and decimal columns are compared within a relative
tolerance (the engines sum doubles in different orders); every other column must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9  # for values that should be 0
_FLOATING = ("DOUBLE", "FLOAT", "REAL", "DECIMAL")


@dataclass(frozen=True)
class Difference:
    table: str
    duckdb_rows: int
    spark_rows: int
    mismatched_rows: int
    detail: str

    @property
    def equal(self) -> bool:
        return self.duckdb_rows == self.spark_rows and self.mismatched_rows == 0


def duckdb_tables(warehouse: Path, schema: str = "main") -> list[str]:
    """The tables (not views) dbt built in ``schema`` of the DuckDB ``warehouse``."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_name from information_schema.tables"
            " where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
            [schema],
        ).fetchall()
    finally:
        con.close()
    return [name for (name,) in rows]


def _normalized(con: duckdb.DuckDBPyConnection, relation: str, floating: set[str]) -> pd.DataFrame:
    kinds = dict(con.execute(f"select column_name, column_type from (describe select * from {relation})").fetchall())
    columns = []
    for name, kind in kinds.items():
        if name in floating:
            columns.append(f"cast({name} as double) as {name}")
        elif kind.startswith("TIMESTAMP"):
            # both engines' instants, as UTC wall-clock text (the connection's zone is UTC)
            columns.append(f"cast(cast({name} as timestamp) as varchar) as {name}")
        else:
            columns.append(f"cast({name} as varchar) as {name}")
    return con.execute(f"select {', '.join(columns)} from {relation}").df()


def compare_table(duckdb_warehouse: Path, spark_warehouse: Path, table: str, spark_schema: str = "pulse") -> Difference:
    """Row-by-row comparison of ``table`` as DuckDB (schema main) and Spark (``spark_schema``) built it."""
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"attach '{duckdb_warehouse}' as d (read_only)")
        spark_files = spark_warehouse / f"{spark_schema}.db" / table
        spark = f"read_parquet('{spark_files}/*.parquet')" if any(spark_files.glob("*.parquet")) else None
        duck = f"d.main.{table}"
        kinds = dict(con.execute(f"select column_name, column_type from (describe select * from {duck})").fetchall())
        if spark is None:  # Spark writes no file for an empty table
            spark_kinds: dict[str, str] = {}
        else:
            spark_kinds = dict(
                con.execute(f"select column_name, column_type from (describe select * from {spark})").fetchall()
            )
        if spark is not None and list(spark_kinds) != list(kinds):
            return Difference(table, -1, -1, -1, f"columns differ: {list(kinds)} vs {list(spark_kinds)}")
        floating = {
            name
            for name, kind in kinds.items()
            if kind.startswith(_FLOATING) or spark_kinds.get(name, "").startswith(_FLOATING)
        }
        left = _normalized(con, duck, floating)
        right = left.iloc[0:0] if spark is None else _normalized(con, spark, floating)
    finally:
        con.close()
    if len(left) != len(right):
        return Difference(table, len(left), len(right), abs(len(left) - len(right)), "row counts differ")
    exact = [c for c in left.columns if c not in floating]
    order = exact + sorted(floating)
    left = left.sort_values(order, na_position="last", kind="mergesort").reset_index(drop=True)
    right = right.sort_values(order, na_position="last", kind="mergesort").reset_index(drop=True)
    bad = np.zeros(len(left), dtype=bool)
    details = []
    for column in left.columns:
        a, b = left[column], right[column]
        if column in floating:
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = np.isclose(x, y, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE, equal_nan=True)
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        if not same.all():
            first = int(np.argmin(same))
            details.append(f"{column}: {(~same).sum()} rows, e.g. duckdb={a.iloc[first]!r} spark={b.iloc[first]!r}")
        bad |= ~same
    return Difference(table, len(left), len(right), int(bad.sum()), "; ".join(details))


# ------------------------------------------------------------------------- the Python steps on each engine


@dataclass(frozen=True)
class FittedModels:
    """Models fitted once (on DuckDB's tables), then applied through each engine: the fit is a pure function of
    the frames, whose equality across engines is checked separately (:func:`run_python_steps` returns them)."""

    segments: object  # ml.segmentation.SegmentModel
    intent: object  # ml.intent_tracking.IntentChampion


SEGMENTS_TRAINED_AT = datetime(2026, 9, 24, 1, 0, 5)  # the models' registration times, as MLflow would give them
INTENT_TRAINED_AT = datetime(2026, 9, 22, 2, 0, 3)


def fit_models(warehouse: Path) -> FittedModels:
    """K-Means segments and an XGBoost intent model from the DuckDB warehouse's feature tables. The demo is too
    small for the production gate (100 positives per part), so the intent model trains with a gate of 1."""
    from ml.intent_tracking import IntentChampion
    from ml.purchase_intent import FEATURES, IntentConfig, train_purchase_intent
    from ml.segmentation import SegmentationConfig, fit_segments
    from ml.user_intent import read_training_set, with_table_horizon
    from ml.user_segments import read_features

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        features, training = read_features(con), read_training_set(con)
    finally:
        con.close()
    segments = fit_segments(features, SegmentationConfig(seed=0)).model
    config = with_table_horizon(training, IntentConfig(min_positives=1, min_negatives=1, n_estimators=50, nthread=1))
    intent = train_purchase_intent(training, config).model
    champion = IntentChampion(model=intent, version="1", features=FEATURES, trained_at=INTENT_TRAINED_AT)
    return FittedModels(segments=segments, intent=champion)


# relation -> is a view: the relations whose figures (pulse.core.relations) are compared between the engines
FIGURED_RELATIONS = {"fct_sessions": False, "dim_users": False, "stg_events": True, "not_built": False}


def run_python_steps(engine: str, home: str, models: FittedModels, now: datetime) -> dict:
    """What the Dagster assets after dbt do, through ``engine``'s warehouse (pulse.core.warehouse): segments, intent
    scores, profiles, the published exports. Returns the frames the models would train on (as read through
    the engine) and the published snapshot's folder. Run it in a fresh process for Spark (the JVM goes with it)."""
    from expectations.runner import run_suites, suite_specs
    from ml.decisions import ModelDecision, record_decision
    from ml.user_intent import read_training_set, score_users
    from ml.user_segments import assign_segments, read_features
    from pulse.activation.publish import publish_from_warehouse
    from pulse.core.relations import relation_figures
    from pulse.core.settings import paths_from_env
    from pulse.core.warehouse import open_warehouse
    from pulse.ingest.batches import batch_report

    paths = paths_from_env({"PULSE_HOME": home, "PULSE_ENGINE": engine})
    # Three sessions one after the other, as Dagster's in-process run opens them (Spark: the metastore's
    # driver is registered again for each).
    with open_warehouse(paths) as warehouse:
        no_champion = score_users(warehouse, None, now=now)  # before any model: an empty table
        [[empty_rows]] = warehouse.rows("select count(*) from purchase_intent_scores")
        batch = batch_report(warehouse)
    with open_warehouse(paths) as warehouse:
        read = {"features": read_features(warehouse), "training": read_training_set(warehouse)}
        # past the cap, a sample of whole users (each engine hashes user keys its own way)
        read["sampled"] = read_training_set(warehouse, max_rows=len(read["training"]) // 2)
        read["digest"] = warehouse.table_digest("user_features")  # by the engine itself
        assign_segments(warehouse, models.segments, "1", batch_rows=64, trained_at=SEGMENTS_TRAINED_AT)
        scores = score_users(warehouse, models.intent, now=now, batch_rows=64)
        # the latest training refused: the champion's scores are carried, and the profiles say so (the reason's
        # dates and times are formatted by each engine's SQL)
        for model, status, reason in (
            ("segment_model", "unchanged", "inputs unchanged since version 1: kept"),
            ("purchase_intent_model", "refused", "not enough labelled data: train has 3 positives (needs >= 100)"),
        ):
            record_decision(warehouse, ModelDecision(model, status, reason, None, "1", "fingerprint", now))
    # the dbt models after the ML steps (profiles, model status, audiences), once the session has let go of the
    # metastore, then publishing copies them
    run_activation_models(engine, Path(home), now)
    with open_warehouse(paths) as warehouse:
        published = publish_from_warehouse(warehouse, paths.exports, now=now)
    with open_warehouse(paths, read_only=True) as warehouse:  # the quality gates on the models
        names = [spec.name for spec in suite_specs() if spec.asset != "raw_events"]
        suites = {r.suite: (r.passed, r.metrics) for r in run_suites(warehouse, names, home=Path(home), docs=False)}
        # what the dbt assets show after a run (row counts, columns), as read through the engine
        figures = relation_figures(warehouse, FIGURED_RELATIONS)
    return {
        "figures": figures,
        **read,
        "scored": scores.rows,
        "snapshot": str(published.path),
        "no_champion": (no_champion.rows, no_champion.model_version, empty_rows),
        "batch": batch,
        "suites": suites,
    }


def run_activation_models(engine: str, home: Path, now: datetime) -> None:
    """``dbt run`` of the models tagged after_ml on ``engine``'s warehouse under ``home``, stamped ``now``."""
    import json
    import os
    import subprocess
    import sys

    from demo_warehouse import DBT_PROJECT

    env = {
        **os.environ,
        "PULSE_ENGINE": engine,
        "PULSE_HOME": str(home),
        "PULSE_WAREHOUSE": str(home / "warehouse.duckdb"),
        "TZ": "UTC",
    }
    env.pop("PULSE_DBT_TARGET", None)
    stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "tag:after_ml"]
        + ["--vars", json.dumps({"profiles_updated_at": stamp})]
        + ["--target-path", str(home / f"target_{engine}"), "--log-path", str(home / "logs")],
        cwd=DBT_PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"dbt run after_ml on {engine}:\n" + proc.stdout[-4000:] + proc.stderr[-2000:]


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read through either engine, in common types: dates and timestamps as datetime64, numbers as
    float (Spark's int32 and DuckDB's int64 are the same counts), rows in key order."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out[column] = values.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(values) or values.map(lambda v: hasattr(v, "year")).any():
            out[column] = pd.to_datetime(values).astype("datetime64[us]")
    keys = [c for c in ("as_of_date", "user_key") if c in out.columns]
    return out.sort_values(keys).reset_index(drop=True)


def compare_published(duckdb_snapshot: Path, spark_snapshot: Path) -> list[str]:
    """The Parquet files of two published snapshots (profiles and every audience), row by row: the differences."""
    problems = []
    files = sorted(p.relative_to(duckdb_snapshot) for p in duckdb_snapshot.rglob("*.parquet"))
    if files != sorted(p.relative_to(spark_snapshot) for p in spark_snapshot.rglob("*.parquet")):
        return [f"different files: {files}"]
    for name in files:
        left = comparable(pd.read_parquet(duckdb_snapshot / name))
        right = comparable(pd.read_parquet(spark_snapshot / name))
        try:
            pd.testing.assert_frame_equal(
                left.astype({c: str for c in left.columns if left[c].dtype == object}),
                right.astype({c: str for c in right.columns if right[c].dtype == object}),
                check_dtype=False,
                rtol=RELATIVE_TOLERANCE,
            )
        except AssertionError as exc:
            problems.append(f"{name}: {exc}")
    return problems
