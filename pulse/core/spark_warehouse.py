"""The Spark side of pulse.core.warehouse (what both share is in pulse.core.warehouse_common): the tables dbt's Spark
target built, read and written through a Spark session (docs/spark.md).

Locally (``PULSE_ENGINE=spark``) the session is the same one dbt-spark's session method opens: Spark in this
process (local[2]), the Hive metastore in Derby and the warehouse folder under ``$PULSE_HOME/spark``, UTC
(:func:`spark_conf` renders profiles.yml's ``spark`` output). Embedded Derby admits one process at a time,
and dbt runs in a child process: :func:`open_spark_warehouse` therefore stops the session and shuts Derby
down when its block ends, so the next dbt run can open the metastore.

On a cluster, the same code runs against the cluster's session (``PULSE_SPARK_MASTER``); ``mapInArrow``
ships the scoring function to the executors, which need pulse installed (docs/deployment.md).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from pulse.core.warehouse_common import DIGEST_MODULUS, BatchFunction, column_ddl, digest_text, quietly

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pulse.core.settings import PulsePaths

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


PROFILES = Path(__file__).resolve().parents[2] / "dbt_project" / "profiles.yml"
# dbt-spark's session method passes every server-side parameter on; Spark reads the metastore URL from its
# spark.hadoop.* form and ignores (with a warning) this one
_NOT_SPARK = frozenset({"javax.jdo.option.ConnectionURL"})


def spark_conf(paths: PulsePaths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The session's settings: profiles.yml's spark output's ``server_side_parameters``, rendered as dbt renders
    them (``env_var``) with this ``PULSE_HOME``. One source for both: dbt and the Python steps share the
    metastore, the warehouse folder and every setting."""
    import jinja2
    import yaml

    from pulse.core.settings import home_settings, process_environ

    base = process_environ() if environ is None else dict(environ)
    # the settings door's values, as dbt gets them (pulse-dbt's --env), with this home's defaults
    env = {k: v for k, v in home_settings(base | {"PULSE_HOME": str(paths.home)}).dbt_profile_env().items() if v}

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise KeyError(f"{PROFILES}: the spark output needs the environment variable {name}")
        return default

    parameters = yaml.safe_load(PROFILES.read_text())["pulse"]["outputs"]["spark"]["server_side_parameters"]
    render = jinja2.Environment().from_string
    conf = {key: render(str(value)).render(env_var=env_var) for key, value in parameters.items()}
    return {key: value for key, value in conf.items() if key not in _NOT_SPARK} | {"spark.app.name": "pulse"}


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
        """Through Arrow: ``collect()`` would hand timestamps over in this process's local zone."""
        return [tuple(row.values()) for row in self.arrow(sql, params).to_pylist()]

    def arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result as Arrow, timestamps as zone-less UTC instants (as DuckDB keeps them)."""
        table = self._sql(sql, params).toArrow()
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit)))
        return table

    def execute(self, sql: str) -> None:
        self.spark.sql(sql)

    def table_exists(self, table: str) -> bool:
        return bool(self.spark.catalog.tableExists(table, SCHEMA))

    def replace_table(self, table: str, select_sql: str) -> None:
        """Built beside the table, then swapped in by two renames (Spark's Parquet tables have no CREATE OR
        REPLACE): a failure at any point leaves the old table in place, and no staging table behind."""
        staging, previous = f"{table}__pulse_new", f"{table}__pulse_old"
        self.drop_table(staging)
        self.drop_table(previous)
        try:
            self.spark.sql(f"create table {staging} using parquet as {select_sql}")
        except Exception:
            quietly(self.drop_table, staging)
            raise
        had_table = self.table_exists(table)
        if had_table:
            self.spark.sql(f"alter table {table} rename to {previous}")
        try:
            self.spark.sql(f"alter table {staging} rename to {table}")
        except Exception:
            if had_table:
                quietly(self.spark.sql, f"alter table {previous} rename to {table}")
            quietly(self.drop_table, staging)
            raise
        self.drop_table(previous)

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

        setting = "spark.sql.execution.arrow.maxRecordsPerBatch"
        before = self.spark.conf.get(setting)
        self.spark.conf.set(setting, str(batch_rows))
        try:
            mapped = self.spark.sql(sql).mapInArrow(apply, column_ddl(columns))
            self.drop_table(into)
            mapped.write.format("parquet").saveAsTable(into)
        finally:
            self.spark.conf.set(setting, before)
        return int(self.spark.table(into).count())

    def hash_bucket(self, expr: str, buckets: int) -> str:
        return f"pmod(hash({expr}), {buckets})"

    def table_digest(self, table: str) -> str:
        """A fingerprint of ``table``'s rows in any order, computed by Spark (pulse.core.warehouse.DIGEST_MODULUS):
        comparable only with digests Spark computed. ``xxhash64`` skips nulls, so each column's ``is null``
        is hashed beside it (a null moving to another column changes the hash)."""
        from pyspark.sql.types import DecimalType, DoubleType, FloatType

        fields = self.spark.table(table).schema.fields
        values = []
        for field in fields:
            name = f"`{field.name}`"
            floating = isinstance(field.dataType, DoubleType | FloatType | DecimalType)
            values += [f"cast({name} as float)" if floating else name, f"{name} is null"]
        [(count, xor, total)] = self.rows(
            f"""select count(*), coalesce(bit_xor(h), 0), coalesce(sum(h % {DIGEST_MODULUS}), 0)
            from (select xxhash64({", ".join(values)}) as h from {table})"""
        )
        return digest_text([field.name for field in fields], int(count), int(xor), int(total))


def env_log_level() -> str:
    """Spark's own log level in pulse's processes: the setting ``spark_log_level`` (``PULSE_SPARK_LOG_LEVEL``),
    default ERROR (Spark's WARN lines about its local metastore would drown the run's log)."""
    from pulse.core.settings import group_settings

    return group_settings(["spark_log_level"]).spark_log_level.upper()


def start_session(paths: PulsePaths) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError(
            "PULSE_ENGINE=spark needs pyspark: `make install` installs it (the dev extra); see docs/spark.md"
        ) from exc
    # the executors' Python (mapInArrow) is this interpreter, not whatever python3 is on PATH: Spark's own
    # setting, not PYSPARK_PYTHON in this process's environment
    builder = (
        SparkSession.builder.enableHiveSupport()
        .config("spark.pyspark.python", sys.executable)
        .config("spark.sql.execution.pyspark.python", sys.executable)  # Python UDFs and mapInArrow
    )
    for key, value in spark_conf(paths).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise RuntimeError(f"could not start Spark (it needs a Java 17+ runtime on PATH): {exc}") from exc
    try:
        spark.sparkContext.setLogLevel(env_log_level())
        # A session started again in this process after :func:`stop_session` finds Derby's driver deregistered.
        spark._jvm.java.lang.Class.forName("org.apache.derby.jdbc.EmbeddedDriver").newInstance()
    except Exception:
        quietly(stop_session, spark)
        raise
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
    except BaseException:
        quietly(stop_session, spark)  # the step's own error is the one to see
        raise
    stop_session(spark)
