"""Settings per home and per run, end to end: two PULSE_HOMEs materialize the same landing files from one install.

Home A: settings.toml keeps 8 feature snapshots (the history allows 9); `pulse materialize --var
purchase_horizon_days=14 --test-as-of D` (the CLI, in this process, job all_assets with the intent model).
Home B: settings.toml sets purchase_horizon_days = 10; one Dagster run of ingestion and the dbt step, no overrides.

Each home's dbt vars reach dbt (14- and 10-day label windows, 8 kept snapshots and a warning naming the dropped
date), dbt's artifacts and log land under each home, and the checkout's dbt_project/ is left byte for byte and
mtime for mtime as it was. --test-as-of picks the intent model's test snapshot (the latest labelled one on or
before D, logged in MLflow and Dagster) without moving features_as_of: the profiles and scores stay on the latest
snapshot.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from demo_warehouse import read_frame

from pulse.demo.generator import generate_demo

pytestmark = pytest.mark.integration

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
USERS, DAYS, SEED = 600, 64, 5
START = date(2026, 9, 1)
# the latest snapshot is the day after the last landing day: with this seed the last day's late sessions run past
# midnight into one more landing day (START + DAYS; the fixture checks it)
LATEST = START + timedelta(days=DAYS + 1)
TEST_AS_OF = LATEST - timedelta(days=15)  # between two snapshots: the test snapshot is LATEST - 21
# 9 weekly snapshot dates (LATEST - 56 .. LATEST), the cap keeps 8; with a 14-day horizon 6 kept ones are labelled
# (.. LATEST - 14): test LATEST - 21, LATEST - 28 unused (its label window reaches the test date), validation
# LATEST - 35, train the two before; LATEST - 14 comes after test_as_of and is not used


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root (target/ and logs/ included when they exist): size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def _environment(home: Path, **extra: str) -> Iterator[None]:
    """PULSE_HOME at ``home`` and nothing else of pulse's in the environment; restored afterwards."""
    saved = dict(os.environ)
    for var in list(os.environ):
        if var.startswith("PULSE_") or var == "DAGSTER_HOME":
            del os.environ[var]
    os.environ.update({"PULSE_HOME": str(home), **extra})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class Runs:
    a: Path
    b: Path
    a_exit: int
    a_out: str
    b_result: object
    checkout_before: dict[str, tuple[int, int]]
    checkout_after: dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.materialize import RANGE_END_TAG, RANGE_START_TAG, run_config
    from orchestration.transform.assets import pulse_dbt_models
    from pulse.cli import commands as cli
    from pulse.ingest.raw_events import landed_days

    root = tmp_path_factory.mktemp("settings_runs")
    landing = root / "shared_landing"
    generate_demo(landing, users=USERS, days=DAYS, seed=SEED, start=START, progress=False)
    assert max(p.name for p in (landing / "events").iterdir()) == str(LATEST - timedelta(days=1))
    a, b = root / "a", root / "b"
    for home, extra in ((a, "feature_snapshots_max = 8\n"), (b, "purchase_horizon_days = 10\n")):
        home.mkdir()
        (home / "settings.toml").write_text(f'landing = "{landing}"\n{extra}')
    before = _tree(DBT_PROJECT)

    out, err = io.StringIO(), io.StringIO()
    # the intent gate is a setting (PULSE_INTENT_MIN_*): a 600-user shop has fewer than 100 buyers a snapshot
    args = ["materialize", "--quiet", "--var", "purchase_horizon_days=14", "--test-as-of", str(TEST_AS_OF)]
    with (
        _environment(a, PULSE_INTENT_MIN_POSITIVES="5", PULSE_INTENT_MIN_NEGATIVES="5"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        a_exit = cli.main(args)

    # Home B: ingestion and the dbt step only, in one Dagster run over every landing day (no overrides)
    with _environment(b):
        days = landed_days(landing / "events")
        definitions = build_definitions()
        raw_events = next(a for a in definitions.assets if getattr(a, "key", None) == dg.AssetKey("raw_events"))
        b_result = dg.materialize(
            [raw_events, pulse_dbt_models],
            resources=definitions.resources,
            instance=dg.DagsterInstance.ephemeral(),
            tags={RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()},
            run_config=run_config(quiet=True),
            raise_on_error=False,
        )
    return Runs(a, b, a_exit, out.getvalue() + err.getvalue(), b_result, before, _tree(DBT_PROJECT))


def test_both_homes_ran(runs: Runs) -> None:
    assert runs.a_exit == 0, runs.a_out[-5000:]
    assert runs.b_result.success


def test_the_checkout_is_untouched_and_each_home_has_its_own_dbt_target_and_logs(runs: Runs) -> None:
    assert runs.checkout_after == runs.checkout_before
    for home in (runs.a, runs.b):
        assert (home / "dbt" / "target" / "run_results.json").exists(), home
        assert (home / "dbt" / "target" / "partial_parse.msgpack").exists(), home
        assert (home / "dbt" / "logs" / "dbt.log").stat().st_size > 0, home


def test_a_var_and_the_settings_file_reach_dbt(runs: Runs) -> None:
    windows = (
        "select distinct datediff('day', as_of_date, label_window_end_date) as days from purchase_intent_training_set"
    )
    assert list(read_frame(runs.a / "warehouse.duckdb", windows)["days"]) == [14]  # --var
    assert list(read_frame(runs.b / "warehouse.duckdb", windows)["days"]) == [10]  # settings.toml
    assert "materialize: this run's settings: purchase_horizon_days=14, intent_test_as_of=" in runs.a_out


def test_snapshot_dates_over_the_cap_are_reported_not_dropped_silently(runs: Runs) -> None:
    dates = read_frame(runs.a / "warehouse.duckdb", "select * from feature_snapshot_dates order by as_of_date")
    kept = dates[dates["is_kept"]]
    assert len(dates) == 9 and len(kept) == 8  # 63 days of history: 9 weekly dates; the cap keeps 8
    dropped = pd.Timestamp(dates["as_of_date"].iloc[0]).date()
    assert dropped == LATEST - timedelta(days=56)
    snapshots = read_frame(runs.a / "warehouse.duckdb", "select distinct as_of_date from user_feature_snapshots")
    assert sorted(pd.to_datetime(snapshots["as_of_date"]).dt.date) == sorted(pd.to_datetime(kept["as_of_date"]).dt.date)
    assert f"materialize: warning: 1 older feature snapshot dates dropped ({dropped}..{dropped})" in runs.a_out
    assert "feature_snapshots_max=9 keeps them all" in runs.a_out
    # home B keeps the default cap (52): every date, no warning in its metadata
    b_dates = read_frame(
        runs.b / "warehouse.duckdb", "select count(*) as n, count_if(is_kept) as kept from feature_snapshot_dates"
    )
    assert (b_dates["n"][0], b_dates["kept"][0]) == (9, 9)
    [metadata] = [
        m.metadata
        for m in (e.event_specific_data.materialization for e in runs.b_result.get_asset_materialization_events())
        if m.asset_key.to_user_string() == "user_feature_snapshots"
    ]
    assert metadata["snapshots_dropped"].value == 0 and metadata["snapshots_kept"].value == 9


def test_test_as_of_picks_the_test_snapshot_and_leaves_the_profiles_on_the_latest(runs: Runs) -> None:
    from mlflow import MlflowClient

    warehouse = runs.a / "warehouse.duckdb"
    labelled = sorted(
        pd.to_datetime(
            read_frame(warehouse, "select distinct as_of_date from purchase_intent_training_set")["as_of_date"]
        ).dt.date
    )
    expected_test = max(d for d in labelled if d <= TEST_AS_OF)
    assert expected_test == LATEST - timedelta(days=21) and max(labelled) > TEST_AS_OF  # a later one exists
    uri = f"sqlite:///{runs.a / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string="params.test_as_of != ''"
    )
    assert len(found) == 1, runs.a_out[-5000:]
    [run] = found
    params = run.data.params
    assert params["test_as_of"] == TEST_AS_OF.isoformat()
    assert params["split_test_from"] == params["split_test_to"] == expected_test.isoformat()
    assert params["split_after_test_snapshots"] == "1" and params["split_unused_snapshots"] == "1"
    assert params["horizon_days"] == "14"
    assert date.fromisoformat(params["split_train_to"]) + timedelta(days=14) <= expected_test
    assert params["split_validation_from"] == params["split_validation_to"] == (LATEST - timedelta(days=35)).isoformat()
    assert (params["split_train_from"], params["split_train_snapshots"]) == (
        (LATEST - timedelta(days=49)).isoformat(),
        "2",
    )
    # and in Dagster's metadata of the intent model (home A's own instance)
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(runs.a / "dagster_home"))
    [record] = instance.fetch_materializations(dg.AssetKey("purchase_intent_model"), limit=1).records
    metadata = record.asset_materialization.metadata
    assert metadata["test_as_of"].value == TEST_AS_OF.isoformat()
    assert metadata["split"].value["test_to"] == expected_test.isoformat()
    # features_as_of did not move: the latest snapshot is scored and profiled
    for table in ("user_features", "user_intent_scores", "user_profiles"):
        as_of = read_frame(warehouse, f"select distinct cast(as_of_date as date) as d from {table}")["d"]
        assert [pd.Timestamp(d).date() for d in as_of] == [LATEST], table
