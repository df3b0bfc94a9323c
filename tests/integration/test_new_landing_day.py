"""`pulse materialize` on an existing PULSE_HOME ingests only the new or changed landing days: a day landing
after the first run is the only one ingested (the others keep their rows and ingested_at, so dbt's incremental
run does not take them again), a call with nothing new starts no run, and --start/--end still re-ingest.

A demo of 60 users: four landing days materialized, then a fifth. The runs use `daily_pipeline` (every asset
but the intent model's training, which refuses a few days of data) through the CLI's own code path."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pulse.cli import commands as cli
from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

FIRST = date(2026, 9, 1)
OLD_DAYS = [FIRST + timedelta(days=i) for i in range(4)]
NEW_DAY = FIRST + timedelta(days=4)


def _materialize(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(["materialize", "--quiet", *args]) == 0, capsys.readouterr()
    return capsys.readouterr().out


def _ingested(warehouse: Path) -> dict[tuple[date, str], object]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select load_date, source_file, ingested_at from raw.ingested_files").fetchall()
    return {(day, name): at for day, name, at in rows}


def _raw_events_materializations(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(dg.AssetKey("raw_events"), limit=1000).records
    return [r.asset_materialization for r in records if r.run_id == run.run_id]


def _metadata(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[set[str], dict[str, object]]:
    """The partitions raw_events materialized in ``run`` and its metadata (one for the whole window)."""
    mats = _raw_events_materializations(instance, run)
    return {m.partition for m in mats}, {k: v.value for k, v in mats[0].metadata.items()}


def test_only_a_new_landing_day_is_ingested(pulse_home, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "daily_pipeline")
    source = tmp_path / "source"
    generate_demo(source, users=60, days=5, seed=5, start=FIRST, progress=False)
    for day in OLD_DAYS:
        shutil.copytree(source / "events" / day.isoformat(), pulse_home.events_landing / day.isoformat())
    # The instance under the PULSE_HOME's DAGSTER_HOME, configured as the CLI writes it, which the CLI uses.
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    instance = dg.DagsterInstance.get()

    # A fresh PULSE_HOME: every landing day is new.
    out = _materialize(capsys)
    assert "4 new or changed landing days" in out and "0 unchanged" in out
    [first_run] = instance.get_runs()
    assert first_run.status == dg.DagsterRunStatus.SUCCESS
    partitions, meta = _metadata(instance, first_run)
    assert partitions == {d.isoformat() for d in OLD_DAYS}
    assert (meta["ingested_days"], meta["skipped_unchanged_days"]) == (4, 0)
    before = _ingested(pulse_home.warehouse)

    # One more landing day: only that day is ingested; the others keep their rows and ingested_at.
    shutil.copytree(source / "events" / NEW_DAY.isoformat(), pulse_home.events_landing / NEW_DAY.isoformat())
    out = _materialize(capsys)
    assert f"1 new or changed landing day ({NEW_DAY}); 4 unchanged, skipped" in out
    assert f"{NEW_DAY}..{NEW_DAY} in one Dagster run" in out
    second_run = instance.get_runs(limit=1)[0]
    assert second_run.run_id != first_run.run_id and second_run.status == dg.DagsterRunStatus.SUCCESS
    partitions, meta = _metadata(instance, second_run)
    assert partitions == {NEW_DAY.isoformat()}
    assert (meta["ingested_days"], meta["skipped_unchanged_days"], meta["landing_days"]) == (1, 0, 1)
    assert meta["lines_read"] > 0 and meta["reconciles"] is True
    # dbt processed that day as an incremental batch: int_batch's materialization says so
    [batch] = [
        r.asset_materialization
        for r in instance.fetch_materializations(dg.AssetKey("int_batch"), limit=10).records
        if r.run_id == second_run.run_id
    ]
    shown = {k: v.value for k, v in batch.metadata.items()}
    assert shown["full_build"] is False and shown["batch_rows"] == meta["accepted"]
    assert (shown["first_load_date"], shown["last_load_date"]) == (str(NEW_DAY), str(NEW_DAY))
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        users = con.execute("select count(*) from dim_users").fetchall()[0][0]
    assert 0 < shown["users_recomputed"] < users
    after = _ingested(pulse_home.warehouse)
    assert {k: v for k, v in after.items() if k[0] != NEW_DAY} == before
    assert {day for day, _ in after} == {*OLD_DAYS, NEW_DAY}
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        newer = con.execute(
            "select distinct load_date from raw.events where ingested_at > ?", [max(before.values())]
        ).fetchall()
        assert newer == [(NEW_DAY,)]
        assert con.execute("select count(*) from stg_events where load_date = ?", [NEW_DAY]).fetchall()[0][0] > 0
        # the daily job assigns everyone, the new day's users too, with the segments' champion (the first run's
        # fit): no refit, no new version (refits are the weekly job segment_refit's)
        assert con.execute("select distinct model_version from user_segments").fetchall() == [("1",)]
        assert con.execute("select count(*) = (select count(*) from user_features) from user_segments").fetchall() == [
            (True,)
        ]
    assert "materialize: segment_model: assigning with champion v1: segments are refitted by the job" in out
    from ml.tracking import REGISTERED_MODEL, latest_version, tracking_uri

    assert latest_version(tracking_uri(pulse_home.mlflow_store), REGISTERED_MODEL).version == "1"

    # Nothing new: no run.
    out = _materialize(capsys)
    assert "materialize: nothing new: 5 landing days already ingested, unchanged and published" in out
    assert len(instance.get_runs()) == 2

    # Two days' files touched: the run covers the span between them and skips the unchanged day inside it.
    # (Ingestion alone here: the job does not change what raw_events does, and it is the quickest run.)
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "ingest_landing_day")
    for day in (OLD_DAYS[1], OLD_DAYS[3]):
        for path in (pulse_home.events_landing / day.isoformat()).iterdir():
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    out = _materialize(capsys)
    assert f"2 new or changed landing days ({OLD_DAYS[1]}, {OLD_DAYS[3]}); 3 unchanged, skipped" in out
    touched_run = instance.get_runs(limit=1)[0]
    assert touched_run.status == dg.DagsterRunStatus.SUCCESS
    partitions, meta = _metadata(instance, touched_run)
    assert partitions == {d.isoformat() for d in OLD_DAYS[1:]}
    assert (meta["ingested_days"], meta["skipped_unchanged_days"]) == (2, 1)
    touched = _ingested(pulse_home.warehouse)
    assert {k: v for k, v in touched.items() if k[0] not in (OLD_DAYS[1], OLD_DAYS[3])} == {
        k: v for k, v in after.items() if k[0] not in (OLD_DAYS[1], OLD_DAYS[3])
    }

    # --start/--end: every day of the range is re-ingested, changed or not.
    out = _materialize(capsys, "--start", OLD_DAYS[2].isoformat(), "--end", OLD_DAYS[2].isoformat())
    assert f"re-ingesting every landing day of {OLD_DAYS[2]}..{OLD_DAYS[2]} (1)" in out
    _, meta = _metadata(instance, instance.get_runs(limit=1)[0])
    assert (meta["ingested_days"], meta["skipped_unchanged_days"]) == (1, 0)
    reingested = _ingested(pulse_home.warehouse)
    assert all(reingested[k] > touched[k] for k in reingested if k[0] == OLD_DAYS[2])
    assert landed_days(pulse_home.events_landing) == [*OLD_DAYS, NEW_DAY]
