"""The warehouse the Python steps read and write: DuckDB (the default) or Apache Spark (``PULSE_ENGINE=spark``).

dbt builds the models on either engine (dbt_project/profiles.yml). What runs in Python after it (segments,
purchase intent, profiles, the quality gates, the summary) goes through a :class:`Warehouse`, so that the
same code reads the feature tables and writes its results back through the engine that holds them:

- :meth:`Warehouse.frame` / :meth:`Warehouse.rows`: a query's (small) result, as pandas or as tuples;
- :meth:`Warehouse.map_batches`: apply a pandas function to a query's rows a batch at a time and keep the
  output as a table (DuckDB: the rows stream through this process a batch at a time; Spark: ``mapInArrow``
  runs the function on the executors). Scoring and segment assignment use it, so memory holds one batch;
- :meth:`Warehouse.replace_table`: ``create or replace table ... as select`` in the engine.

SQL given to a Warehouse is the subset both engines read (STYLE.md's portability rules) and reads or writes
narrow tables only: every join, threshold and rule over the warehouse's tables is a dbt model (models/profiles,
models/audiences), where engine differences go through dbt's cross-database macros. The one function that
differs here, hashing a key into buckets for a sample of users, is :meth:`Warehouse.hash_bucket`.
Tables are named without a schema: DuckDB's ``main``, Spark's ``pulse`` (dbt's schema) is the current one.

Ingestion is DuckDB's on both engines (it validates and quarantines into ``raw.*``; pulse.ingest.spark_raw hands the
raw rows to Spark as Parquet), so :func:`open_raw` always opens the DuckDB file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pandas as pd
import pyarrow as pa

from pulse.core.warehouse_common import (
    COLUMN_TYPES,
    DIGEST_MODULUS,
    BatchFunction,
    column_ddl,
    digest_text,
    quietly,
)

if TYPE_CHECKING:
    from pulse.core.settings import PulsePaths

__all__ = ["COLUMN_TYPES", "DIGEST_MODULUS", "BatchFunction", "column_ddl", "digest_text", "quietly"]


class Warehouse(Protocol):
    engine: str

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame: ...

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]: ...

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table: ...

    def execute(self, sql: str) -> None: ...

    def table_exists(self, table: str) -> bool: ...

    def replace_table(self, table: str, select_sql: str) -> None: ...

    def create_empty_table(self, table: str, columns: Sequence[tuple[str, str]]) -> None: ...

    def drop_table(self, table: str) -> None: ...

    def map_batches(
        self, sql: str, fn: BatchFunction, columns: Sequence[tuple[str, str]], into: str, batch_rows: int
    ) -> int: ...

    def hash_bucket(self, expr: str, buckets: int) -> str: ...

    def table_digest(self, table: str) -> str: ...


def literal(value: object) -> str:
    """A SQL literal both engines read: strings quoted, timestamps as ``timestamp '...'``, None as null."""
    import datetime as dt

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


class DuckDBWarehouse:
    """A DuckDB connection (the file dbt-duckdb builds)."""

    engine = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, dict(params) if params else None).df()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, dict(params) if params else None).fetchall()

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self.con.execute(sql, dict(params) if params else None).to_arrow_table()

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def table_exists(self, table: str) -> bool:
        [[found]] = self.con.execute(
            "select count(*) from information_schema.tables where table_schema = 'main' and table_name = ?", [table]
        ).fetchall()
        return found > 0

    def replace_table(self, table: str, select_sql: str) -> None:
        self.con.execute(f"create or replace table {table} as {select_sql}")

    def create_empty_table(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        self.con.execute(f"create or replace table {table} ({column_ddl(columns)})")

    def drop_table(self, table: str) -> None:
        self.con.execute(f"drop table if exists {table}")

    def stream_frames(self, sql: str, batch_rows: int) -> Iterator[pd.DataFrame]:
        """The rows of ``sql`` as non-empty frames of at most ``batch_rows`` rows (Arrow record batches), read
        through a second cursor: a statement on the connection would end the stream."""
        reader = self.con.cursor().sql(sql).to_arrow_reader(batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch.to_pandas()

    def map_batches(
        self, sql: str, fn: BatchFunction, columns: Sequence[tuple[str, str]], into: str, batch_rows: int
    ) -> int:
        """``fn`` over ``sql``'s rows, ``batch_rows`` at a time, into the temporary table ``into``; the rows
        written. Memory holds one batch, whatever the table's size."""
        self.con.execute(f"create or replace temp table {into} ({column_ddl(columns)})")
        names = [name for name, _ in columns]
        written = 0
        for batch in self.stream_frames(sql, batch_rows):
            out = fn(batch)[names]
            self.con.register("pulse_mapped_batch", out)
            try:
                self.con.execute(f"insert into {into} select * from pulse_mapped_batch")
            finally:
                self.con.unregister("pulse_mapped_batch")
            written += len(out)
        return written

    def hash_bucket(self, expr: str, buckets: int) -> str:
        return f"hash({expr}) % {buckets}"

    def table_digest(self, table: str) -> str:
        """A fingerprint of ``table``'s rows in any order (see :data:`DIGEST_MODULUS`), computed by DuckDB:
        equal for the same rows, different when a row, a value or a column changes. Comparable only with
        digests DuckDB computed."""
        columns = self.con.execute(
            """select column_name, data_type from information_schema.columns
            where table_schema = 'main' and table_name = ? order by ordinal_position""",
            [table],
        ).fetchall()
        if not columns:
            raise ValueError(f"no table {table} in the warehouse")
        values = [
            f'cast("{name}" as float)'
            if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL")
            else f'"{name}"'
            for name, kind in columns
        ]
        [(count, xor, total)] = self.con.execute(
            f"""select count(*), coalesce(bit_xor(h), 0), coalesce(sum(h % {DIGEST_MODULUS}), 0)
            from (select hash({", ".join(values)}) as h from {table})"""
        ).fetchall()
        return digest_text([name for name, _ in columns], int(count), int(xor), int(total))


