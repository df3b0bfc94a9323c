"""pulse.core.warehouse on DuckDB (the Spark side runs in tests/integration/test_engines_equal.py, which applies the
same steps through both engines and compares the tables), and the Spark session's settings."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from pulse.core.settings import paths_from_env
from pulse.core.spark_warehouse import spark_conf
from pulse.core.warehouse import DuckDBWarehouse, as_warehouse, column_ddl, literal

PROFILES = Path(__file__).resolve().parents[2] / "dbt_project" / "profiles.yml"


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    con = duckdb.connect()
    con.execute("create table users as select 'u' || cast(i as varchar) as user_key, i as n from range(1000) t(i)")
    return DuckDBWarehouse(con)


def test_map_batches_applies_the_function_to_every_row_in_bounded_batches(warehouse: DuckDBWarehouse) -> None:
    sizes: list[int] = []

    def double(batch: pd.DataFrame) -> pd.DataFrame:
        sizes.append(len(batch))
        return pd.DataFrame({"user_key": batch["user_key"], "twice": batch["n"] * 2.0})

    written = warehouse.map_batches(
        "select * from users", double, (("user_key", "string"), ("twice", "double")), "doubled", 300
    )
    assert written == 1000 and max(sizes) <= 300 and len(sizes) >= 4
    assert warehouse.rows("select sum(twice), count(distinct user_key) from doubled") == [(999_000.0, 1000)]


def test_replace_table_and_empty_table(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_table("small", "select * from users where n < 3")
    warehouse.replace_table("small", "select * from users where n < 5")
    assert warehouse.rows("select count(*) from small") == [(5,)]
    warehouse.create_empty_table("scores", (("user_key", "string"), ("decile", "int"), ("scored_at", "timestamp")))
    assert warehouse.table_exists("scores") and warehouse.rows("select count(*) from scores") == [(0,)]
    warehouse.drop_table("scores")
    assert not warehouse.table_exists("scores")


def test_hash_buckets_and_parameters_on_duckdb(warehouse: DuckDBWarehouse) -> None:
    # the list helpers (sorted set, ordered list, empty list) are dbt macros now (dbt_project/macros/lists.sql)
    w = warehouse
    [[bucket]] = w.rows(f"select max({w.hash_bucket('user_key', 10)}) from users")
    assert 0 <= bucket < 10
    assert w.frame("select n from users where n = $n", {"n": 7})["n"].tolist() == [7]


def test_literals_and_column_types() -> None:
    assert literal("it's") == "'it''s'" and literal(None) == "null" and literal(3) == "3"
    assert literal(datetime(2026, 9, 1, 6, 0, 1)) == "timestamp '2026-09-01 06:00:01'"
    assert literal(date(2026, 9, 1)) == "date '2026-09-01'"
    with pytest.raises(ValueError, match="varchar"):
        column_ddl((("user_key", "varchar"),))


def test_a_connection_is_wrapped_and_a_warehouse_kept(warehouse: DuckDBWarehouse) -> None:
    assert as_warehouse(warehouse) is warehouse
    assert isinstance(as_warehouse(warehouse.con), DuckDBWarehouse)


def test_the_python_session_matches_dbts_spark_profile(tmp_path: Path) -> None:
    """The Python steps' Spark session and dbt's Spark target see the same metastore, warehouse and settings:
    every value of profiles.yml's server_side_parameters, rendered as dbt renders it, is the session's."""
    import jinja2

    profile = yaml.safe_load(PROFILES.read_text())["pulse"]["outputs"]["spark"]["server_side_parameters"]
    environ = {"PULSE_HOME": str(tmp_path)}
    render = jinja2.Environment().from_string

    def env_var(name: str, default: str = "") -> str:
        return environ.get(name, default)

    rendered = {key: render(str(value)).render(env_var=env_var) for key, value in profile.items()}
    conf = spark_conf(paths_from_env(environ), environ)
    # javax.jdo.option.ConnectionURL: dbt-spark's session passes it on, Spark ignores it (spark.hadoop.* is read)
    assert set(rendered) - {"javax.jdo.option.ConnectionURL"} == set(conf)
    differing = {k: (rendered[k], conf[k]) for k in conf if rendered[k] != conf[k] and k != "spark.app.name"}
    assert not differing
    home = tmp_path / "spark"
    assert conf["spark.sql.warehouse.dir"] == f"{home}/warehouse"
