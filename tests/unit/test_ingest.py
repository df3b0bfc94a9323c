import gzip
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pulse.core.contract import is_known_event_type
from pulse.core.settings import ingest_settings
from pulse.ingest.raw_events import IngestError, IngestOptions, ingest_day, landed_days, reconciliation, split_lines

DAY = date(2026, 9, 1)


def _options(environ: dict[str, str]) -> IngestOptions:
    """IngestOptions as a run reads them: the ingestion settings of ``environ``, through the settings door."""
    return IngestOptions.from_settings(ingest_settings(environ))


def event(**overrides: object) -> dict:
    base = {
        "event_id": "e1",
        "event_type": "page_view",
        "event_time": "2026-09-01T10:00:00.250Z",
        "anonymous_id": "a1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_lines(landing: Path, lines: list[str | bytes], name: str = "part.jsonl") -> Path:
    folder = landing / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n"
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def quarantine(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    return dict(con.execute("select line_number, reason from raw.events_quarantine").fetchall())


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    yield c
    c.close()


def test_split_lines_handles_crlf_missing_final_newline_and_empty_lines() -> None:
    numbers, arr = split_lines(b'{"a":1}\r\n\n{"b":2}\nlast')
    assert numbers.tolist() == [1, 2, 3, 4]
    assert arr.to_pylist() == [b'{"a":1}', b"", b'{"b":2}', b"last"]
    numbers, arr = split_lines(b"only\n")
    assert arr.to_pylist() == [b"only"]
    assert split_lines(b"")[1].to_pylist() == []


def test_valid_events_are_typed_and_stored_in_utc(tmp_path: Path, con) -> None:
    write_lines(
        tmp_path,
        [
            json.dumps(event(price=12.5, quantity=2, properties={"color": "red"}, consent_analytics=True)),
            json.dumps(event(event_id="e2", event_time="2026-09-01T12:00:00+02:00", price="3")),
        ],
    )
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (2, 2, 0)
    rows = con.execute(
        "select event_id, event_time, price, quantity, properties, consent_analytics, source_line"
        " from raw.events order by event_id"
    ).fetchall()
    assert rows[0][1:] == (
        rows[0][1].replace(hour=10, minute=0, second=0, microsecond=250000),
        12.5,
        2,
        '{"color":"red"}',
        True,
        1,
    )
    assert rows[1][1].hour == 10 and rows[1][2] == 3.0  # +02:00 -> UTC; numeric strings are accepted


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"event_id": "e1", "event_type"', "malformed JSON"),
        ("[1, 2]", "not a JSON object: array"),
        ("", "empty line"),
        (json.dumps(event(event_id=None)), "missing required field event_id"),
        (json.dumps(event(event_type="teleport")), "unknown event_type: teleport"),
        (json.dumps(event(event_type="custom.")), "unknown event_type: custom."),
        (json.dumps(event(event_time="yesterday")), "event_time is not an RFC 3339 timestamp: yesterday"),
        (json.dumps(event(event_time="2026-09-01")), "event_time is not an RFC 3339 timestamp"),
        (json.dumps(event(event_time="1999-12-31T23:59:59Z")), "event_time before 2000-01-01"),
        (json.dumps(event(event_time="2026-09-05T00:00:00Z")), "event_time in the future"),
        (json.dumps(event(anonymous_id=None)), "missing identity: neither user_id nor anonymous_id"),
        (json.dumps(event(price=-1)), "price is below 0"),
        (json.dumps(event(price="abc")), "price is not a number"),
        (json.dumps(event(event_type="add_to_cart", cart_value=-3)), "cart_value is below 0"),
        (json.dumps(event(quantity=1.5)), "quantity is not an integer"),
        (json.dumps(event(scroll_depth_pct=120)), "scroll_depth_pct is above 100"),
        (json.dumps(event(consent_personalization="maybe")), "consent_personalization is not a boolean"),
        (json.dumps(event(properties=[1])), "properties is not a JSON object"),
        (b'{"event_id": "\xff"}', "invalid UTF-8"),
        (json.dumps(event(page_title="x" * 70_000)), "row exceeds 65536 bytes"),
    ],
)
def test_contract_violations_are_quarantined_with_a_reason(tmp_path: Path, con, line, reason) -> None:
    write_lines(tmp_path, [json.dumps(event(event_id="ok")), line])
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (2, 1, 1)
    got = quarantine(con)
    assert list(got) == [2]
    assert got[2].startswith(reason), got[2]
    raw = con.execute("select raw_line, source_file from raw.events_quarantine").fetchall()[0]
    assert raw[1] == f"{DAY}/part.jsonl"
    if not isinstance(line, bytes):
        assert raw[0] == line  # the raw text is kept as it was


