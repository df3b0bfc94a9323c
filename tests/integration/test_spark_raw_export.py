"""With PULSE_ENGINE=spark the ingestion asset hands Spark its raw tables: after ingesting, it exports them to
Parquet where dbt's Spark target reads them (pulse.ingest.spark_raw), with their row counts as metadata. (dbt and
the Python steps on Spark: tests/integration/test_engines_equal.py.)"""

from datetime import date

import dagster as dg
import duckdb
import pytest

from orchestration.ingest.assets import build_raw_events
from orchestration.partitions import landing_days_partitions
from orchestration.resources import PulseSettings, PulseStorage
from pulse.ingest.spark_raw import EXPORTED_TABLES, spark_raw_root

pytestmark = pytest.mark.integration
DAY = date(2026, 9, 1)


def test_ingestion_exports_the_raw_tables_for_spark(pulse_home, monkeypatch) -> None:
    monkeypatch.setenv("PULSE_ENGINE", "spark")
    folder = pulse_home.events_landing / DAY.isoformat()
    folder.mkdir(parents=True)
    lines = [
        f'{{"event_id":"e{i}","event_type":"page_view","event_time":"2026-09-01T10:0{i}:00Z","anonymous_id":"a"}}'
        for i in range(3)
    ]
    (folder / "events.jsonl").write_text("\n".join([*lines, "not json"]) + "\n")

    raw_events = build_raw_events(landing_days_partitions(DAY))
    result = dg.materialize(
        [raw_events], partition_key=DAY.isoformat(), resources={"storage": PulseStorage(), "settings": PulseSettings()}
    )
    assert result.success
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["spark_raw_events_rows"].value == 3

    root = spark_raw_root()
    assert root == pulse_home.home / "spark" / "raw"
    assert sorted(p.name for p in root.iterdir()) == sorted(EXPORTED_TABLES)
    exported = duckdb.sql(f"select event_id from '{root}/events/*.parquet' order by event_id").fetchall()
    assert exported == [("e0",), ("e1",), ("e2",)]
    [[files]] = duckdb.sql(f"select count(*) from '{root}/ingested_files/*.parquet'").fetchall()
    assert files == 1