@contextmanager
def scratch_table(warehouse: Warehouse, table: str) -> Iterator[str]:
    """A working table's name, the table dropped after the block. When the block failed, a failing drop is
    logged, not raised: the block's error is the one to see."""
    try:
        yield table
    except BaseException:
        quietly(warehouse.drop_table, table)
        raise
    warehouse.drop_table(table)


def user_sample(warehouse: Warehouse, rows: int, max_rows: int) -> str:
    """A WHERE clause keeping about ``max_rows`` of ``rows`` rows by user (empty when they fit): the users whose
    key hashes into the first ``max_rows / rows`` of the hash range. Deterministic (the same users run after
    run while the table's size class holds) and whole (a user is in or out with all of their rows)."""
    if rows <= max_rows:
        return ""
    per_million = max(1, int(1_000_000 * max_rows / rows))
    return f"where {warehouse.hash_bucket('user_key', 1_000_000)} < {per_million}"


def as_warehouse(target: Warehouse | duckdb.DuckDBPyConnection) -> Warehouse:
    """A Warehouse over a DuckDB connection; a Warehouse as it is."""
    return DuckDBWarehouse(target) if isinstance(target, duckdb.DuckDBPyConnection) else target


def connect_duckdb(paths: PulsePaths, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        str(paths.warehouse),
        read_only=read_only,
        config={"memory_limit": paths.duckdb_memory},
    )


@contextmanager
def open_warehouse(paths: PulsePaths, read_only: bool = False) -> Iterator[Warehouse]:
    """The warehouse of ``paths.engine``, open for the ``with`` block (a Spark session is stopped after it,
    releasing the local metastore for the next dbt run)."""
    if paths.engine == "spark":
        from pulse.core.spark_warehouse import open_spark_warehouse

        with open_spark_warehouse(paths) as warehouse:
            yield warehouse
        return
    con = connect_duckdb(paths, read_only=read_only)
    try:
        yield DuckDBWarehouse(con)
    finally:
        con.close()
