"""Comparing what the same dbt project built on DuckDB and on Spark (tests/integration/test_engines_equal.py).

Spark's tables are read from their Parquet files in the Spark warehouse folder (``<warehouse>/<schema>.db/
<table>/``) with DuckDB, so the comparison needs no Spark session. Column types may differ between engines
(bigint vs int, double vs decimal, TIMESTAMP vs TIMESTAMP WITH TIME ZONE): values are compared, not types.
Timestamps are normalized to UTC; floating-point and decimal columns are compared within a relative
tolerance (the engines sum doubles in different orders); every other column must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
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
