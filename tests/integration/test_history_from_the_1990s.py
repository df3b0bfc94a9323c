"""A shop's own history from any year, end to end as a user runs it: a purchase-only log of 1997-01..1998-06
(CDNOW-like: tests/integration/purchase_history.py) through the shipped `purchase_log` mapping, `pulse import`
and `pulse materialize` in a fresh PULSE_HOME.

- With the floor unchanged (PULSE_EARLIEST_EVENT_TIME=2000-01-01) the import warns with the counts, the days and
  the setting; materializing quarantines every event and the CLI prints the reason with an example.
- With the floor changed to 1990-01-01 the import accepts everything, and `pulse materialize` (the same call, no
  range: the days ingested under the old floor count as changed) builds everything through profiles and
  exports. The daily partitions start at the first landing day, 1997-01-01, with none before it (they were
  fixed at 2020-01-01: `pulse materialize` stopped on a CheckError).

The first materialization runs ingestion only (`ingest_landing_day`, through the CLI's own code path): the
quarantine report is about ingestion, and a second full run would double the test's time. The intent model's
sufficiency gate is lowered (PULSE_INTENT_MIN_POSITIVES / _NEGATIVES) so that it trains on this small shop
rather than refusing, which fails the run until a refusal is made non-fatal."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from purchase_history import write_purchase_log

from orchestration.definitions import build_definitions
from pulse.activation.publish import current_snapshot
from pulse.cli import commands as cli

pytestmark = pytest.mark.integration

FIRST, LAST = date(1997, 1, 1), date(1998, 6, 30)
IMPORT = ["import", "--quiet", "--format", "mapped", "--mapping", "purchase_log"]


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchall()[0][0]


def test_a_purchase_log_from_the_1990s_imports_and_materializes(pulse_home, tmp_path: Path, capsys, monkeypatch):
    source = tmp_path / "orders.csv"
    rows = write_purchase_log(source, customers=2000, seed=1997)
    orders, customers, days = len(rows), len({r[1] for r in rows}), len({r[2][:10] for r in rows})
    assert orders > 5000 and customers == 2000
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    instance = dg.DagsterInstance.get()

    # The floor unchanged: the import warns, ingestion quarantines, the CLI says why.
    assert cli.main([*IMPORT, str(source)]) == 0
    out = capsys.readouterr()
    assert f"{orders:,} events written, 0 rejected" in out.out and f"{FIRST}..{LAST} ({days} days)" in out.out
    assert (
        f"import: warning: {orders:,} of {orders:,} events are before the quarantine floor "
        f"PULSE_EARLIEST_EVENT_TIME=2000-01-01 ({days} landing days, {FIRST}..{LAST})"
    ) in out.err
    assert f'set earliest_event_time = "{FIRST}" (or earlier) in $PULSE_HOME/settings.toml' in out.err
    assert f"or PULSE_EARLIEST_EVENT_TIME={FIRST} where" in out.err
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "ingest_landing_day")
    assert cli.main(["materialize", "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"materialize: {FIRST}..{LAST} in one Dagster run" in out.out
    report = out.err.splitlines()
    head = report.index(
        f"quarantine: {orders:,} lines of landing days {FIRST}..{LAST} in raw.events_quarantine, by reason:"
    )
    assert report[head + 1].split() == [f"{orders:,}", "event_time", "before", "2000-01-01", "00:00:00"]
    assert report[head + 2].strip().startswith(f"e.g. {FIRST}/import-mapped-")
    assert '"event_type":"purchase"' in report[head + 2]
    assert report[head + 3].startswith("  hint: older events are quarantined below PULSE_EARLIEST_EVENT_TIME")
    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        assert _scalar(con, "select count(*) from raw.events") == 0
        assert _scalar(con, "select count(*) from raw.events_quarantine") == orders

    # The floor changed: nothing to warn about, and the same `pulse materialize` ingests the days again.
    monkeypatch.setenv("PULSE_EARLIEST_EVENT_TIME", "1990-01-01")
    monkeypatch.setenv("PULSE_INTENT_MIN_POSITIVES", "10")
    monkeypatch.setenv("PULSE_INTENT_MIN_NEGATIVES", "10")
    assert cli.main([*IMPORT, str(source)]) == 0
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "all_assets")
    assert cli.main(["materialize", "--quiet"]) == 0, capsys.readouterr()
    out = capsys.readouterr()
    assert f"materialize: {days} new or changed landing days" in out.out
    assert f"{days} of them ingested under other validation settings" in out.out
    # 18 months of weekly feature snapshots are more than the cap keeps (52): said, not dropped silently
    assert "materialize: done with warnings in" in out.out
    assert "older feature snapshot dates dropped" in out.err
    assert "quarantine:" not in out.err  # nothing quarantined this time
    [run] = instance.get_runs(filters=dg.RunsFilter(job_name="all_assets"))
    assert run.status == dg.DagsterRunStatus.SUCCESS

    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        assert _scalar(con, "select count(*) from raw.events") == orders
        assert _scalar(con, "select count(*) from raw.events_quarantine") == 0
        assert _scalar(con, "select count(*) from stg_events where event_type = 'purchase'") == orders
        assert _scalar(con, "select count(*) from dim_users") == customers
        assert _scalar(con, "select min(activity_date) from fct_user_daily") == FIRST
        revenue = _scalar(con, "select round(sum(revenue), 2) from stg_events")
        assert revenue == pytest.approx(sum(float(r[3]) for r in rows), abs=0.01)
        profiles = _scalar(con, "select count(*) from user_profiles")
        assert profiles == _scalar(con, "select count(*) from user_features") > 0
        segments = _scalar(con, "select count(distinct segment_id) from user_segments")
        assert segments >= 2
        consented = _scalar(con, "select count_if(consent_personalization) from user_profiles")
    manifest = json.loads((current_snapshot(pulse_home.exports) / "manifest.json").read_text())
    assert manifest["profiles"]["rows"] == consented  # a purchase log carries no consent: nobody is exported

    # The partitions start at the first landing day; none before it.
    materialized = instance.get_materialized_partitions(dg.AssetKey("raw_events"))
    assert min(materialized) == FIRST.isoformat() and max(materialized) == LAST.isoformat()
    partitions = build_definitions().resolve_job_def("daily_pipeline").partitions_def
    assert partitions.get_first_partition_key() == FIRST.isoformat()
    assert not partitions.has_partition_key("1996-12-31")
