"""One row never stops an import (issue 20, point 8): a row that cannot be converted is rejected with its line
and reason, and the rest of the file is imported, in every importer."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pulse.importers import ImportSummary, import_files
from pulse.importers.mapped import parse_mapping


def imported(summary: ImportSummary) -> list[dict]:
    events = []
    for path in sorted(summary.outputs):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            events += [json.loads(line) for line in fh]
    return events


def rejects(summary: ImportSummary) -> list[dict]:
    [result] = summary.files
    assert result.rejected_file is not None
    return [json.loads(line) for line in result.rejected_file.read_text(encoding="utf-8").splitlines()]


def test_otto_timestamps_out_of_range_reject_the_event_not_the_import(tmp_path: Path) -> None:
    source = tmp_path / "otto.jsonl"
    sessions = [
        {
            "session": 1,
            "events": [{"aid": 1, "ts": 10**20, "type": "clicks"}, {"aid": 2, "ts": 1659304800025, "type": "carts"}],
        },
        {"session": 2, "events": [{"aid": 3, "ts": 9 * 10**18, "type": "orders"}]},
        {"session": 3, "events": [{"aid": 4, "ts": 1659304900000, "type": "clicks"}]},
    ]
    source.write_text("".join(json.dumps(s) + "\n" for s in sessions))
    summary = import_files("otto", [source], landing=tmp_path / "landing")
    assert [e["event_id"] for e in imported(summary)] == ["otto-1-1", "otto-3-0"]
    assert [(r["line"], r["reason"]) for r in rejects(summary)] == [
        (1, "events[0]: epoch timestamp out of range: 100000000000000000000 (ms)"),
        (2, "events[0]: epoch timestamp out of range: 9000000000000000000 (ms)"),
    ]


def test_json_nested_deeper_than_python_parses_rejects_the_line(tmp_path: Path) -> None:
    good = {
        "messageId": "m1",
        "type": "track",
        "event": "Signed Up",
        "userId": "u1",
        "timestamp": "2026-09-01T10:00:00Z",
    }
    deep = dict(good, messageId="m2", properties={"x": "PLACEHOLDER"})
    deep_line = json.dumps(deep).replace('"PLACEHOLDER"', "[" * 200_000 + "]" * 200_000)
    source = tmp_path / "segment.jsonl"
    source.write_text("\n".join([json.dumps(good), deep_line, json.dumps(dict(good, messageId="m3"))]) + "\n")
    summary = import_files("segment", [source], landing=tmp_path / "landing")
    assert [e["event_id"] for e in imported(summary)] == ["m1", "m3"]
    assert [(r["line"], r["reason"]) for r in rejects(summary)] == [(2, "malformed JSON: nested too deeply")]


def test_snowplow_values_of_an_unexpected_type_reject_the_row(tmp_path: Path) -> None:
    header = "event_id,collector_tstamp,event,domain_userid,unstruct_event"
    sd = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", "data": {"schema": 5}}
    odd = json.dumps(sd).replace('"', '""')
    source = tmp_path / "snowplow.csv"
    source.write_text(
        f"{header}\n"
        "e1,2026-09-01 10:00:00,page_view,d1,\n"
        f'e2,2026-09-01 10:00:01,unstruct,d1,"{odd}"\n'
        "e3,2026-09-01 10:00:02,page_view,d1,\n"
    )
    summary = import_files("snowplow", [source], landing=tmp_path / "landing")
    assert [e["event_id"] for e in imported(summary)] == ["e1", "e3"]
    [reject] = rejects(summary)
    assert reject["line"] == 3 and reject["reason"].startswith("cannot convert: TypeError")


def test_contract_csv_timestamps_beyond_the_calendar_reject_the_row(tmp_path: Path) -> None:
    source = tmp_path / "contract.csv"
    source.write_text(
        "event_id,event_type,event_time,anonymous_id\n"
        "c1,page_view,2026-09-01T10:00:00Z,a\n"
        "c2,page_view,9999-12-31T23:00:00-05:00,a\n"  # 10000-01-01 in UTC
        "c3,page_view,2026-09-01T10:00:01Z,a\n"
    )
    summary = import_files("csv", [source], landing=tmp_path / "landing")
    assert [e["event_id"] for e in imported(summary)] == ["c1", "c3"]
    assert [r["line"] for r in rejects(summary)] == [3]


def test_mapped_epoch_and_parquet_timestamps_out_of_range_reject_the_row(tmp_path: Path) -> None:
    doc = {
        "fields": {
            "event_id": "id",
            "event_time": {"column": "ts", "format": "epoch_ms"},
            "event_type": {"value": "purchase"},
            "user_id": "user",
        }
    }
    mapping = parse_mapping(doc, tmp_path / "m.yaml")
    source = tmp_path / "orders.csv"
    source.write_text("id,ts,user\no1,1659304800025,u1\no2,1e30,u1\no3,1659304900000,u2\n")
    summary = import_files("mapped", [source], landing=tmp_path / "csv-landing", mapping=mapping)
    assert [e["event_id"] for e in imported(summary)] == ["o1", "o3"]
    assert [(r["line"], r["reason"]) for r in rejects(summary)] == [
        (3, "event_time is not a timestamp (epoch_ms): 1e30")
    ]

    # A Parquet timestamp Python's datetime cannot hold (year 33658): that row alone is rejected.
    doc["fields"]["event_time"] = "ts"
    mapping = parse_mapping(doc, tmp_path / "m.yaml")
    seconds = pa.array([1659304800, 10**12, 1659304900], pa.int64()).cast(pa.timestamp("s"))
    table = pa.table({"id": ["o1", "o2", "o3"], "ts": seconds, "user": ["u1", "u1", "u2"]})
    pq.write_table(table, tmp_path / "orders.parquet")
    summary = import_files("mapped", [tmp_path / "orders.parquet"], landing=tmp_path / "pq-landing", mapping=mapping)
    assert [e["event_id"] for e in imported(summary)] == ["o1", "o3"]
    [reject] = rejects(summary)
    assert reject["line"] == 2 and reject["reason"].startswith("cannot read the row")
    assert '"id": "o2"' in reject["raw"]
    assert datetime.fromisoformat(imported(summary)[0]["event_time"]).year == 2022


def test_a_large_imported_day_is_written_in_parts_under_the_ingestion_caps(tmp_path: Path) -> None:
    """A day of more than PART_EVENTS events is written in several files, each under ingestion's max_file_lines;
    together they ingest as the one file would; a re-import in fewer parts removes the parts it no longer
    writes."""
    import duckdb

    from pulse.importers import converter_for
    from pulse.importers.common import Source, import_file
    from pulse.ingest.raw_events import IngestOptions, ingest_days, landed_days

    source = tmp_path / "events.jsonl"
    times = ["2026-09-01T10:00:00Z"] * 5 + ["2026-09-02T10:00:00Z"]
    source.write_text(
        "".join(
            json.dumps({"event_id": f"e{i}", "event_type": "page_view", "event_time": t, "anonymous_id": "a"}) + "\n"
            for i, t in enumerate(times)
        )
    )
    landing = tmp_path / "landing"
    result = import_file("jsonl", Source(source), converter_for("jsonl"), landing, part_events=2)
    names = sorted(str(p.relative_to(landing / "events")) for p in result.outputs)
    stem = result.stem
    assert names == [
        f"2026-09-01/{stem}.jsonl.gz",
        f"2026-09-01/{stem}.part2.jsonl.gz",
        f"2026-09-01/{stem}.part3.jsonl.gz",
        f"2026-09-02/{stem}.jsonl.gz",
    ]
    assert [len(gzip.decompress(p.read_bytes()).splitlines()) for p in sorted(result.outputs)] == [2, 2, 1, 1]
    assert result.days == sorted({p for p in result.days})  # each day once
    con = duckdb.connect()
    days = ingest_days(con, landing / "events", landed_days(landing / "events"), IngestOptions(max_file_lines=2))
    assert [(r.day.isoformat(), r.accepted) for r in days] == [("2026-09-01", 5), ("2026-09-02", 1)]

    again = import_file("jsonl", Source(source), converter_for("jsonl"), landing)  # default parts: one per day
    assert sorted(p.name for p in (landing / "events" / "2026-09-01").iterdir()) == [f"{stem}.jsonl.gz"]
    assert len(again.outputs) == 2


def test_a_lone_surrogate_escape_rejects_the_row_and_a_declared_import_keeps_it_escaped(tmp_path: Path) -> None:
    from pulse.importers import ConsentDeclaration

    good = {
        "messageId": "m1",
        "type": "track",
        "event": "Signed Up",
        "userId": "u1",
        "timestamp": "2026-09-01T10:00:00Z",
    }
    odd = json.dumps(dict(good, messageId="m2", properties={"title": "\ud800"}))  # valid JSON: "\ud800"
    source = tmp_path / "segment.jsonl"
    source.write_text("\n".join([json.dumps(good), odd, json.dumps(dict(good, messageId="m3"))]) + "\n")
    summary = import_files("segment", [source], landing=tmp_path / "landing")
    assert [e["event_id"] for e in imported(summary)] == ["m1", "m3"]
    [reject] = rejects(summary)
    assert reject["line"] == 2 and "lone UTF-16 surrogate" in reject["reason"]

    # a contract line is copied as it is (ingestion judges it), also when a consent declaration rewrites it
    contract = tmp_path / "contract.jsonl"
    line = {"event_id": "c1", "event_type": "page_view", "event_time": "2026-09-01T10:00:00Z", "anonymous_id": "a"}
    contract.write_text(json.dumps(dict(line, page_title="\ud800", consent_analytics=True)) + "\n")
    declaration = ConsentDeclaration.parse("personalization", "form v3")
    summary = import_files("jsonl", [contract], landing=tmp_path / "declared", declaration=declaration)
    [event] = imported(summary)
    assert event["page_title"] == "\ud800" and event["consent_personalization"] is True


def test_a_csv_record_the_csv_module_cannot_parse_rejects_that_record(tmp_path: Path, monkeypatch) -> None:
    import csv

    import pulse.importers.common as common

    monkeypatch.setattr(common, "MAX_LINE_BYTES", 100)
    limit = csv.field_size_limit(100)
    try:
        source = tmp_path / "contract.csv"
        source.write_text(
            "event_id,event_type,event_time,anonymous_id,page_title\n"
            "c1,page_view,2026-09-01T10:00:00Z,a,short\n"
            f"c2,page_view,2026-09-01T10:00:00Z,a,{'x' * 500}\n"
            "c3,page_view,2026-09-01T10:00:01Z,a,short\n"
        )
        summary = import_files("csv", [source], landing=tmp_path / "landing")
    finally:
        csv.field_size_limit(limit)
    assert [e["event_id"] for e in imported(summary)] == ["c1", "c3"]
    [reject] = rejects(summary)
    assert reject["line"] == 3 and reject["reason"].startswith(
        "CSV record cannot be parsed: field larger than field limit"
    )
