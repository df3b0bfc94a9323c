"""Which landing days need ingesting: pulse.ingest.raw_events.changed_days compares each day's files (name, size, mtime)
with what raw.ingested_files recorded when the day was ingested; the raw_events asset and `pulse materialize`
skip the others."""

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from landing_files import land_page_views as land

from orchestration.ingest.assets import days_to_ingest
from orchestration.materialize import RANGE_END_TAG, RANGE_START_TAG, last_run_failed, run_config
from pulse.ingest.raw_events import changed_days, create_raw_tables, ingest_day

DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(3)]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    events = tmp_path / "landing" / "events"
    for day in DAYS:
        land(events, day)
    return events


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def ingest_all(con: duckdb.DuckDBPyConnection, events: Path) -> None:
    for day in DAYS:
        ingest_day(con, events, day)


def test_a_warehouse_without_raw_tables_needs_every_landed_day(events: Path, con) -> None:
    assert changed_days(con, events) == DAYS
    create_raw_tables(con)  # the tables, but nothing ingested yet
    assert changed_days(con, events) == DAYS


def test_ingested_days_are_unchanged_until_their_files_change(events: Path, con) -> None:
    ingest_all(con, events)
    assert changed_days(con, events) == []
    fingerprints = con.execute("select source_file, file_bytes, file_mtime_ns from raw.ingested_files").fetchall()
    assert all(size > 0 and mtime_ns > 0 for _, size, mtime_ns in fingerprints)

    # touched (same bytes, a later mtime)
    path = events / DAYS[0].isoformat() / "part.jsonl"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert changed_days(con, events) == [DAYS[0]]
    ingest_day(con, events, DAYS[0])
    assert changed_days(con, events) == []

    # rewritten with other content, the mtime put back: the size tells
    stat = path.stat()
    land(events, DAYS[0], n=2)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed_days(con, events) == [DAYS[0]]
    ingest_day(con, events, DAYS[0])

    # a file added to a day, then one removed from it
    added = land(events, DAYS[1], name="late.jsonl")
    assert changed_days(con, events) == [DAYS[1]]
    ingest_day(con, events, DAYS[1])
    assert changed_days(con, events) == []
    added.unlink()
    assert changed_days(con, events) == [DAYS[1]]


def test_a_new_day_is_the_only_change(events: Path, con) -> None:
    ingest_all(con, events)
    new_day = DAYS[-1] + timedelta(days=1)
    land(events, new_day)
    assert changed_days(con, events) == [new_day]


def test_a_day_removed_from_the_landing_zone_is_not_a_change(events: Path, con) -> None:
    ingest_all(con, events)
    shutil.rmtree(events / DAYS[1].isoformat())
    assert changed_days(con, events) == []
    # nor is a day folder left without files
    (events / DAYS[2].isoformat() / "part.jsonl").unlink()
    assert changed_days(con, events) == []


def test_files_ingested_without_a_fingerprint_count_as_changed(events: Path, con) -> None:
    # raw.ingested_files as an older version created it: no file_bytes / file_mtime_ns
    con.execute("create schema raw")
    con.execute(
        """create table raw.ingested_files (
          load_date date not null, source_file varchar not null, lines_read bigint not null,
          ingested_at timestamp not null)"""
    )
    con.executemany("insert into raw.ingested_files values (?, ?, 1, now())", [(d, f"{d}/part.jsonl") for d in DAYS])
    assert changed_days(con, events) == DAYS
    create_raw_tables(con)  # adds the columns, empty for the rows already there
    columns = {c for (c,) in con.execute("select column_name from (describe raw.ingested_files)").fetchall()}
    assert {"file_bytes", "file_mtime_ns"} <= columns
    assert con.execute("select count(*) from raw.ingested_files where file_bytes is null").fetchall() == [(3,)]
    assert changed_days(con, events) == DAYS
    ingest_day(con, events, DAYS[0])
    assert changed_days(con, events) == DAYS[1:]


