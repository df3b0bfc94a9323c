"""Every landing entry is read, listed as not read with why, or fails the run naming it (issue 20, points 4,
7 and 8): only regular files inside the landing zone are read (no symlink is followed, a FIFO never blocks),
unsupported names are listed, and a file over the per-file caps (a gzip bomb) fails naming the cap before it
is read any further."""

import gzip
import json
import os
import threading
import zlib
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.ingest.assets import ingestion_metadata
from pulse.core.settings import ingest_settings
from pulse.ingest.raw_events import (
    IngestError,
    IngestOptions,
    changed_days,
    files_for_day,
    ingest_day,
    landed_days,
    unsupported_entries,
)

DAY = date(2026, 9, 1)


def _options(environ: dict[str, str]) -> IngestOptions:
    """IngestOptions as a run reads them: the ingestion settings of ``environ``, through the settings door."""
    return IngestOptions.from_settings(ingest_settings(environ))


def line(event_id: str) -> str:
    return json.dumps(
        {"event_id": event_id, "event_type": "page_view", "event_time": "2026-09-01T10:00:00Z", "anonymous_id": "a"}
    )


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    yield c
    c.close()


@pytest.fixture
def day(tmp_path: Path) -> Path:
    folder = tmp_path / "events" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "good.jsonl").write_text(line("g1") + "\n")
    return folder


def events(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("select event_id from raw.events order by 1").fetchall()]


def test_upper_case_suffixes_are_read_and_other_names_are_listed_with_why(day: Path, con) -> None:
    landing = day.parent
    (day / "EXPORT.JSONL").write_text(line("u1") + "\n")
    (day / "Orders.CSV.GZ").write_bytes(
        gzip.compress(b"event_id,event_type,event_time,anonymous_id\nc1,page_view,2026-09-01T10:00:00Z,a\n")
    )
    (day / "notes.txt").write_text("not events")
    (day / "x.jsonl.bz2").write_bytes(b"BZh91AY&SY")
    (day / "archive").mkdir()
    (day / ".x.jsonl.tmp").write_text("a write in progress")  # hidden: the collector's convention
    (landing / "README.md").write_text("hello")
    (landing / "20260902").mkdir()  # not <YYYY-MM-DD>: date.fromisoformat would take it

    result = ingest_day(con, landing, DAY)
    assert events(con) == ["c1", "g1", "u1"]
    assert (result.lines_read, result.accepted) == (3, 3)
    why = {e.name: e.why for e in result.unsupported}
    assert set(why) == {f"{DAY}/archive", f"{DAY}/notes.txt", f"{DAY}/x.jsonl.bz2"}
    assert "not a landing file name" in why[f"{DAY}/notes.txt"]
    assert "recompress it with gzip" in why[f"{DAY}/x.jsonl.bz2"]
    assert "folder" in why[f"{DAY}/archive"]

    everywhere = {e.name: e.why for e in unsupported_entries(landing)}
    assert set(everywhere) == {"20260902", "README.md", *why}
    assert "not a day folder" in everywhere["20260902"]
    assert landed_days(landing) == [DAY]

    # ... and the raw_events asset's metadata lists them
    metadata = ingestion_metadata([result])
    assert metadata["unsupported_entries"].value == 3
    assert metadata["unsupported"].value[f"{DAY}/x.jsonl.bz2"] == why[f"{DAY}/x.jsonl.bz2"]


def test_a_day_holding_only_unsupported_names_is_still_listed(tmp_path: Path) -> None:
    folder = tmp_path / DAY.isoformat()
    folder.mkdir()
    (folder / "events.jsonl.zst").write_bytes(b"(\xb5/\xfd")
    assert landed_days(tmp_path) == []  # nothing to ingest ...
    assert [e.name for e in unsupported_entries(tmp_path)] == [f"{DAY}/events.jsonl.zst"]  # ... but not silent


def _directory(path: Path, outside: Path) -> None:
    path.mkdir()
    (path / "inner.jsonl").write_text(line("d1") + "\n")


def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def _broken_link(path: Path, outside: Path) -> None:
    path.symlink_to(path.parent / "gone.jsonl")


def _link_out(path: Path, outside: Path) -> None:
    path.symlink_to(outside)


def _link_inside(path: Path, outside: Path) -> None:
    path.symlink_to(path.parent / "good.jsonl")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_directory, "a directory"),
        (_fifo, "a FIFO"),
        (_broken_link, "a symbolic link"),
        (_link_out, "a symbolic link"),
        (_link_inside, "a symbolic link"),
    ],
    ids=["directory", "fifo", "broken-symlink", "symlink-out", "symlink-inside"],
)
def test_an_entry_named_like_a_landing_file_that_is_not_a_regular_file_fails_naming_it(
    day: Path, tmp_path: Path, con, make, why: str
) -> None:
    landing = day.parent
    ingest_day(con, landing, DAY)
    secret = tmp_path / "secret.txt"  # a file outside the landing zone (a system file, for an attacker)
    secret.write_text("root:x:0:0:SECRET-CONTENT\n")
    entry = day / "zz.jsonl"
    make(entry, secret)
    assert entry.name in {p.name for p in files_for_day(landing, DAY)}
    assert changed_days(con, landing) == [DAY]  # listing it does not block either

    outcome: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            ingest_day(con, landing, DAY)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)  # a FIFO opened for reading would block it forever
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "ingestion blocked on the entry"
    error = outcome["error"]
    assert isinstance(error, IngestError)
    assert f"{DAY}/zz.jsonl" in str(error) and why in str(error)
    # nothing of it was read: the day is as it was, and the file it points to is nowhere in the warehouse
    assert events(con) == ["g1"]
    quarantined = con.execute("select count(*) from raw.events_quarantine where raw_line like '%SECRET%'")
    assert quarantined.fetchall()[0][0] == 0


