"""The raw tables dbt reads, exported from DuckDB to Parquet for the Spark target (docs/spark.md).

Ingestion stays on DuckDB (it validates and quarantines); the Spark target (``PULSE_ENGINE=spark``) reads the
same rows as Parquet files, one folder per table under ``$PULSE_HOME/spark/raw/<table>/``. dbt's on-run-start
(``pulse_raw_setup`` in dbt_project/macros/spark.sql) declares them as the tables of Spark's schema ``raw``.

Export after ingesting and before any dbt run on DuckDB: a committed DuckDB run prunes
``raw.events_retracted``, and Spark must see the retractions its own next batch has not processed yet.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pulse.ingest.raw_events import RAW_SCHEMA

# The raw tables of dbt's sources (dbt_project/models/staging/_sources.yml; a unit test keeps them in step).
SOURCE_TABLES = ("events", "events_retracted")
# What Spark gets: the sources, and the landing days ingested (the drift gate's calendar, expectations/).
EXPORTED_TABLES = (*SOURCE_TABLES, "ingested_files")


def spark_raw_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$PULSE_SPARK_RAW``, default ``$PULSE_HOME/spark/raw``: where profiles.yml's Spark target looks."""
    from pulse.core.settings import home_settings

    return home_settings(environ).spark_raw


@dataclass(frozen=True)
class ExportedTable:
    table: str
    rows: int
    path: Path


def export_raw_to_parquet(
    warehouse: Path, root: Path, tables: tuple[str, ...] = EXPORTED_TABLES
) -> list[ExportedTable]:
    """Write each ``raw.<table>`` of the DuckDB ``warehouse`` to ``root/<table>/data.parquet``, replacing the
    previous export of that table whole (written beside it, then swapped in). Timestamps stay DuckDB's
    zone-less UTC instants; the Spark profile reads them as TIMESTAMP in its UTC session zone."""
    root.mkdir(parents=True, exist_ok=True)
    exported = []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for table in tables:
            target, staging, old = root / table, root / f".{table}.new", root / f".{table}.old"
            for leftover in (staging, old):
                shutil.rmtree(leftover, ignore_errors=True)
            staging.mkdir()
            con.execute(
                f"copy (select * from {RAW_SCHEMA}.{table}) to '{staging / 'data.parquet'}'"
                " (format parquet, compression zstd, row_group_size 122880)"
            )
            rows = con.execute(f"select count(*) from {RAW_SCHEMA}.{table}").fetchone()[0]
            if target.exists():
                target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
            exported.append(ExportedTable(table, rows, target))
    finally:
        con.close()
    return exported
