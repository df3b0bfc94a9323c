"""The Spark side of pulse.warehouse: the tables dbt's Spark target built, read and written through a Spark
session (docs/spark.md).

Locally (``PULSE_ENGINE=spark``) the session is the same one dbt-spark's session method opens: Spark in this
process (local[2]), the Hive metastore in Derby and the warehouse folder under ``$PULSE_HOME/spark``, UTC
(:func:`spark_conf` mirrors profiles.yml's ``spark`` output; a unit test keeps them in step). Embedded Derby
admits one process at a time, and dbt runs in a child process: :func:`open_spark_warehouse` therefore stops
the session and shuts Derby down when its block ends, so the next dbt run can open the metastore.

On a cluster, the same code runs against the cluster's session (``PULSE_SPARK_MASTER``); ``mapInArrow``
ships the scoring function to the executors, which need pulse installed (docs/deployment.md).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from pulse.warehouse import BatchFunction, column_ddl

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pulse.settings import PulsePaths

SCHEMA = "pulse"  # profiles.yml's spark output: the schema dbt builds in
_ARROW_TYPES = {
    "string": pa.string(),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
}
_PARAMETER = re.compile(r"\$([a-z_][a-z0-9_]*)")


def spark_conf(paths: PulsePaths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The session's settings: profiles.yml's ``server_side_parameters`` for the spark output."""
    env = os.environ if environ is None else environ
    home = paths.spark_home
    metastore = f"jdbc:derby:;databaseName={home}/metastore_db;create=true"
    return {
        "spark.master": env.get("PULSE_SPARK_MASTER", "local[2]"),
        "spark.app.name": "pulse",
        "spark.driver.memory": env.get("PULSE_SPARK_DRIVER_MEMORY", "2g"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": env.get("PULSE_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.sql.warehouse.dir": f"{home}/warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.legacy.createHiveTableByDefault": "false",
    }


class SparkWarehouse:
    """dbt's Spark schema through a SparkSession (the current database is :data:`SCHEMA`)."""

    engine = "spark"

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def _sql(self, sql: str, params: Mapping[str, Any] | None = None):  # -> pyspark DataFrame
        if not params:
            return self.spark.sql(sql)
        # DuckDB's $name parameters are Spark's :name
        return self.spark.sql(_PARAMETER.sub(r":\1", sql), args=dict(params))

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self._sql(sql, params).toPandas()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return [tuple(row) for row in self._sql(sql, params).collect()]

    def arrow(self, sql: str) -> pa.Table:
        """The result as Arrow, timestamps as zone-less UTC instants (as DuckDB keeps them)."""
        table = self.spark.sql(sql).toArrow()
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit)))
        return table

    def execute(self, sql: str) -> None:
        self.spark.sql(sql)

    def table_exists(self, table: str) -> bool:
        return bool(self.spark.catalog.tableExists(table, SCHEMA))

    def replace_table(self, table: str, select_sql: str) -> None:
        """Built beside the table, then swapped in (Spark's Parquet tables have no CREATE OR REPLACE): readers
        see the old or the new table, except for the instant between the drop and the rename."""
        staging = f"{table}__pulse_new"
        self.drop_table(staging)
        self.spark.sql(f"create table {staging} using parquet as {select_sql}")
        self.drop_table(table)
        self.spark.sql(f"alter table {staging} rename to {table}")

    def create_empty_table(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        self.drop_table(table)
        self.spark.sql(f"create table {table} ({column_ddl(columns)}) using parquet")

    def drop_table(self, table: str) -> None:
        self.spark.sql(f"drop table if exists {table}")

    def map_batches(
        self, sql: str, fn: BatchFunction, columns: Sequence[tuple[str, str]], into: str, batch_rows: int
    ) -> int:
        """``fn`` over ``sql``'s rows on the executors (``mapInArrow``, at most ``batch_rows`` rows per Arrow
        batch), written to the table ``into``; the rows written."""
        schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns])
        names = [name for name, _ in columns]

        def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                if batch.num_rows:
                    out = fn(batch.to_pandas())[names]
                    yield pa.RecordBatch.from_pandas(out, schema=schema, preserve_index=False)

        self.spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        mapped = self.spark.sql(sql).mapInArrow(apply, column_ddl(columns))
        self.drop_table(into)
        mapped.write.format("parquet").saveAsTable(into)
        return int(self.spark.table(into).count())

    # dialect
    def sorted_set(self, expr: str) -> str:
        return f"array_sort(collect_set({expr}))"

    def ordered_list(self, value: str, order_by: str) -> str:
        return f"transform(array_sort(collect_list(struct({order_by} as k, {value} as v))), x -> x.v)"

    def empty_list(self) -> str:
        return "cast(array() as array<string>)"

    def unnest(self, expr: str) -> str:
        return f"explode({expr})"

    def hash_bucket(self, expr: str, buckets: int) -> str:
        return f"pmod(hash({expr}), {buckets})"


def env_log_level() -> str:
    """Spark's own log level in pulse's processes: ``PULSE_SPARK_LOG_LEVEL``, default ERROR (Spark's WARN lines
    about its local metastore would drown the run's log)."""
    return os.environ.get("PULSE_SPARK_LOG_LEVEL", "ERROR")


def start_session(paths: PulsePaths) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError(
            "PULSE_ENGINE=spark needs pyspark: `make install` installs it (the dev extra); see docs/spark.md"
        ) from exc
    # the executors' Python (mapInArrow) is this interpreter, not whatever python3 is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(paths).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise RuntimeError(f"could not start Spark (it needs a Java 17+ runtime on PATH): {exc}") from exc
    spark.sparkContext.setLogLevel(env_log_level())
    # A session started again in this process after :func:`stop_session` finds Derby's driver deregistered.
    spark._jvm.java.lang.Class.forName("org.apache.derby.jdbc.EmbeddedDriver").newInstance()
    return spark


def stop_session(spark: SparkSession) -> None:
    """Stop the session and shut embedded Derby down, so that another process (dbt) can open the metastore."""
    jvm = spark._jvm
    spark.stop()
    try:
        jvm.java.sql.DriverManager.getConnection("jdbc:derby:;shutdown=true")
    except Exception as exc:  # noqa: BLE001 - Derby reports a successful shutdown as an exception (XJ015)
        if "shutdown" not in str(exc).lower():
            raise


@contextmanager
def open_spark_warehouse(paths: PulsePaths) -> Iterator[SparkWarehouse]:
    spark = start_session(paths)
    try:
        spark.sql(f"create schema if not exists {SCHEMA}")
        spark.catalog.setCurrentDatabase(SCHEMA)
        yield SparkWarehouse(spark)
    finally:
        stop_session(spark)
