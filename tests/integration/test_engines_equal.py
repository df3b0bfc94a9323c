"""The same dbt project on DuckDB and on Apache Spark gives the same tables, row for row (docs/spark.md).

The demo shop (150 users x 28 days: four weekly feature snapshots, three with complete label windows, the
least the intent model's temporal split takes; the default vars the unit tests assume) is ingested into DuckDB
(ingestion is DuckDB's), its raw tables are exported to Parquet (pulse.ingest.spark_raw) and dbt runs on each engine:

(a) a full build on DuckDB: every landing day, then ``dbt build`` (models, data tests, unit tests);
(b) incremental, on each engine: the first 14 landing days built (`dbt run`), then the
    other 14 ingested and built as one more batch with its data tests (``where: __batch__``: the batch's rows
    only; on Spark, replace_where writes the kept rows plus the new ones, then insert overwrite).

Then the Python steps that follow dbt in the pipeline (segments, purchase-intent scores, profiles, the published
exports; pulse.core.warehouse) run through each engine on (a) and on Spark's (b): segment assignment and scoring
in batches (DuckDB streams them, Spark maps them on its executors with the same functions), with one pair of
models fitted on DuckDB's tables (fitting is a pure function of the frames, and the frames each engine hands
the models are compared too).

Spark's tables after (b) must equal DuckDB's full build (a), and both engines' batches must agree, bookkeeping
included: integers, strings, dates and booleans exactly, timestamps as UTC instants, doubles within a relative
1e-9 (each engine sums in its own order). Spark's tables are read from its warehouse folder's Parquet files
with DuckDB. (A Spark full build is not run: Spark's incremental result equalling DuckDB's full build shows
both that the models agree and that the incremental strategy does, at half the cost; DuckDB's own full ==
incremental is tests/integration/test_incremental.py.)
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from demo_warehouse import DBT_PROJECT, demo_landing, ingest_days
from engines import (
    RELATIVE_TOLERANCE,
    comparable,
    compare_published,
    compare_table,
    duckdb_tables,
    fit_models,
    run_python_steps,
)

from pulse.ingest.spark_raw import export_raw_to_parquet, spark_raw_root

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 150, 28, 7
FIRST_BUILD_DAYS = 14
NOW = datetime(2026, 9, 25, 6, 0, tzinfo=UTC)  # scored_at / updated_at / published_at on both engines


def _dbt(engine: str, home: Path, *args: str) -> float:
    """``dbt <args>`` on ``engine`` for the warehouse under ``home``; the seconds it took."""
    env = {
        **os.environ,
        "PULSE_ENGINE": engine,
        "PULSE_HOME": str(home),
        "PULSE_WAREHOUSE": str(home / "warehouse.duckdb"),
        "TZ": "UTC",
    }
    env.pop("PULSE_DBT_TARGET", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args]
        + ["--target-path", str(home / f"target_{engine}"), "--log-path", str(home / "logs")],
        cwd=DBT_PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"dbt {args[0]} on {engine}:\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
    return time.perf_counter() - started


def _ingest_and_export(home: Path, events: Path, days: list) -> float:
    started = time.perf_counter()
    ingest_days(home / "warehouse.duckdb", events, days)
    # before DuckDB's dbt run: its commit prunes raw.events_retracted (pulse/ingest/spark_raw.py)
    export_raw_to_parquet(home / "warehouse.duckdb", spark_raw_root({"PULSE_HOME": str(home)}))
    return time.perf_counter() - started


def _require_spark() -> None:
    """Spark is part of the dev install (pyproject's dev extra) and Java of the machine: missing, they fail."""
    import importlib.util

    missing = [m for m in ("pyspark", "dbt.adapters.spark") if importlib.util.find_spec(m) is None]
    assert not missing, f"{missing} not installed: `make install` installs the dev extra, which includes Spark"
    assert shutil.which("java") is not None, "Spark needs a Java runtime (17 or newer) on PATH"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    _require_spark()
    root = tmp_path_factory.mktemp("engines")
    events, days = demo_landing(root, USERS, DAYS, SEED)
    timings: dict[str, float] = {}

    full = root / "full"
    full.mkdir()
    timings["full: ingest"] = _ingest_and_export(full, events, days)
    timings["full: dbt build duckdb"] = _dbt("duckdb", full, "build")

    incremental = root / "incremental"
    incremental.mkdir()
    timings["incremental: ingest + export (first days)"] = _ingest_and_export(
        incremental, events, days[:FIRST_BUILD_DAYS]
    )
    timings["incremental: dbt run duckdb (first days)"] = _dbt("duckdb", incremental, "run")
    # models only: dbt's unit tests check fixed rows through the same SQL (test_pipeline runs them on DuckDB;
    # they pass on Spark too, docs/spark.md, but cost ~15 s of the CI budget here); data tests run on the batch.
    timings["incremental: dbt run spark (first days)"] = _dbt("spark", incremental, "run")
    timings["incremental: ingest + export (batch)"] = _ingest_and_export(incremental, events, days[FIRST_BUILD_DAYS:])
    for engine in ("duckdb", "spark"):
        timings[f"incremental: dbt build {engine} (batch)"] = _dbt(
            engine, incremental, "build", "--exclude-resource-type", "unit_test"
        )

    started = time.perf_counter()
    models = fit_models(full / "warehouse.duckdb")
    python_steps = {"duckdb": run_python_steps("duckdb", str(full), models, NOW)}
    timings["python steps: fit (once) + duckdb"] = time.perf_counter() - started
    started = time.perf_counter()
    # Spark in a child process: its JVM (and the Derby metastore's lock) ends with it
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        python_steps["spark"] = child.submit(run_python_steps, "spark", str(incremental), models, NOW).result()
    timings["python steps: spark"] = time.perf_counter() - started

    print("\nengine timings (s):\n" + "\n".join(f"  {name:45s} {seconds:6.1f}" for name, seconds in timings.items()))
    return {"full": full, "incremental": incremental, "timings": timings, "python_steps": python_steps}


def _warehouses(home: Path) -> tuple[Path, Path]:
    return home / "warehouse.duckdb", home / "spark" / "warehouse"


def test_every_table_model_is_compared(builds: dict) -> None:
    tables = duckdb_tables(builds["full"] / "warehouse.duckdb")
    for expected in (
        *("fct_sessions", "fct_page_views", "fct_user_daily", "user_features", "fct_trigger_firings"),
        *("segment_assignments", "segment_names", "purchase_intent_scores"),  # the Python steps'
        *("user_segments", "segment_profiles", "user_intent_scores", "user_profiles"),  # dbt's after them
    ):
        assert expected in tables
    spark_tables = {p.name for p in (builds["incremental"] / "spark" / "warehouse" / "pulse.db").iterdir()}
    assert set(tables) <= spark_tables


def test_incremental_spark_equals_full_duckdb(builds: dict) -> None:
    """Spark's incremental batch (replace_where) ends where DuckDB's full build is, for every table but the
    batch bookkeeping (int_batch*, which describe the run, not the data)."""
    duckdb_full, _ = _warehouses(builds["full"])
    _, spark_incremental = _warehouses(builds["incremental"])
    bookkeeping = {"int_batch", "int_batch_users", "int_batch_bounds"}
    differences = [
        compare_table(duckdb_full, spark_incremental, t) for t in duckdb_tables(duckdb_full) if t not in bookkeeping
    ]
    report = "\n".join(
        f"{d.table}: duckdb {d.duckdb_rows} rows, spark {d.spark_rows}, {d.mismatched_rows} differ {d.detail}"
        for d in differences
        if not d.equal
    )
    assert not report, f"(doubles within {RELATIVE_TOLERANCE:g} relative)\n{report}"
    # the comparison is not vacuous: the main marts and the training set have rows
    rows = {d.table: d.duckdb_rows for d in differences}
    for table in ("fct_sessions", "fct_page_views", "user_features", "purchase_intent_training_set"):
        assert rows[table] > 0, table
    for table in ("segment_assignments", "segment_names", "purchase_intent_scores"):  # the Python steps'
        assert rows[table] > 0, table
    for table in ("user_segments", "user_intent_scores", "user_profiles", "fct_trigger_firings"):
        assert rows[table] > 0, table


def test_the_models_read_the_same_frames_through_both_engines(builds: dict) -> None:
    """What segmentation and intent training read through Spark (toPandas) is what they read from DuckDB."""
    steps = builds["python_steps"]
    for frame in ("features", "training"):
        duck, spark = comparable(steps["duckdb"][frame]), comparable(steps["spark"][frame])
        assert list(duck.columns) == list(spark.columns)
        assert len(duck) > 100
        pd.testing.assert_frame_equal(duck, spark, check_dtype=False, rtol=RELATIVE_TOLERANCE)
    assert steps["duckdb"]["scored"] == steps["spark"]["scored"] > 50
    for engine in ("duckdb", "spark"):
        training, sampled = steps[engine]["training"], steps[engine]["sampled"]
        users = set(sampled["user_key"])
        whole = training[training["user_key"].isin(users)]
        assert len(sampled) == len(whole), f"{engine}: a sampled user lost some snapshots"
        assert 0.25 < len(sampled) / len(training) < 0.75, f"{engine}: sampled {len(sampled)} of {len(training)}"


def test_the_quality_gates_and_the_batch_report_run_on_both_engines(builds: dict) -> None:
    """The GX model gates' metrics queries run on each engine and give the same figures; the scores table is
    emptied while no model is champion; the batch report reads the bookkeeping through the engine."""
    steps = builds["python_steps"]
    duck, spark = steps["duckdb"]["suites"], steps["spark"]["suites"]
    assert set(duck) == set(spark) and {"fct_sessions", "user_features", "fct_user_daily_drift"} <= set(duck)
    for suite, (passed, metrics) in duck.items():
        assert passed and spark[suite][0], suite
        left = pd.DataFrame(metrics)
        right = pd.DataFrame(spark[suite][1])
        assert len(left) > 0, suite
        pd.testing.assert_frame_equal(comparable(left), comparable(right), check_dtype=False, rtol=RELATIVE_TOLERANCE)
    for engine in ("duckdb", "spark"):
        assert steps[engine]["no_champion"] == (0, None, 0)
    report = steps["spark"]["batch"]
    assert report is not None and not report.is_full and report.batch_rows > 0 and report.users_recomputed > 0
    # the dbt assets' row counts and columns (pulse.core.relations): the same through both engines (types are the
    # engines' own names); views are not counted, a relation that was not built is left out
    duck, spark = steps["duckdb"]["figures"], steps["spark"]["figures"]
    assert set(duck) == set(spark) == {"fct_sessions", "dim_users", "stg_events"}
    for name in duck:
        assert duck[name].row_count == spark[name].row_count, name
        assert [c for c, _ in duck[name].columns] == [c for c, _ in spark[name].columns], name
        assert all(kind for _, kind in spark[name].columns), name
    assert duck["stg_events"].row_count is None and duck["fct_sessions"].row_count > 0


def test_published_exports_are_equal(builds: dict) -> None:
    """The profiles and audience files published from each engine's warehouse, row by row, the model status
    included (a refused training carrying the champion's scores, with reasons each engine's SQL formats)."""
    import json

    steps = builds["python_steps"]
    duck, spark = Path(steps["duckdb"]["snapshot"]), Path(steps["spark"]["snapshot"])
    assert not compare_published(duck, spark)
    profiles = pd.read_parquet(duck / "user_profiles.parquet")
    # consented users only, here all of them active (scored): carried; an inactive one would be not_scored
    statuses = set(profiles["intent_status"])
    assert len(profiles) > 0 and "carried" in statuses and statuses <= {"carried", "not_scored"}
    assert set(profiles["segment_status"]) == {"current"}
    status = json.loads((duck / "manifest.json").read_text())["model_status"]
    assert status == json.loads((spark / "manifest.json").read_text())["model_status"]
    assert status["purchase_intent"]["reason"] == (
        "training refused on 2026-09-25: not enough labelled data: train has 3 positives (needs >= 100); values "
        "carried from champion version 1, trained 2026-09-22 02:00:03 UTC"
    )
    assert status["segments"]["reason"] == (
        "from champion version 1, trained 2026-09-24 01:00:05 UTC; latest training: inputs unchanged since "
        "version 1: kept"
    )


def test_each_engine_digests_the_feature_table(builds: dict) -> None:
    """Warehouse.table_digest (the models' input fingerprint) runs on each engine: the columns, the row count,
    and aggregates of the engine's own row hashes (comparable within an engine only)."""
    steps = builds["python_steps"]
    for engine in ("duckdb", "spark"):
        columns, count, xor, total = steps[engine]["digest"].split("|")
        assert columns.split(",") == list(steps[engine]["features"].columns), engine
        assert int(count) == len(steps[engine]["features"]) > 100 and int(xor) != 0 and int(total) != 0, engine


def test_incremental_batches_are_equal(builds: dict) -> None:
    """The same incremental batch on both engines, bookkeeping included (which users, from which bound). The
    Python steps ran on Spark's incremental warehouse only (and on DuckDB's full one): the tables they write and
    the dbt models after them (tag after_ml) are compared in test_incremental_spark_equals_full_duckdb."""
    duckdb_warehouse, spark_warehouse = _warehouses(builds["incremental"])
    after_ml = {p.stem for folder in ("profiles", "audiences") for p in (DBT_PROJECT / "models" / folder).glob("*.sql")}
    # the ML steps' tables (dbt sources `ml`)
    after_ml |= {"segment_assignments", "segment_names", "purchase_intent_scores", "model_decisions"}
    differences = [
        compare_table(duckdb_warehouse, spark_warehouse, t)
        for t in duckdb_tables(duckdb_warehouse)
        if t not in after_ml
    ]
    assert all(d.equal for d in differences), [d for d in differences if not d.equal]
    rows = {d.table: d.duckdb_rows for d in differences}
    assert rows["int_batch_users"] > 0  # the batch recomputed some users