def test_all_reasons_of_a_row_are_reported(tmp_path: Path, con) -> None:
    write_lines(tmp_path, [json.dumps(event(event_type="nope", price=-2, anonymous_id=None))])
    ingest_day(con, tmp_path, DAY)
    reason = quarantine(con)[1]
    assert "unknown event_type: nope" in reason
    assert "price is below 0" in reason
    assert "missing identity" in reason


def test_reingesting_a_day_replaces_it(tmp_path: Path, con) -> None:
    write_lines(tmp_path, [json.dumps(event()), json.dumps(event(event_id="e2")), "{broken"], name="a.jsonl.gz")
    first = ingest_day(con, tmp_path, DAY)
    before = con.execute("select * exclude (ingested_at) from raw.events order by all").fetchall()
    second = ingest_day(con, tmp_path, DAY)
    after = con.execute("select * exclude (ingested_at) from raw.events order by all").fetchall()
    assert before == after
    assert (first.accepted, first.quarantined) == (second.accepted, second.quarantined) == (2, 1)
    assert con.execute("select count(*) from raw.events_quarantine").fetchall()[0][0] == 1
    assert reconciliation(con) == [(DAY, 3, 2, 1)]


def test_csv_and_parquet_use_the_same_contract(tmp_path: Path, con) -> None:
    folder = tmp_path / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "b.csv").write_text(
        "event_id,event_type,event_time,anonymous_id,price\n"
        "c1,product_view,2026-09-01T10:00:00Z,a1,9.99\n"
        "c2,product_view,2026-09-01T10:00:00Z,a1,-5\n"
        "c3,product_view,2026-09-01T10:00:00Z\n"
        "c4,click,2026-09-01T10:00:01Z,a2,\n"
    )
    pq.write_table(
        pa.table(
            {
                "event_id": ["p1"],
                "event_type": ["search"],
                "event_time": ["2026-09-01T11:00:00Z"],
                "user_id": ["u1"],
                "search_query": ["shoes"],
            }
        ),
        folder / "c.parquet",
    )
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (5, 3, 2)
    q = con.execute("select source_file, line_number, reason from raw.events_quarantine order by 2").fetchall()
    assert q[0] == (f"{DAY}/b.csv", 3, "price is below 0")
    assert q[1][1] == 4 and q[1][2].startswith("CSV row has 3 columns, header has 5")
    assert sorted(r[0] for r in con.execute("select event_id from raw.events").fetchall()) == [
        "c1",
        "c4",
        "p1",
    ]


def test_an_unreadable_file_fails_with_its_name_and_changes_nothing(tmp_path: Path, con) -> None:
    write_lines(tmp_path, [json.dumps(event())])
    ingest_day(con, tmp_path, DAY)
    bad = tmp_path / DAY.isoformat() / "zz.jsonl.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(IngestError, match="zz.jsonl.gz"):
        ingest_day(con, tmp_path, DAY)
    assert con.execute("select count(*) from raw.events").fetchall()[0][0] == 1


def test_landed_days_lists_folders_with_files(tmp_path: Path) -> None:
    write_lines(tmp_path, [json.dumps(event())])
    (tmp_path / "2026-09-02").mkdir()
    (tmp_path / "notes").mkdir()
    assert landed_days(tmp_path) == [DAY]