def test_a_day_folder_linked_out_of_the_landing_zone_is_not_read(tmp_path: Path, con) -> None:
    landing = tmp_path / "events"
    landing.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e.jsonl").write_text(line("x1") + "\n")
    (landing / DAY.isoformat()).symlink_to(elsewhere)
    with pytest.raises(IngestError, match="leads out of the landing zone"):
        ingest_day(con, landing, DAY)


def _gzip_bomb(path: Path, megabytes: int) -> None:
    """``megabytes`` MB of zeros in a few hundred KB of gzip."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(megabytes):
            fh.write(compressor.compress(block))
        fh.write(compressor.flush())


def test_a_gzip_bomb_fails_naming_the_cap_and_the_setting(day: Path, con) -> None:
    _gzip_bomb(day / "bomb.jsonl.gz", 256)
    assert (day / "bomb.jsonl.gz").stat().st_size < 1 << 20
    options = IngestOptions(max_file_bytes=4 << 20)
    with pytest.raises(IngestError) as raised:
        ingest_day(con, day.parent, DAY, options)
    message = str(raised.value)
    assert f"{DAY}/bomb.jsonl.gz" in message
    assert "more than 4,194,304 bytes once decompressed" in message and "PULSE_MAX_FILE_BYTES" in message


def test_the_caps_count_bytes_and_lines_and_a_file_at_them_is_read(day: Path, con) -> None:
    landing = day.parent
    lines = [line(f"e{i}") for i in range(10)]
    data = ("\n".join(lines) + "\n").encode()
    (day / "good.jsonl").unlink()
    (day / "ten.jsonl.gz").write_bytes(gzip.compress(data))
    at_the_caps = IngestOptions(max_file_bytes=len(data), max_file_lines=10)
    assert ingest_day(con, landing, DAY, at_the_caps).accepted == 10
    with pytest.raises(IngestError, match="more than 9 lines.*PULSE_MAX_FILE_LINES"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_lines=9))
    with pytest.raises(IngestError, match=f"more than {len(data) - 1:,} bytes once decompressed"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_bytes=len(data) - 1))
    (day / "ten.jsonl.gz").unlink()
    (day / "ten.jsonl").write_bytes(data)  # plain: refused by its size, before reading
    with pytest.raises(IngestError, match=f"more than {len(data) - 1:,} bytes, the limit"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_bytes=len(data) - 1))
    assert sorted(events(con)) == sorted(f"e{i}" for i in range(10))  # the failures changed nothing


def test_the_caps_apply_to_csv_records_and_parquet_rows(day: Path, con) -> None:
    landing = day.parent
    (day / "good.jsonl").unlink()
    header = "event_id,event_type,event_time,anonymous_id\r"  # CR-only: one "line" for a byte count
    rows = "".join(f"c{i},page_view,2026-09-01T10:00:00Z,a\r" for i in range(5))
    (day / "five.csv").write_text(header + rows, newline="")
    assert ingest_day(con, landing, DAY, IngestOptions(max_file_lines=5)).accepted == 5
    with pytest.raises(IngestError, match="more than 4 records"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_lines=4))
    (day / "five.csv").unlink()
    table = pa.table({"event_id": [f"p{i}" for i in range(5)], "event_type": ["page_view"] * 5})
    pq.write_table(table, day / "five.parquet")
    with pytest.raises(IngestError, match="five.parquet: more than 4 rows"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_lines=4))
    with pytest.raises(IngestError, match="five.parquet: more than 10 bytes once decompressed"):
        ingest_day(con, landing, DAY, IngestOptions(max_file_bytes=10))


def test_the_caps_are_settings() -> None:
    options = _options({"PULSE_MAX_FILE_BYTES": "1000", "PULSE_MAX_FILE_LINES": "7"})
    assert (options.max_file_bytes, options.max_file_lines) == (1000, 7)
    assert _options({}) == IngestOptions()  # the declared defaults are the dataclass's
    with pytest.raises(ValueError, match="PULSE_MAX_FILE_LINES"):
        _options({"PULSE_MAX_FILE_LINES": "0"})
    # the caps decide no line's fate: changing them does not re-ingest every day
    assert IngestOptions(max_file_bytes=1).fingerprint == IngestOptions().fingerprint


def test_pulse_materialize_names_what_it_does_not_read(pulse_home, capsys) -> None:
    from pulse.cli.commands import main

    folder = pulse_home.events_landing / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "events.jsonl.bz2").write_bytes(b"BZh91AY&SY")
    (folder / "notes.txt").write_text("x")
    assert main(["materialize", "--quiet"]) == 1  # nothing it can read: no run
    err = capsys.readouterr().err
    assert "materialize: warning: 2 landing entries not read:" in err
    assert f"{folder / 'events.jsonl.bz2'}: .bz2 compression is not read: recompress it with gzip" in err
    assert f"{folder / 'notes.txt'}: not a landing file name" in err
    assert "nothing to materialize" in err
