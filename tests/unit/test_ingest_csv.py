"""CSV landing files (issue 20, point 9): CR-only line endings are read, a newline-only file is an empty file,
one invalid UTF-8 byte quarantines its record only (as JSON Lines does its line), and every record is numbered
with the line it starts on, also after a quoted field spanning lines."""

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pulse.ingest.raw_events import IngestError, ingest_day, reconciliation

DAY = date(2026, 9, 1)
HEADER = "event_id,event_type,event_time,anonymous_id,page_title"


def row(event_id: str, title: str = "t", event_type: str = "page_view") -> str:
    return f"{event_id},{event_type},2026-09-01T10:00:00Z,a1,{title}"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    yield c
    c.close()


def land(tmp_path: Path, data: bytes, name: str = "part.csv") -> Path:
    folder = tmp_path / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def accepted(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str | None]]:
    rows = con.execute("select event_id, source_line, page_title from raw.events").fetchall()
    return {event_id: (line, title) for event_id, line, title in rows}


def quarantined(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str]]:
    return con.execute("select line_number, reason, raw_line from raw.events_quarantine order by 1").fetchall()


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_reads_the_same_rows_on_the_same_lines(tmp_path: Path, con, ending: str) -> None:
    text = ending.join([HEADER, row("e1"), row("e2", event_type="nope"), row("e3")]) + ending
    land(tmp_path, text.encode(), "part.csv.gz")
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (3, 2, 1)
    assert accepted(con) == {"e1": (2, "t"), "e3": (4, "t")}
    assert quarantined(con)[0][:2] == (3, "unknown event_type: nope")


def test_line_numbers_after_quoted_fields_spanning_lines_and_blank_lines(tmp_path: Path, con) -> None:
    lines = [
        HEADER,  # 1
        row("e1", '"two\nlines"'),  # 2-3
        row("e2", event_type="bad"),  # 4
        "",  # 5: a blank line holds no record
        row("e3", '"three\r\nlines\nhere"'),  # 6-8
        "e4,page_view,2026-09-01T10:00:00Z",  # 9: too few fields
        row("e5"),  # 10
    ]
    land(tmp_path, ("\n".join(lines) + "\n").encode())
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (5, 3, 2)
    assert accepted(con) == {"e1": (2, "two\nlines"), "e3": (6, "three\r\nlines\nhere"), "e5": (10, "t")}
    assert [(n, why) for n, why, _ in quarantined(con)] == [
        (4, "unknown event_type: bad"),
        (9, "CSV row has 3 columns, header has 5"),
    ]
    assert reconciliation(con) == [(DAY, 5, 3, 2)]


def test_one_invalid_utf8_byte_quarantines_its_record_only(tmp_path: Path, con) -> None:
    data = "\n".join([HEADER, row("e1", "caf\u00e9"), row("e2", "X"), row("e3")]).encode() + b"\n"
    data = data.replace(b",X", b",caf\xe9")  # Latin-1 in a UTF-8 file
    land(tmp_path, data)
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (3, 2, 1)
    assert accepted(con) == {"e1": (2, "caf\u00e9"), "e3": (4, "t")}
    [(line, why, raw)] = quarantined(con)
    assert (line, why) == (3, "invalid UTF-8")
    assert raw == "e2,page_view,2026-09-01T10:00:00Z,a1,caf\\xe9"  # the bad byte escaped, as for JSON Lines


@pytest.mark.parametrize(
    "data", [b"\n", b"\r\n\r\n", b"", b"\xef\xbb\xbf\n"], ids=["newline", "blank-lines", "empty", "bom"]
)
def test_a_csv_without_a_header_is_an_empty_file_not_a_failure(tmp_path: Path, con, data: bytes) -> None:
    land(tmp_path, data)
    result = ingest_day(con, tmp_path, DAY)
    assert result.empty_files == [f"{DAY}/part.csv"]
    assert (result.lines_read, result.accepted, result.quarantined) == (0, 0, 0)


def test_cells_are_missing_only_when_empty(tmp_path: Path, con) -> None:
    text = "\ufeff" + "\n".join([HEADER, row("e1", "NA"), row("e2", "NULL"), row("e3", ""), row("e4", '""')])
    land(tmp_path, text.encode())
    ingest_day(con, tmp_path, DAY)
    titles = {k: v[1] for k, v in accepted(con).items()}
    assert titles == {"e1": "NA", "e2": "NULL", "e3": None, "e4": None}


def test_a_header_naming_a_column_twice_fails_naming_the_file(tmp_path: Path, con) -> None:
    land(tmp_path, f"{HEADER},event_id\n{row('e1')},x\n".encode())
    with pytest.raises(IngestError, match=r"part\.csv: line 1: the header names column 'event_id' twice"):
        ingest_day(con, tmp_path, DAY)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_lines_are_never_cut_where_the_file_is_split_into_pieces(tmp_path: Path, con, monkeypatch, ending) -> None:
    """A CSV is split into lines piece by piece (pulse.ingest.raw_events.CSV_CHUNK_BYTES): with pieces smaller than a
    line, a CR-only file (no LF to cut after) and CRLFs on a piece's edge still give whole lines."""
    import pulse.ingest.raw_events

    monkeypatch.setattr(pulse.ingest.raw_events, "CSV_CHUNK_BYTES", 7)
    long_title = '"' + "x" * 40 + ending + "y" * 40 + '"'
    text = ending.join([HEADER, row("e1"), row("e2", long_title), row("e3", "z" * 30), row("e4")]) + ending
    land(tmp_path, text.encode())
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (4, 4, 0)
    rows = accepted(con)
    assert {k: v[0] for k, v in rows.items()} == {"e1": 2, "e2": 3, "e3": 5, "e4": 6}
    assert rows["e2"][1] == "x" * 40 + ending + "y" * 40 and rows["e3"][1] == "z" * 30
