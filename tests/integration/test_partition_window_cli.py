"""`pulse materialize` leaves out, naming them, the landing days the daily partitions do not cover (before a pinned
PULSE_PARTITIONS_START, after today) instead of stopping on Dagster's CheckError, and says what is wrong with an
invalid setting. Ingestion only (`ingest_landing_day`): what is tested is which days the CLI hands Dagster."""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb
import pytest

from pulse.cli import commands as cli
from pulse.ingest.landing import today_utc

pytestmark = pytest.mark.integration


def land(events, day: date) -> None:
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    line = {"event_id": f"e-{day}", "event_type": "page_view", "event_time": f"{day}T10:00:00Z", "anonymous_id": "a"}
    (folder / "part.jsonl").write_text(json.dumps(line) + "\n")


def loaded_days(warehouse) -> set[date]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {d for (d,) in con.execute("select distinct load_date from raw.events").fetchall()}


def test_days_outside_the_partitions_are_named_not_materialized(pulse_home, capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "ingest_landing_day")
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    old, pinned, future = date(2026, 9, 1), date(2026, 9, 2), today_utc() + timedelta(days=3)
    for day in (old, pinned, future):
        land(pulse_home.events_landing, day)

    monkeypatch.setenv("PULSE_PARTITIONS_START", "2026-09-31")
    assert cli.main(["materialize", "--quiet"]) == 2  # a settings error, named before anything runs
    assert "PULSE_PARTITIONS_START='2026-09-31': no such day" in capsys.readouterr().err

    monkeypatch.setenv("PULSE_PARTITIONS_START", pinned.isoformat())
    assert cli.main(["materialize", "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"materialize: 1 landing day ({old}) before PULSE_PARTITIONS_START={pinned}: not materialized" in out.err
    assert f"materialize: 1 landing day ({future}) after today ({today_utc()}, UTC)" in out.err
    assert f"materialize: {pinned}..{pinned} in one Dagster run" in out.out
    assert loaded_days(pulse_home.warehouse) == {pinned}

    # Unpinned, the partitions start at the first landing day: the old day is materialized, the future one waits.
    monkeypatch.delenv("PULSE_PARTITIONS_START")
    assert cli.main(["materialize", "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"1 new or changed landing day ({old}); 1 unchanged, skipped" in out.out
    assert "before" not in out.err and f"1 landing day ({future}) after today" in out.err
    assert loaded_days(pulse_home.warehouse) == {old, pinned}