def test_custom_event_types() -> None:
    assert is_known_event_type("custom.newsletter_signup")
    assert not is_known_event_type("custom.")
    assert not is_known_event_type("pageview")


def test_parquet_with_typed_columns(tmp_path: Path, con) -> None:
    from datetime import UTC, datetime

    folder = tmp_path / DAY.isoformat()
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "event_id": ["t1", "t2"],
                "event_type": ["purchase", "purchase"],
                "event_time": pa.array(
                    [datetime(2026, 9, 1, 10, 0, 0, 500000, tzinfo=UTC), datetime(2026, 9, 1, 11, 0)],
                    pa.timestamp("ms", "UTC"),
                ),
                "user_id": ["u1", "u1"],
                "revenue": [12.5, -1.0],
                "quantity": pa.array([2, 1], pa.int32()),
                "consent_analytics": [True, False],
            }
        ),
        folder / "typed.parquet",
    )
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted, result.quarantined) == (2, 1, 1)
    row = con.execute("select event_time, revenue, quantity, consent_analytics from raw.events").fetchall()[0]
    assert row == (datetime(2026, 9, 1, 10, 0, 0, 500000), 12.5, 2, True)
    assert quarantine(con) == {2: "revenue is below 0"}


def test_the_event_time_floor_and_limits_are_configurable(tmp_path: Path, con) -> None:
    options = _options(
        {"PULSE_EARLIEST_EVENT_TIME": "2026-01-01", "PULSE_FUTURE_TOLERANCE_HOURS": "2", "PULSE_MAX_ROW_BYTES": "300"}
    )
    assert options == IngestOptions(
        max_row_bytes=300, earliest_event_time=datetime(2026, 1, 1), future_tolerance=timedelta(hours=2)
    )
    write_lines(
        tmp_path,
        [
            json.dumps(event(event_id="ok")),
            json.dumps(event(event_id="old", event_time="2025-12-31T23:59:59Z")),
            json.dumps(event(event_id="soon", event_time="2026-09-02T01:59:59Z")),
            json.dumps(event(event_id="later", event_time="2026-09-02T02:00:01Z")),
            json.dumps(event(event_id="long", page_title="x" * 300)),
        ],
    )
    result = ingest_day(con, tmp_path, DAY, options)
    assert (result.lines_read, result.accepted, result.quarantined) == (5, 2, 3)
    got = quarantine(con)
    assert got[2] == "event_time before 2026-01-01 00:00:00"
    assert got[4] == "event_time in the future: after 2026-09-02 02:00:00"
    assert got[5] == "row exceeds 300 bytes"
    # The defaults hold when nothing is set; a value that does not parse names its variable.
    assert _options({}) == IngestOptions()
    with pytest.raises(ValueError, match="PULSE_EARLIEST_EVENT_TIME"):
        _options({"PULSE_EARLIEST_EVENT_TIME": "last year"})
    with pytest.raises(ValueError, match="PULSE_MAX_ROW_BYTES"):
        _options({"PULSE_MAX_ROW_BYTES": "0"})


def test_empty_files_are_recorded_and_reported(tmp_path: Path, con) -> None:
    folder = tmp_path / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    (folder / "header_only.csv").write_text("event_id,event_type,event_time,anonymous_id\n")
    write_lines(tmp_path, [json.dumps(event())])
    result = ingest_day(con, tmp_path, DAY)
    assert result.empty_files == [f"{DAY}/empty.jsonl", f"{DAY}/empty.jsonl.gz", f"{DAY}/header_only.csv"]
    assert (result.lines_read, result.accepted, result.quarantined) == (1, 1, 0)
    files = dict(con.execute("select source_file, lines_read from raw.ingested_files").fetchall())
    assert files[f"{DAY}/empty.jsonl"] == 0 and files[f"{DAY}/part.jsonl"] == 1
    assert reconciliation(con) == [(DAY, 1, 1, 0)]


