"""pulse.ingest.spark_raw: the exported tables are the dbt sources', and an export replaces the previous one."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import yaml

from pulse.ingest.spark_raw import EXPORTED_TABLES, SOURCE_TABLES, export_raw_to_parquet, spark_raw_root

SOURCES = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging" / "_sources.yml"


def test_the_exported_tables_are_the_dbt_sources() -> None:
    sources = yaml.safe_load(SOURCES.read_text())["sources"]
    raw = next(s for s in sources if s["name"] == "raw")
    assert raw["schema"] == "raw"
    assert sorted(t["name"] for t in raw["tables"]) == sorted(SOURCE_TABLES)


def test_spark_declares_every_exported_table() -> None:
    """dbt's on-run-start (pulse_raw_setup) declares in Spark what pulse.ingest.spark_raw exports."""
    macros = (SOURCES.parents[2] / "macros" / "spark.sql").read_text()
    declared = re.search(r"{% for table in \[([^\]]*)\] %}", macros)
    assert declared is not None
    assert sorted(t.strip(" '") for t in declared.group(1).split(",")) == sorted(EXPORTED_TABLES)


def test_spark_raw_root() -> None:
    assert spark_raw_root({"PULSE_HOME": "/h"}) == Path("/h/spark/raw")
    assert spark_raw_root({"PULSE_HOME": "/h", "PULSE_SPARK_RAW": "/elsewhere"}) == Path("/elsewhere")


def test_an_export_replaces_the_previous_one(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema raw")
    con.execute("create table raw.events as select 1 as n, timestamp '2026-01-01 10:00:00.123456' as event_time")
    con.close()
    root = tmp_path / "raw"
    assert [(e.table, e.rows) for e in export_raw_to_parquet(warehouse, root, ("events",))] == [("events", 1)]
    con = duckdb.connect(str(warehouse))
    con.execute("insert into raw.events values (2, timestamp '2026-01-02 00:00:00')")
    con.close()
    export_raw_to_parquet(warehouse, root, ("events",))
    assert sorted(p.name for p in root.iterdir()) == ["events"]
    rows = duckdb.sql(f"select n, cast(event_time as varchar) from '{root}/events/*.parquet' order by n").fetchall()
    assert rows == [(1, "2026-01-01 10:00:00.123456"), (2, "2026-01-02 00:00:00")]