def test_a_read_only_warehouse_will_do(events: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()  # a warehouse file without raw tables
    with duckdb.connect(str(warehouse), read_only=True) as ro:
        assert changed_days(ro, events) == DAYS
    with duckdb.connect(str(warehouse)) as rw:
        ingest_day(rw, events, DAYS[0])
    with duckdb.connect(str(warehouse), read_only=True) as ro:
        assert changed_days(ro, events) == DAYS[1:]


def test_the_asset_ingests_only_the_changed_days_of_its_window_when_asked() -> None:
    assert days_to_ingest(DAYS, None) == (DAYS, [])
    assert days_to_ingest(DAYS, {DAYS[1], date(2030, 1, 1)}) == ([DAYS[1]], [DAYS[0], DAYS[2]])
    assert days_to_ingest(DAYS, set()) == ([], DAYS)
    assert "ops" not in run_config()
    assert run_config(only_changed_days=True)["ops"] == {"raw_events": {"config": {"only_changed_days": True}}}


def test_a_failed_materialize_run_is_reported_with_its_days() -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert last_run_failed(instance, "all_assets") is None

    def add(status: dg.DagsterRunStatus, first: date, last: date) -> None:
        tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
        instance.add_run(dg.DagsterRun(job_name="all_assets", status=status, tags=tags))

    add(dg.DagsterRunStatus.FAILURE, DAYS[0], DAYS[1])
    assert last_run_failed(instance, "all_assets") == (DAYS[0], DAYS[1])
    assert last_run_failed(instance, "daily_pipeline") is None
    add(dg.DagsterRunStatus.SUCCESS, DAYS[2], DAYS[2])
    assert last_run_failed(instance, "all_assets") is None


def test_days_ingested_under_other_validation_settings_are_changed(events: Path, con) -> None:
    """Raising the floor (PULSE_EARLIEST_EVENT_TIME) must admit what the old floor quarantined: the days ingested
    under another floor, future tolerance or row limit are ingested again by `pulse materialize`."""
    from datetime import datetime

    from pulse.ingest.raw_events import IngestOptions, days_ingested_under_other_options

    default = IngestOptions()
    ingest_all(con, events)
    assert changed_days(con, events, default) == []
    older = IngestOptions(earliest_event_time=datetime(1990, 1, 1))
    assert changed_days(con, events, older) == DAYS
    assert days_ingested_under_other_options(con, older) == DAYS
    ingest_day(con, events, DAYS[0], older)
    assert changed_days(con, events, older) == DAYS[1:]
    assert changed_days(con, events) == []  # without options: the files alone
    # A file recorded by an older version (no settings recorded) counts as ingested under the current ones.
    con.execute("update raw.ingested_files set ingest_options = null")
    assert changed_days(con, events, older) == [] and changed_days(con, events, default) == []


def test_the_per_day_table_of_a_long_history_keeps_the_notable_days() -> None:
    """A single-run backfill repeats raw_events' metadata on every partition's materialization: over hundreds of
    days the per_day table lists 40 (those with quarantined lines first, then the latest), not every day."""
    from orchestration.ingest.assets import MAX_DAYS_SHOWN, days_shown, ingestion_metadata
    from pulse.ingest.raw_events import DayResult

    days = [date(1997, 1, 1) + timedelta(days=i) for i in range(546)]
    results = [
        DayResult(day=d, lines_read=10, accepted=10 if i % 100 else 9, quarantined=0 if i % 100 else 1)
        for i, d in enumerate(days)
    ]
    shown = days_shown(results)
    assert len(shown) == MAX_DAYS_SHOWN == 40
    assert [r.day for r in shown[:6]] == [days[i] for i in range(0, 546, 100)]  # the six with quarantine
    assert [r.day for r in shown[6:]] == days[-34:]
    table = ingestion_metadata(results)["per_day"].value
    assert table.count("\n| 1997-") + table.count("\n| 1998-") == 40 and "40 of 546 days" in table
    assert days_shown(results[:40]) == results[:40]
