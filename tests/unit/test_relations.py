"""What the dbt assets show after a run: each built relation's row count (tables only) and every column with
its type and its YAML description (pulse/core/relations.py, orchestration/transform/assets.py)."""

from __future__ import annotations

import dagster as dg
import duckdb

from orchestration.transform.assets import built_models_metadata, relation_metadata, unique_id
from pulse.core.relations import RelationFigures, relation_columns, relation_figures
from pulse.core.warehouse import DuckDBWarehouse


def _warehouse() -> DuckDBWarehouse:
    con = duckdb.connect()
    con.execute("create table sessions (session_key varchar, events bigint, started_at timestamp)")
    con.execute("insert into sessions values ('a', 3, now()), ('b', 1, now()), ('c', 2, now())")
    con.execute("create table empty_table (user_key varchar)")
    con.execute("create view events as select session_key, events * 2 as doubled from sessions")
    return DuckDBWarehouse(con)


def test_tables_are_counted_views_are_not_and_missing_relations_are_left_out() -> None:
    figures = relation_figures(
        _warehouse(), {"sessions": False, "events": True, "empty_table": False, "not_built": False}
    )
    assert set(figures) == {"sessions", "events", "empty_table"}
    assert figures["sessions"] == RelationFigures(
        "sessions", 3, (("session_key", "VARCHAR"), ("events", "BIGINT"), ("started_at", "TIMESTAMP"))
    )
    assert figures["events"].row_count is None and figures["events"].columns == (
        ("session_key", "VARCHAR"),
        ("doubled", "BIGINT"),
    )
    assert figures["empty_table"].row_count == 0
    assert relation_figures(_warehouse(), {}) == {}


class _SparkLike:
    """Spark's answers to `describe table`: the columns, then a blank row and the partition section."""

    engine = "spark"

    def table_exists(self, table: str) -> bool:
        return table == "fct_user_daily"

    def rows(self, sql: str, params=None) -> list[tuple]:
        assert sql == "describe table fct_user_daily"
        return [
            ("user_key", "string", None),
            ("activity_date", "date", None),
            ("", "", ""),
            ("# Partition Information", "", ""),
            ("# col_name", "data_type", "comment"),
        ]


def test_spark_columns_come_from_describe_table() -> None:
    columns = relation_columns(_SparkLike(), ["fct_user_daily", "not_built"])
    assert columns == {"fct_user_daily": (("user_key", "string"), ("activity_date", "date"))}


MANIFEST = {
    "nodes": {
        "model.pulse.sessions": {
            "resource_type": "model",
            "name": "sessions",
            "alias": "sessions",
            "config": {"materialized": "incremental"},
            "columns": {
                "session_key": {"name": "session_key", "description": "The session."},
                "events": {"name": "events", "description": ""},
            },
        },
        "model.pulse.events": {
            "resource_type": "model",
            "name": "events",
            "alias": "events",
            "config": {"materialized": "view"},
            "columns": {},
        },
        "test.pulse.not_null_sessions_session_key": {"resource_type": "test", "name": "not_null", "config": {}},
        "model.pulse.not_built": {"resource_type": "model", "name": "not_built", "config": {"materialized": "table"}},
    }
}


def test_each_built_model_gets_its_row_count_and_column_schema() -> None:
    metadata = built_models_metadata(MANIFEST, list(MANIFEST["nodes"]), _warehouse())
    assert set(metadata) == {"model.pulse.sessions", "model.pulse.events", "model.pulse.not_built"}
    sessions = metadata["model.pulse.sessions"]
    assert sessions["dagster/row_count"] == dg.MetadataValue.int(3)
    schema = sessions["dagster/column_schema"].value
    assert [(c.name, c.type, c.description) for c in schema.columns] == [
        ("session_key", "varchar", "The session."),
        ("events", "bigint", None),  # an empty description is none
        ("started_at", "timestamp", None),
    ]
    assert "dagster/row_count" not in metadata["model.pulse.events"]  # a view: counting would run its query
    assert [c.name for c in metadata["model.pulse.events"]["dagster/column_schema"].value.columns] == [
        "session_key",
        "doubled",
    ]
    assert metadata["model.pulse.not_built"] == {}
    assert relation_metadata(MANIFEST["nodes"]["model.pulse.sessions"], None) == {}


def test_the_dbt_node_of_an_output() -> None:
    output = dg.Output(None, output_name="fct_sessions", metadata={"unique_id": "model.pulse.fct_sessions"})
    assert unique_id(output) == "model.pulse.fct_sessions"
    assert unique_id(dg.Output(None, output_name="x")) == ""
