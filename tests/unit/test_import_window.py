"""`pulse import` counts the imported events outside the window ingestion accepts (before the floor, beyond the
future tolerance) and says which setting to change."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

from pulse.cli import commands as cli
from pulse.core.settings import ingest_settings
from pulse.importers import import_files
from pulse.importers.window import outside_window, window_warnings


def orders(path: Path, times: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["order_id", "customer_id", "ordered_at", "amount"])
        writer.writerows([(f"A-{i}", f"c-{i % 3}", t, "10.00") for i, t in enumerate(times)])
    return path


TIMES = [
    "1997-01-01 10:00:00",
    "1997-01-02 11:00:00",
    "1999-12-31 23:59:59",
    "2000-01-01 00:00:00",  # on the floor: accepted
    "2000-01-01 12:00:00",
    "2026-09-01 10:00:00",
    "2099-01-01 00:00:00",  # far in the future
]


def test_events_are_counted_on_each_side_of_the_window(tmp_path: Path) -> None:
    summary = import_files("mapped", [orders(tmp_path / "o.csv", TIMES)], tmp_path / "landing", mapping="purchase_log")
    now = datetime(2026, 12, 7, 3, 0)
    report = outside_window(summary.files, datetime(2000, 1, 1), now + timedelta(hours=24))
    assert report.events == 7
    assert report.before_floor.events == 3
    assert report.before_floor.span == "3 landing days, 1997-01-01..1999-12-31"
    assert report.after_ceiling.events == 1 and report.after_ceiling.span == "landing day 2099-01-01"
    # A floor inside a day: only that day's events before it count (read back from the day's file)
    report = outside_window(summary.files, datetime(2000, 1, 1, 6, 0), now + timedelta(hours=24))
    assert report.before_floor.events == 4
    # A ceiling inside a day, likewise
    report = outside_window(summary.files, datetime(1990, 1, 1), datetime(2026, 9, 1, 9, 0))
    assert (report.before_floor.events, report.after_ceiling.events) == (0, 2)


def test_the_warning_states_counts_days_and_the_setting(tmp_path: Path) -> None:
    summary = import_files("mapped", [orders(tmp_path / "o.csv", TIMES)], tmp_path / "landing", mapping="purchase_log")
    report = outside_window(summary.files, datetime(2000, 1, 1), datetime(2026, 12, 8, 3, 0))
    before, after = window_warnings(report, timedelta(hours=24))
    assert before.splitlines() == [
        "3 of 7 events are before the quarantine floor PULSE_EARLIEST_EVENT_TIME=2000-01-01 (3 landing days, "
        "1997-01-01..1999-12-31): `pulse materialize` will quarantine them",
        'to admit them, set earliest_event_time = "1997-01-01" (or earlier) in $PULSE_HOME/settings.toml, or '
        "PULSE_EARLIEST_EVENT_TIME=1997-01-01 where `pulse materialize` runs; the days ingested under the old floor "
        "are then ingested again",
    ]
    assert after.startswith("1 of 7 events are more than 24 h in the future, after 2026-12-08 03:00:00 UTC")
    assert "PULSE_FUTURE_TOLERANCE_HOURS sets the tolerance" in after.splitlines()[1]
    inside = outside_window(summary.files, datetime(1990, 1, 1), datetime(2100, 1, 1))
    assert window_warnings(inside, timedelta(hours=24)) == []


def test_pulse_import_prints_the_warning(tmp_path: Path, capsys, monkeypatch) -> None:
    source = orders(tmp_path / "o.csv", TIMES[:3])
    landing = str(tmp_path / "landing")
    assert (
        cli.main(
            ["import", "--quiet", "--format", "mapped", "--mapping", "purchase_log", "--landing", landing, str(source)]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "import: warning: 3 of 3 events are before the quarantine floor PULSE_EARLIEST_EVENT_TIME=2000-01-01" in err
    monkeypatch.setenv("PULSE_EARLIEST_EVENT_TIME", "1997-01-01")
    assert (
        cli.main(
            ["import", "--quiet", "--format", "mapped", "--mapping", "purchase_log", "--landing", landing, str(source)]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setenv("PULSE_EARLIEST_EVENT_TIME", "the nineties")
    assert (
        cli.main(
            ["import", "--quiet", "--format", "mapped", "--mapping", "purchase_log", "--landing", landing, str(source)]
        )
        == 0
    )
    assert "PULSE_EARLIEST_EVENT_TIME='the nineties': expected" in capsys.readouterr().err


def test_contract_files_are_checked_too(tmp_path: Path) -> None:
    source = tmp_path / "e.jsonl"
    source.write_text(
        '{"event_id":"a","event_type":"page_view","event_time":"1970-01-01T00:00:00Z","anonymous_id":"x"}\n'
        '{"event_id":"b","event_type":"page_view","event_time":"2026-09-01T00:00:00+02:00","anonymous_id":"x"}\n'
    )
    summary = import_files("jsonl", [source], tmp_path / "landing")
    report = outside_window(summary.files, datetime(2000, 1, 1), datetime(2026, 12, 8))
    assert (report.events, report.before_floor.events, report.before_floor.span) == (2, 1, "landing day 1970-01-01")


def test_pulse_import_writes_no_file_over_ingestions_per_file_limits(tmp_path: Path, monkeypatch) -> None:
    """With max_file_lines set below the import's own part size, `pulse import` writes a day in parts that
    ingestion accepts under the same settings (before, it wrote one file of 5 lines that failed the run)."""
    import duckdb

    from pulse.ingest.raw_events import IngestOptions, ingest_day

    monkeypatch.setenv("PULSE_EARLIEST_EVENT_TIME", "1990-01-01")
    monkeypatch.setenv("PULSE_MAX_FILE_LINES", "2")
    source = orders(tmp_path / "o.csv", [f"2026-09-01 1{h}:00:00" for h in range(5)])
    landing = tmp_path / "landing"
    args = ["import", "--quiet", "--format", "mapped", "--mapping", "purchase_log", "--landing", str(landing)]
    assert cli.main([*args, str(source)]) == 0
    parts = sorted(p.name for p in (landing / "events" / "2026-09-01").iterdir())
    assert len(parts) == 3, parts
    with duckdb.connect() as con:
        day = ingest_day(
            con, landing / "events", datetime(2026, 9, 1).date(), IngestOptions.from_settings(ingest_settings())
        )
    assert (day.lines_read, day.accepted) == (5, 5)
