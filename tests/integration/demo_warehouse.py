"""Shared by the integration tests that build a demo warehouse without Dagster: generate the demo shop, ingest
every landing day with ``pulse.ingest.raw_events.ingest_day``, and run dbt against that warehouse with its own target
and log folders (the repository's dbt_project/target is left alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import ingest_day, landed_days

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
# The demo's first day in these tests: fixed, so that runs are reproducible (`pulse demo`'s own default ends
# the history yesterday, whatever the date).
DEMO_START = date(2026, 9, 1)


def dbt_env(home: Path, warehouse: Path) -> dict[str, str]:
    return {**os.environ, "PULSE_WAREHOUSE": str(warehouse), "PULSE_HOME": str(home)}


def run_dbt(home: Path, warehouse: Path, *args: str, project: Path = DBT_PROJECT) -> None:
    """``dbt <args>`` on ``warehouse`` (in ``project``, a copy of dbt_project/ if need be); fails the test
    with dbt's output when dbt fails."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--target-path", str(home / "target")]
        + ["--log-path", str(home / "logs")],
        cwd=project,
        env=dbt_env(home, warehouse),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def ingest_demo(home: Path, users: int, days: int, seed: int, warehouse: Path | None = None) -> tuple[Path, Path]:
    """The demo shop's landing files under ``home/landing``, every landing day ingested into ``warehouse``
    (default ``home/warehouse.duckdb``). Returns (landing, warehouse)."""
    landing, warehouse = home / "landing", warehouse or home / "warehouse.duckdb"
    generate_demo(landing, users=users, days=days, seed=seed, start=DEMO_START, progress=False)
    ingest_days(warehouse, landing / "events", landed_days(landing / "events"))
    return landing, warehouse


def demo_landing(root: Path, users: int, days: int, seed: int) -> tuple[Path, list[date]]:
    """The demo shop's landing files under ``root/landing``: (the events landing folder, its landing days)."""
    generate_demo(root / "landing", users=users, days=days, seed=seed, start=DEMO_START, progress=False)
    events = root / "landing" / "events"
    return events, landed_days(events)


def ingest_days(warehouse: Path, landing_events: Path, days: list[date]) -> None:
    """Ingest (or re-ingest: a day is replaced) these landing days into ``warehouse``."""
    con = duckdb.connect(str(warehouse))
    try:
        for day in days:
            ingest_day(con, landing_events, day)
    finally:
        con.close()


def table_differences(full: Path, incremental: Path, table: str) -> tuple[int, int, int]:
    """(rows, rows only in the full build, rows only in the incremental one). Floating-point columns are
    compared to 9 decimals: DuckDB sums doubles in whatever order its threads meet them, so two builds of
    the same table can differ in the last bits (every other column must match exactly)."""
    con = duckdb.connect()
    con.execute(f"attach '{full}' as f (read_only)")
    con.execute(f"attach '{incremental}' as i (read_only)")
    columns = ", ".join(
        f"round({name}, 9) as {name}" if kind in ("DOUBLE", "FLOAT") else name
        for name, kind in con.execute(f"select column_name, column_type from (describe f.{table})").fetchall()
    )
    full_rows, incremental_rows = f"select {columns} from f.{table}", f"select {columns} from i.{table}"
    only_full = con.execute(f"select count(*) from ({full_rows} except all {incremental_rows})").fetchall()[0][0]
    only_incremental = con.execute(f"select count(*) from ({incremental_rows} except all {full_rows})").fetchall()[0][0]
    rows = con.execute(f"select count(*) from f.{table}").fetchall()[0][0]
    con.close()
    return rows, only_full, only_incremental


def read_frame(warehouse: Path, sql: str) -> pd.DataFrame:
    """``sql`` on ``warehouse`` (read-only) as a pandas frame."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()
