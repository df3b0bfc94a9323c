"""The figures of feature_snapshot_dates that a run reports when feature_snapshots_max drops older dates."""

from __future__ import annotations

from datetime import date

import duckdb

from ml.feature_snapshots import snapshot_coverage


def _dates(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, int, bool]]) -> None:
    con.execute("create or replace table feature_snapshot_dates (as_of_date date, snapshot_number int, is_kept bool)")
    con.executemany("insert into feature_snapshot_dates values (?, ?, ?)", rows)


def test_dropped_dates_are_counted_and_named() -> None:
    con = duckdb.connect()
    assert snapshot_coverage(con) is None  # before dbt built the table
    _dates(con, [("2026-01-30", 1, True), ("2026-01-23", 2, True), ("2026-01-16", 3, False), ("2026-01-09", 4, False)])
    coverage = snapshot_coverage(con)
    assert (coverage.kept, coverage.dropped) == (2, 2)
    assert (coverage.kept_from, coverage.latest) == (date(2026, 1, 23), date(2026, 1, 30))
    assert (coverage.dropped_from, coverage.dropped_to) == (date(2026, 1, 9), date(2026, 1, 16))
    text = coverage.describe()
    assert "2 older snapshot dates dropped (2026-01-09..2026-01-16)" in text
    assert "Raise feature_snapshots_max to 4" in text


def test_nothing_dropped_says_so() -> None:
    con = duckdb.connect()
    _dates(con, [("2026-01-30", 1, True), ("2026-01-23", 2, True)])
    coverage = snapshot_coverage(con)
    assert coverage.dropped == 0 and coverage.dropped_from is None
    assert coverage.describe() == "feature snapshots: 2 kept (2026-01-23..2026-01-30), none dropped"