def test_a_warehouse_from_contract_v1_gets_the_new_fields_and_keeps_its_rows(tmp_path: Path, con) -> None:
    # raw.events as contract v1 created it: no value / cart_value columns
    write_lines(tmp_path, [json.dumps(event())])
    ingest_day(con, tmp_path, DAY)
    con.execute("alter table raw.events drop column value")
    con.execute("alter table raw.events drop column cart_value")
    write_lines(tmp_path, [json.dumps(event(event_type="add_to_cart", price=2, value=4, cart_value=6))], "v11.jsonl")
    result = ingest_day(con, tmp_path, DAY)
    assert (result.lines_read, result.accepted) == (2, 2)
    rows = con.execute("select event_type, value, cart_value from raw.events order by event_type").fetchall()
    assert rows == [("add_to_cart", 4.0, 6.0), ("page_view", None, None)]


def _land_day(landing: Path, day: date, n: int, name: str = "part.jsonl") -> None:
    folder = landing / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(event(event_id=f"{day}-{i}", event_time=f"{day}T10:00:{i:02d}Z")) for i in range(n)]
    lines.append(json.dumps(event(event_id=f"{day}-late", event_time=f"{day + timedelta(days=2)}T10:00:00Z")))
    (folder / name).write_text("\n".join(lines) + "\n")


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        "events": con.execute(
            "select load_date, source_file, source_line, event_id, event_time from raw.events order by all"
        ).fetchall(),
        "quarantine": con.execute(
            "select load_date, source_file, line_number, reason from raw.events_quarantine order by all"
        ).fetchall(),
        "files": con.execute(
            "select load_date, source_file, lines_read from raw.ingested_files order by all"
        ).fetchall(),
    }


def test_many_days_in_batches_equal_one_day_at_a_time(tmp_path: Path) -> None:
    """A history of small days is ingested in a few statements (one validation per batch of days, not one per
    file: 546 days took 241 s one file at a time); the tables are the same, and each day's future limit is its
    own (an event two days after its landing day is quarantined, the same time in a later day's file is not)."""
    from pulse.ingest.raw_events import ingest_days

    days = [date(1997, 1, 1) + timedelta(days=i) for i in range(12)]
    for i, day in enumerate(days):
        _land_day(tmp_path, day, n=i % 4)  # days of 1 to 4 lines
    options = IngestOptions(earliest_event_time=datetime(1990, 1, 1))
    one_by_one = duckdb.connect()
    expected = [ingest_day(one_by_one, tmp_path, day, options) for day in days]
    for batch_bytes in (1, 600, 1 << 30):  # a batch per day, a few days per batch, one batch
        batched = duckdb.connect()
        results = ingest_days(batched, tmp_path, days, options, batch_bytes=batch_bytes)
        assert _tables(batched) == _tables(one_by_one), batch_bytes
        assert [(r.day, r.lines_read, r.accepted, r.quarantined, r.reasons) for r in results] == [
            (r.day, r.lines_read, r.accepted, r.quarantined, r.reasons) for r in expected
        ]
    [(reason,)] = one_by_one.execute(
        "select distinct reason from raw.events_quarantine where load_date = '1997-01-05'"
    ).fetchall()
    assert reason == "event_time in the future: after 1997-01-07 00:00:00"
    assert all(r.quarantined == 1 and r.reconciles for r in expected)
    assert reconciliation(one_by_one) == [(d, (i % 4) + 1, i % 4, 1) for i, d in enumerate(days)]


def test_an_unreadable_file_leaves_its_batch_as_it_was(tmp_path: Path) -> None:
    from pulse.ingest.raw_events import ingest_days

    days = [DAY + timedelta(days=i) for i in range(3)]
    for day in days:
        _land_day(tmp_path, day, n=2)
    con = duckdb.connect()
    ingest_days(con, tmp_path, days)
    before = _tables(con)
    (tmp_path / days[2].isoformat() / "broken.jsonl.gz").write_bytes(b"not gzip")
    (tmp_path / days[0].isoformat() / "more.jsonl").write_text(json.dumps(event(event_id="more")) + "\n")
    with pytest.raises(IngestError, match="broken.jsonl.gz"):
        ingest_days(con, tmp_path, days)
    assert _tables(con) == before
