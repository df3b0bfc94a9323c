"""`pulse import`: every format into the contract, through ingestion, against Snowplow's own outputs."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pulse.cli.commands import main
from pulse.core.contract import FIELDS, is_known_event_type
from pulse.importers import FORMATS, ImportSummary, MappingError, SourceError, import_files
from pulse.importers.common import Source, import_file, parse_timestamp
from pulse.importers.mapped import load_mapping, parse_mapping, shipped_mappings
from pulse.importers.snowplow import CANONICAL_FIELDS
from pulse.ingest.raw_events import ingest_day, landed_days

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WEB = FIXTURES / "snowplow-web"
WEB_EVENTS = WEB / "source" / "snowplow_web_events.csv"
ECOM = FIXTURES / "snowplow-ecommerce"
ECOM_EVENTS = ECOM / "source" / "snowplow_ecommerce_events.csv"
OTTO = FIXTURES / "otto-sample" / "train.jsonl"
SEGMENT = FIXTURES / "segment" / "sample.jsonl"
REES46 = FIXTURES / "mapped" / "rees46_sample.csv"
PURCHASE_LOG = FIXTURES / "mapped" / "purchase_log_sample.csv"
WEB_PAGE_COLUMN = "contexts_com_snowplowanalytics_snowplow_web_page_1_0_0"
CONTRACT_FIELDS = {f.name for f in FIELDS}


# ---------------------------------------------------------------------------------------------- helpers


def read_events(summary: ImportSummary) -> list[dict]:
    """Every event the import wrote, in file order (days sorted)."""
    events = []
    for path in sorted(summary.outputs):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            events += [json.loads(line) for line in fh]
    return events


def ingest_all(landing: Path) -> duckdb.DuckDBPyConnection:
    """Ingest every landing day the way the raw_events asset does; assert nothing was quarantined."""
    con = duckdb.connect()
    days = landed_days(landing / "events")
    assert days
    for day in days:
        result = ingest_day(con, landing / "events", day)
        assert result.reconciles
        assert result.quarantined == 0, (day, result.reasons)
    return con


def deduplicated(con: duckdb.DuckDBPyConnection) -> str:
    """raw.events with one row per event_id (the earliest received), as the staging model keeps it."""
    return """(select * from raw.events
               qualify row_number() over (partition by event_id order by received_at nulls last, source_line) = 1)"""


def tree(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def rejects_of(summary: ImportSummary) -> list[dict]:
    out = []
    for result in summary.files:
        if result.rejected_file is not None:
            out += [json.loads(line) for line in result.rejected_file.read_text().splitlines()]
    return out


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def contract_event(**overrides: object) -> dict:
    base = {
        "event_id": "e1",
        "event_type": "page_view",
        "event_time": "2026-09-01T10:00:00.250Z",
        "anonymous_id": "a1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


# ---------------------------------------------------------------------------------------------- common


def test_formats_and_shipped_mappings() -> None:
    assert FORMATS == ("jsonl", "csv", "parquet", "snowplow", "segment", "otto", "mapped")
    assert shipped_mappings() == ["purchase_log", "rees46"]
    for name in shipped_mappings():
        load_mapping(name)  # the shipped examples are valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-03 21:27:32.696", datetime(2021, 3, 3, 21, 27, 32, 696000, tzinfo=UTC)),
        ("2022-12-22 13:25:48.718000+00:00", datetime(2022, 12, 22, 13, 25, 48, 718000, tzinfo=UTC)),
        ("2019-10-01 00:00:00 UTC", datetime(2019, 10, 1, tzinfo=UTC)),
        ("2026-09-02T09:15:00+02:00", datetime(2026, 9, 2, 7, 15, tzinfo=UTC)),
        ("2026-09-02T09:15:00.123456789Z", datetime(2026, 9, 2, 9, 15, 0, 123456, tzinfo=UTC)),
        ("2026-09-02T09:15:00-0130", datetime(2026, 9, 2, 10, 45, tzinfo=UTC)),
        ("yesterday", None),
        ("2026-13-01 00:00:00", None),
    ],
)
def test_parse_timestamp(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_output_layout_names_and_gzip_are_deterministic(tmp_path: Path) -> None:
    summary = import_files("otto", [OTTO], tmp_path)
    stem = summary.files[0].stem
    assert stem.startswith("import-otto-") and len(stem) == len("import-otto-") + 12
    for path in summary.outputs:
        assert path.name == f"{stem}.jsonl.gz"
        assert path.parent.parent == tmp_path / "events"
        date.fromisoformat(path.parent.name)
        assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert not (tmp_path / ".import-staging").exists()


def test_import_twice_is_idempotent(tmp_path: Path) -> None:
    first = import_files("segment", [SEGMENT], tmp_path)
    before = tree(tmp_path)
    second = import_files("segment", [SEGMENT], tmp_path)
    assert tree(tmp_path) == before
    assert (first.rows_read, first.events_written, first.rejected) == (22, 15, 7)
    assert (second.rows_read, second.events_written, second.rejected) == (22, 15, 7)
    assert sorted(first.outputs) == sorted(second.outputs)
    # The same bytes under another path are the same source: same names, nothing added.
    copy = tmp_path / "elsewhere" / "copy.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(SEGMENT.read_bytes())
    third = import_files("segment", [copy], tmp_path)
    assert sorted(third.outputs) == sorted(first.outputs)
    assert len(list((tmp_path / "events").rglob("*.jsonl.gz"))) == len(first.outputs)
    # Each day's file then ingests to the same rows.
    con = ingest_all(tmp_path)
    assert con.execute("select count(*), count(distinct event_id) from raw.events").fetchall() == [(15, 15)]


def test_reimport_removes_days_it_no_longer_writes(tmp_path: Path) -> None:
    summary = import_files("otto", [OTTO], tmp_path)
    stale = tmp_path / "events" / "2001-01-01" / f"{summary.files[0].stem}.jsonl.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    other = tmp_path / "events" / "2001-01-01" / "someone-else.jsonl"
    other.write_text("")
    import_files("otto", [OTTO], tmp_path)
    assert not stale.exists()
    assert other.exists()  # files of other sources are left alone


def test_small_buffer_writes_several_gzip_members_with_the_same_lines(tmp_path: Path) -> None:
    big = import_file("otto", Source(OTTO), _converter("otto"), tmp_path / "a")
    small = import_file("otto", Source(OTTO), _converter("otto"), tmp_path / "b", buffer_bytes=2_000)
    assert [p.relative_to(tmp_path / "a") for p in big.outputs] == [
        p.relative_to(tmp_path / "b") for p in small.outputs
    ]
    for a, b in zip(big.outputs, small.outputs, strict=True):
        assert gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())
    assert any(p.read_bytes().count(b"\x1f\x8b\x08") > 1 for p in small.outputs)


def _converter(fmt: str):
    from pulse.importers import converter_for

    return converter_for(fmt)


def test_gzip_source_gives_the_same_events(tmp_path: Path) -> None:
    gz = tmp_path / "train.jsonl.gz"
    gz.write_bytes(gzip.compress(OTTO.read_bytes()))
    plain = import_files("otto", [OTTO], tmp_path / "plain")
    zipped = import_files("otto", [gz], tmp_path / "zipped")
    assert read_events(plain) == read_events(zipped)
    assert plain.files[0].stem != zipped.files[0].stem  # named after the bytes as stored


def test_unreadable_sources_raise_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.jsonl"):
        import_files("otto", [tmp_path / "nope.jsonl"], tmp_path)
    fake_gz = tmp_path / "events.jsonl.gz"
    fake_gz.write_text('{"session": 1, "events": []}\n')
    with pytest.raises(SourceError, match=r"events\.jsonl\.gz: not a gzip file"):
        import_files("otto", [fake_gz], tmp_path)
    broken_gz = tmp_path / "broken.jsonl.gz"
    broken_gz.write_bytes(gzip.compress(OTTO.read_bytes())[:500])
    with pytest.raises(SourceError, match="broken.jsonl.gz"):
        import_files("otto", [broken_gz], tmp_path)
    fake_parquet = tmp_path / "events.parquet"
    fake_parquet.write_text("event_id,event_time\n")
    with pytest.raises(SourceError, match=r"events\.parquet: not a Parquet file"):
        import_files("parquet", [fake_parquet], tmp_path)
    with pytest.raises(SourceError, match=r"train\.jsonl: not Snowplow enriched events"):
        import_files("snowplow", [OTTO], tmp_path)
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("event_id,event_type\ne1,page_view\n")
    with pytest.raises(SourceError, match="no_time.csv: the CSV header has no event_time column"):
        import_files("csv", [no_time], tmp_path)
    # Nothing was written by the failed imports, not even staging leftovers.
    assert not (tmp_path / "events").exists()
    assert not (tmp_path / ".import-staging").exists()


# ---------------------------------------------------------------------------------------------- contract-shaped


def test_jsonl_is_copied_into_the_day_of_its_event_time(tmp_path: Path) -> None:
    lines = [
        json.dumps(contract_event()),
        json.dumps(contract_event(event_id="e2", event_time="2026-09-02T01:30:00+02:00")),  # 09-01 in UTC
        json.dumps(contract_event(event_id="e3", event_time="2026-09-03T00:00:00Z", price=12.5)),
        "",
        "{broken",
        json.dumps(contract_event(event_id="e4", event_time="next week")),
        "[1, 2]",
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    summary = import_files("jsonl", [source], tmp_path / "landing")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (7, 3, 4)
    assert summary.days == [date(2026, 9, 1), date(2026, 9, 3)]
    first_day = [p for p in summary.outputs if p.parent.name == "2026-09-01"][0]
    assert gzip.decompress(first_day.read_bytes()).decode().splitlines() == lines[:2]  # copied as they were
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (4, "empty line"),
        (5, "malformed JSON"),
        (6, "event_time is not an RFC 3339 timestamp: next week"),
        (7, "not a JSON object: array"),
    ]
    ingest_all(tmp_path / "landing")


def test_csv_rows_become_typed_contract_json(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "event_id,event_type,event_time,anonymous_id,user_id,price,quantity,consent_analytics,properties,color\n"
        'e1,add_to_cart,2026-09-01T10:00:00Z,a1,,12.50,2,true,"{""k"": 1}",red\n'
        "e2,page_view,2026-09-01T11:00:00Z,a1,u1,,,,,\n"
        "e3,add_to_cart,2026-09-01T12:00:00Z,a1,,cheap,1,,,\n"
        "e4,page_view,2026-09-01T12:00:00Z\n"
    )
    summary = import_files("csv", [source], tmp_path / "landing")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (4, 2, 2)
    e1, e2 = read_events(summary)
    assert e1 == {
        "event_id": "e1",
        "event_type": "add_to_cart",
        "event_time": "2026-09-01T10:00:00Z",
        "anonymous_id": "a1",
        "price": 12.5,
        "quantity": 2,
        "consent_analytics": True,
        "properties": {"k": 1, "color": "red"},
    }
    assert e2 == {
        "event_id": "e2",
        "event_type": "page_view",
        "event_time": "2026-09-01T11:00:00Z",
        "anonymous_id": "a1",
        "user_id": "u1",
    }  # empty cells are absent
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (4, "price is not a number: cheap"),
        (5, "CSV row has 3 columns, header has 10"),
    ]
    con = ingest_all(tmp_path / "landing")
    assert con.execute("select price, quantity, properties from raw.events where event_id = 'e1'").fetchall() == [
        (12.5, 2, '{"k":1,"color":"red"}')
    ]


def test_parquet_typed_timestamps_become_rfc3339_utc(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_id": ["p1", "p2", "p3"],
            "event_type": ["purchase", "page_view", "page_view"],
            "event_time": pa.array(
                [datetime(2026, 9, 1, 10, 0, 0, 250000), datetime(2026, 9, 2, 23, 30), None], pa.timestamp("us")
            ),
            "received_at": pa.array(
                [datetime(2026, 9, 1, 12, 0, tzinfo=UTC), None, None], pa.timestamp("ms", tz="Europe/Berlin")
            ),
            "user_id": ["u1", "u2", "u3"],
            "revenue": [19.99, None, None],
            "quantity": pa.array([3, None, None], pa.int64()),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    summary = import_files("parquet", [source], tmp_path / "landing")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (3, 2, 1)
    p1, p2 = read_events(summary)
    assert p1 == {
        "event_id": "p1",
        "event_type": "purchase",
        "event_time": "2026-09-01T10:00:00.250Z",
        "received_at": "2026-09-01T12:00:00Z",
        "user_id": "u1",
        "revenue": 19.99,
        "quantity": 3,
    }
    assert p2["event_time"] == "2026-09-02T23:30:00Z"
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [(3, "missing required field event_time")]
    ingest_all(tmp_path / "landing")


# ---------------------------------------------------------------------------------------------- OTTO


def test_otto_sessions_round_trip(tmp_path: Path) -> None:
    summary = import_files("otto", [OTTO], tmp_path)
    assert (summary.rows_read, summary.events_written, summary.rejected) == (20, 862, 0)
    assert summary.event_types == {"product_view": 800, "add_to_cart": 52, "purchase": 10}
    expected: dict[str, Counter] = {}
    for line in OTTO.read_text().splitlines():
        session = json.loads(line)
        expected[f"otto-{session['session']}"] = Counter(e["type"] for e in session["events"])
    con = ingest_all(tmp_path)
    got: dict[str, Counter] = defaultdict(Counter)
    names = {"product_view": "clicks", "add_to_cart": "carts", "purchase": "orders"}
    rows = con.execute("select session_id, anonymous_id, event_type, count(*) from raw.events group by all")
    for session_id, anonymous_id, event_type, n in rows.fetchall():
        assert anonymous_id == session_id
        got[session_id][names[event_type]] = n
    assert got == expected
    assert con.execute("select count(distinct event_id) from raw.events").fetchall() == [(862,)]
    first = json.loads(OTTO.read_text().splitlines()[0])
    row = con.execute(
        "select event_time, product_id from raw.events where event_id = ?", [f"otto-{first['session']}-0"]
    )
    event_time, product_id = row.fetchall()[0]
    assert product_id == str(first["events"][0]["aid"])
    assert event_time == datetime(2022, 7, 31, 22, 0, 0, 25000)  # ts 1659304800025 ms, stored as UTC


def test_otto_rejects_single_events_and_keeps_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "sessions.jsonl"
    source.write_text(
        '{"session": 7, "events": [{"aid": 1, "ts": 1659304800025, "type": "clicks"},'
        ' {"aid": 2, "ts": 1659304800999, "type": "wishes"}, {"aid": 3, "ts": 1659304801, "type": "orders"}]}\n'
        '{"session": 8, "events": "none"}\n'
    )
    summary = import_files("otto", [source], tmp_path / "landing")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (2, 2, 2)
    events = read_events(summary)
    assert [e["event_id"] for e in events] == ["otto-7-0", "otto-7-2"]
    assert events[1]["event_time"] == "2022-07-31T22:00:01Z"  # a 10-digit ts is in seconds
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (1, "events[1]: unknown type: wishes"),
        (2, "events is not a list"),
    ]


# ---------------------------------------------------------------------------------------------- Snowplow web


def _page_view_id(text: str) -> str | None:
    value = json.loads(text) if text else None
    while isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]
    return value[0].get("id") if value else None


def test_snowplow_web_round_trip(tmp_path: Path) -> None:
    summary = import_files("snowplow", [WEB_EVENTS], tmp_path)
    assert (summary.rows_read, summary.events_written, summary.rejected) == (160, 160, 0)
    types = summary.event_types
    assert types["page_view"] == 50
    assert types["page_ping"] == 8
    assert types["click"] == 10
    assert types["custom.consent_preferences"] == 32 and types["custom.cmp_visible"] == 33
    assert all(is_known_event_type(t) for t in types)
    events = read_events(summary)
    assert all(set(e) <= CONTRACT_FIELDS for e in events)
    by_id = defaultdict(list)
    for e in events:
        by_id[e["event_id"]].append(e)
    source = csv_rows(WEB_EVENTS)
    double_nested = 0
    for row in source:  # every event with a web_page entity, page views and pings included
        want = _page_view_id(row[WEB_PAGE_COLUMN])
        got = {e.get("page_view_id") for e in by_id[row["event_id"]]}
        assert want in got, (row["event_id"], want, got)
        double_nested += row[WEB_PAGE_COLUMN].startswith("[[") and want is not None
    assert double_nested == 65  # the double-nested form [[{"id": ...}]] is exercised
    page_views = [e for e in events if e["event_type"] == "page_view"]
    assert sum(1 for e in page_views if "page_view_id" in e) == 49  # the 50th has {"id": null} in the source
    assert all("page_view_id" in e for e in events if e["event_type"] == "page_ping")
    # Every page view Snowplow's model outputs is among the imported page views.
    expected_ids = {r["page_view_id"] for r in csv_rows(WEB / "expected" / "snowplow_web_page_views_expected.csv")}
    assert len(expected_ids) == 43
    assert expected_ids <= {e.get("page_view_id") for e in page_views}
    ingest_all(tmp_path)


def test_snowplow_fields_and_event_time_choice(tmp_path: Path) -> None:
    summary = import_files("snowplow", [WEB_EVENTS], tmp_path)
    events = {(e["event_id"], e["event_time"], e["received_at"]): e for e in read_events(summary)}
    for row in csv_rows(WEB_EVENTS):
        # event_time is the device's time; received_at the collector's.
        e = events[
            (row["event_id"], parse_and_format(row["dvce_created_tstamp"]), parse_and_format(row["collector_tstamp"]))
        ]
        assert e.get("anonymous_id") == (row["domain_userid"] or None)
        assert e.get("user_id") == (row["user_id"] or None)
        assert e.get("session_id") == (row["domain_sessionid"] or None)
        assert e.get("page_url") == (row["page_url"] or None)
        assert e.get("referrer") == (row["page_referrer"] or None)
        assert e.get("utm_source") == (row["mkt_source"] or None)
        assert e.get("utm_campaign") == (row["mkt_campaign"] or None)
        assert "scroll_depth_pct" not in e
        if row["event"] == "page_ping":
            assert e["scroll_depth_px"] == max(int(row["pp_yoffset_max"]), 0)
            assert e["doc_height_px"] == int(row["doc_height"])
            assert e["viewport_height_px"] == int(row["br_viewheight"])
        if row["event"] == "struct":
            assert e["event_type"] == "custom.login"
            assert e["properties"]["se_category"] == row["se_category"]


def parse_and_format(text: str) -> str:
    from pulse.importers.common import format_timestamp

    parsed = parse_timestamp(text)
    assert parsed is not None
    return format_timestamp(parsed)


# ---------------------------------------------------------------------------------------------- Snowplow ecommerce


def test_snowplow_ecommerce_sessions_match_snowplow_expected(tmp_path: Path) -> None:
    summary = import_files("snowplow", [ECOM_EVENTS], tmp_path)
    assert (summary.rows_read, summary.events_written, summary.rejected) == (834, 833, 1)
    # The one reject: app "skip-me", no domain_userid and no user_id (Snowplow's test filters that app out).
    (only,) = rejects_of(summary)
    assert only["line"] == 835 and only["reason"].startswith("missing identity")
    assert only["raw"].startswith("skip-me,")
    types = summary.event_types
    assert (types["add_to_cart"], types["remove_from_cart"], types["product_view"]) == (38, 15, 179)
    assert types["purchase"] == 15 and types["checkout"] == 38
    con = ingest_all(tmp_path)
    got = {
        session: (int(adds), float(revenue), int(purchases))
        for session, adds, revenue, purchases in con.execute(
            f"""select session_id, count_if(event_type = 'add_to_cart'),
                  coalesce(sum(revenue) filter (where event_type = 'purchase'), 0),
                  count_if(event_type = 'purchase')
                from {deduplicated(con)} group by all"""
        ).fetchall()
    }
    expected = csv_rows(ECOM / "expected" / "snowplow_ecommerce_sessions_expected.csv")
    assert len(expected) == 63
    mismatches = []
    for row in expected:
        adds, revenue, purchases = got.get(row["domain_sessionid"], (0, 0.0, 0))
        want = (
            int(row["number_add_to_carts"] or 0),
            float(row["total_transaction_revenue"] or 0),
            int(row["total_number_transactions"] or 0),
        )
        if (adds, purchases) != (want[0], want[2]) or abs(revenue - want[1]) > 1e-6:
            mismatches.append((row["domain_sessionid"], want, (adds, revenue, purchases)))
    assert mismatches == []


def test_snowplow_ecommerce_one_event_per_action_and_one_revenue_per_transaction(tmp_path: Path) -> None:
    summary = import_files("snowplow", [ECOM_EVENTS], tmp_path)
    events = read_events(summary)
    # An add_to_cart with two products is one event: the first product on top, both in properties.
    multi = [e for e in events if e["event_type"] == "add_to_cart" and "products" in e.get("properties", {})]
    assert len(multi) == 11
    for e in multi:
        assert e["product_id"] == e["properties"]["products"][0]["product_id"]
        assert len(e["properties"]["products"]) == 2
        # what the add moved: both products' prices (the fixture sends no quantities)
        assert e["value"] == pytest.approx(sum(p["price"] for p in e["properties"]["products"]))
    carts = [e for e in events if e["event_type"] in ("add_to_cart", "remove_from_cart")]
    assert len(carts) == 53 and all("cart_value" in e and "value" in e for e in carts)
    assert sum(e["cart_value"] == 0 for e in carts) >= 2  # carts emptied by removals
    # The transaction sent twice (TtlZ3b) is two copies of one purchase event: ingestion keeps one.
    tt = [e for e in events if e.get("order_id") == "TtlZ3b"]
    assert [e["event_id"] for e in tt] == ["snowplow-transaction-TtlZ3b"] * 2
    assert sorted(e["properties"]["snowplow_event_id"] for e in tt) == [
        "a64a0af6-639e-4735-b06c-7cc4e2ca0c17",
        "b64a0af6-639e-4735-b06c-7cc4e2ca0c17",
    ]
    purchases = [e for e in events if e["event_type"] == "purchase"]
    two_products = [e for e in purchases if len(e.get("properties", {}).get("products", [])) == 2]
    assert two_products and all(e["revenue"] == float(e["revenue"]) for e in two_products)
    revenue = {e["order_id"]: e["revenue"] for e in purchases}
    for row in csv_rows(ECOM / "expected" / "snowplow_ecommerce_transaction_interactions_expected.csv"):
        assert revenue[row["transaction_id"]] == pytest.approx(float(row["transaction_revenue"]))
    # Mobile events: session and device from the client_session entity, page view from the screen entity.
    mobile = [e for e in events if e.get("properties", {}).get("app_id") == "DemoID"]
    assert len(mobile) == 10
    assert {e["session_id"] for e in mobile} == {"c04bddd7-81ad-4f02-a468-f53a47079637"}
    assert {e.get("page_view_id") for e in mobile} == {"d40fc217-6e92-4447-adf0-52d975788391"}
    # An ecommerce action without a type is kept, as a custom event.
    assert summary.event_types["custom.snowplow_ecommerce_action"] == 410
    assert summary.event_types["custom.list_view"] == 100


# Vendor / name / version of the entity columns of the two fixture files, for the self-describing form.
ENTITY_SCHEMAS = {
    WEB_PAGE_COLUMN: "com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
    "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1_0_0": (
        "com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0"
    ),
    "contexts_com_snowplowanalytics_snowplow_ecommerce_cart_1_0_0": (
        "com.snowplowanalytics.snowplow.ecommerce/cart/jsonschema/1-0-0"
    ),
    "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1_0_0": (
        "com.snowplowanalytics.snowplow.ecommerce/transaction/jsonschema/1-0-0"
    ),
    "contexts_com_snowplowanalytics_snowplow_ecommerce_checkout_step_1_0_0": (
        "com.snowplowanalytics.snowplow.ecommerce/checkout_step/jsonschema/1-0-0"
    ),
    "contexts_com_snowplowanalytics_snowplow_client_session_1_0_1": (
        "com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-1"
    ),
    "contexts_com_snowplowanalytics_mobile_screen_1_0_0": "com.snowplowanalytics.mobile/screen/jsonschema/1-0-0",
}
ACTION_COLUMN = "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1_0_0"
ACTION_SCHEMA = "com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-0"


def enriched_tsv_line(row: dict[str, str]) -> str:
    """A warehouse-export row as the enriched stream writes it: 131 fields, entities self-describing."""
    contexts = []
    for column, schema in ENTITY_SCHEMAS.items():
        value = json.loads(row[column]) if row.get(column) else []
        while isinstance(value, list) and value and isinstance(value[0], list):
            value = value[0]
        contexts += [{"schema": f"iglu:{schema}", "data": item} for item in value]
    fields = {name: row.get(name, "") for name in CANONICAL_FIELDS}
    if contexts:
        fields["contexts"] = json.dumps(
            {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": contexts}
        )
    if row.get(ACTION_COLUMN):
        fields["unstruct_event"] = json.dumps(
            {
                "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                "data": {"schema": f"iglu:{ACTION_SCHEMA}", "data": json.loads(row[ACTION_COLUMN])},
            }
        )
    return "\t".join(fields.values())


@pytest.mark.parametrize("with_header", [False, True])
def test_snowplow_enriched_tsv_gives_the_same_events_as_the_csv(tmp_path: Path, with_header: bool) -> None:
    rows = csv_rows(ECOM_EVENTS)[:300] + csv_rows(WEB_EVENTS)
    rows = [r for r in rows if "\t" not in "".join(r.values())]
    lines = [enriched_tsv_line(r) for r in rows]
    if with_header:
        lines.insert(0, "\t".join(CANONICAL_FIELDS))
    lines.append("too\tfew\tfields")
    tsv = tmp_path / "enriched.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    from_tsv = import_files("snowplow", [tsv], tmp_path / "tsv")
    assert from_tsv.rejected == 1
    (bad,) = rejects_of(from_tsv)
    assert bad["line"] == len(lines) and bad["reason"].startswith("TSV row has 3 columns")
    # The same rows as a CSV export with shredded columns.
    csv_path = tmp_path / "export.csv"
    columns = list(dict.fromkeys(list(csv_rows(ECOM_EVENTS)[0]) + list(csv_rows(WEB_EVENTS)[0])))
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    from_csv = import_files("snowplow", [csv_path], tmp_path / "csv")

    def comparable(summary: ImportSummary) -> list[str]:
        # Custom events keep the unstruct payload of a column the TSV conversion above does not carry (and the
        # consent flags a consent_preferences payload gives).
        out = []
        for e in read_events(summary):
            if e["event_type"].startswith("custom.") and not e["event_type"].startswith("custom.list"):
                e.get("properties", {}).pop("data", None)
                e.pop("consent_analytics", None)
                e.pop("consent_personalization", None)
            out.append(json.dumps(e, sort_keys=True))
        return sorted(out)

    no_identity = sum(1 for r in rows if r["app_id"] == "skip-me")  # no domain_userid, no user_id
    assert from_csv.events_written == from_tsv.events_written == len(rows) - no_identity
    assert comparable(from_tsv) == comparable(from_csv)


# ---------------------------------------------------------------------------------------------- Segment


def test_segment_spec_events(tmp_path: Path) -> None:
    summary = import_files("segment", [SEGMENT], tmp_path)
    assert (summary.rows_read, summary.events_written, summary.rejected) == (22, 15, 7)
    events = {e["event_id"]: e for e in read_events(summary)}
    assert {k: v["event_type"] for k, v in events.items()} == {
        "ajs-next-1a2b3c4d-0001": "page_view",
        "ajs-next-1a2b3c4d-0002": "search",
        "ajs-next-1a2b3c4d-0003": "product_view",
        "ajs-next-1a2b3c4d-0004": "add_to_cart",
        "ajs-next-1a2b3c4d-0005": "remove_from_cart",
        "ajs-next-1a2b3c4d-0006": "identify",
        "ajs-next-1a2b3c4d-0007": "checkout",
        "ajs-next-1a2b3c4d-0008": "purchase",
        "srv-7f00-0009": "purchase",
        "ios-4c1d-0010": "page_view",
        "ajs-next-1a2b3c4d-0011": "custom.newsletter_signup",
        "ajs-next-1a2b3c4d-0012": "custom.video_playback_started",
        "ajs-next-1a2b3c4d-0013": "identify",
        "ajs-next-1a2b3c4d-0014": "custom.group",
        "ajs-next-1a2b3c4d-0015": "product_view",
    }
    page = events["ajs-next-1a2b3c4d-0001"]
    assert page["event_time"] == "2026-09-01T18:03:07.412Z"
    assert page["received_at"] == "2026-09-01T18:03:07.690Z"
    assert page["anonymous_id"] == "a-5e1f"
    assert page["page_url"] == "https://shop.example/?utm_source=newsletter"
    assert page["page_title"] == "Shop Example"
    assert page["referrer"] == "https://www.google.com/"
    assert (page["utm_source"], page["utm_medium"], page["utm_campaign"]) == ("newsletter", "email", "autumn")
    assert events["ajs-next-1a2b3c4d-0002"]["search_query"] == "running shoes"
    added = events["ajs-next-1a2b3c4d-0004"]
    assert (added["product_id"], added["category"], added["price"], added["quantity"]) == ("p-231", "shoes", 89.9, 2)
    identify = events["ajs-next-1a2b3c4d-0006"]
    assert (identify["user_id"], identify["anonymous_id"]) == ("u-1042", "a-5e1f")
    assert "properties" not in identify  # traits (email, name) are not copied
    order = events["ajs-next-1a2b3c4d-0008"]
    assert (order["order_id"], order["revenue"], order["quantity"]) == ("o-5531", 89.9, 1)  # revenue before total
    server_order = events["srv-7f00-0009"]
    assert (server_order["revenue"], server_order["quantity"]) == (42.5, 3)  # no revenue: total
    assert server_order["event_time"] == "2026-09-02T07:15:00Z"  # +02:00 -> UTC
    alias = events["ajs-next-1a2b3c4d-0013"]
    assert (alias["user_id"], alias["anonymous_id"]) == ("u-1042", "a-9999")  # previousId
    assert events["ajs-next-1a2b3c4d-0015"]["event_time"] == "2026-09-02T12:00:00Z"  # originalTimestamp
    assert events["ajs-next-1a2b3c4d-0015"]["product_id"] == "p-77" and events["ajs-next-1a2b3c4d-0015"]["price"] == 9.9
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (16, "price is not a number: cheap"),
        (17, "missing messageId"),
        (18, "missing identity: neither userId nor anonymousId"),
        (19, "timestamp is not a timestamp: yesterday"),
        (20, "malformed JSON"),
        (21, "track message without an event name"),
        (22, "unknown Segment message type: capture"),
    ]
    assert summary.first_rejects[0] == f"{SEGMENT}:16: price is not a number: cheap"
    for record in rejects_of(summary):
        assert record["source_file"] == str(SEGMENT)
        assert record["raw"] == SEGMENT.read_text().splitlines()[record["line"] - 1]
    ingest_all(tmp_path)


# ---------------------------------------------------------------------------------------------- mapped


def test_mapped_rees46(tmp_path: Path) -> None:
    summary = import_files("mapped", [REES46], tmp_path, mapping="rees46")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (18, 13, 5)
    assert summary.days == [date(2019, 10, 1), date(2019, 10, 2)]
    events = read_events(summary)
    assert Counter(e["event_type"] for e in events) == Counter(
        {"product_view": 8, "add_to_cart": 2, "remove_from_cart": 1, "purchase": 2}
    )
    first = events[0]
    assert first == {
        "event_id": first["event_id"],
        "event_type": "product_view",
        "event_time": "2019-10-01T00:00:00Z",
        "user_id": "541312140",
        "session_id": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        "product_id": "44600062",
        "category": "2103807459595387724",  # no category_code: the category_id
        "price": 35.79,
        "properties": {"brand": "shiseido", "category_id": "2103807459595387724"},
    }
    assert first["event_id"].startswith("rees46-")
    assert len({e["event_id"] for e in events}) == 13
    purchases = [e for e in events if e["event_type"] == "purchase"]
    assert [(e["revenue"], e["quantity"]) for e in purchases] == [(1081.98, 1), (130.76, 1)]
    assert all("revenue" not in e for e in events if e["event_type"] != "purchase")
    assert events[4]["category"] == "electronics.smartphone"
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (15, "unmapped event_type value: wishlist"),
        (16, "event_time is not a timestamp (iso): 2019-10-02 25:01:30 UTC"),
        (17, "price is not a number: not-a-price"),
        (18, "missing identity: neither user_id nor anonymous_id"),
        (19, "CSV row has 4 columns, header has 9"),
    ]
    # Ids are stable: a second import gives the same ones.
    again = import_files("mapped", [REES46], tmp_path / "again", mapping="rees46")
    assert [e["event_id"] for e in read_events(again)] == [e["event_id"] for e in events]
    ingest_all(tmp_path)


# A purchase the REES46 sample lacks: the row a re-export adds at the top.
NEW_PURCHASE = (
    "2019-10-01 00:03:00 UTC,purchase,5100816,2053013553375346967,,xiaomi,11.00,519107250,"
    "566511c2-e2e3-422b-b695-cf8e6e792ca8"
)


def _rees46_export(path: Path, rows: list[str], columns: list[int] | None = None) -> Path:
    """The REES46 sample's header and ``rows`` (lines of it), its columns in the order ``columns`` (default: as
    they are), as a CSV (``.csv``) or a Parquet file with typed columns (``.parquet``: numbers as numbers)."""
    header, *_ = REES46.read_text().splitlines()
    table = [next(csv.reader([header]))] + [next(csv.reader([row])) for row in rows]
    order = columns or list(range(len(table[0])))
    table = [[record[i] for i in order] for record in table]
    if path.suffix == ".parquet":
        names, *values = table
        typed = {"price": pa.float64(), "product_id": pa.int64(), "user_id": pa.int64(), "category_id": pa.int64()}
        arrays = [
            pa.array([v[i] or None for v in values]).cast(typed.get(name, pa.string())) for i, name in enumerate(names)
        ]
        pq.write_table(pa.table(arrays, names=names), path)
    else:
        with path.open("w", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(table)
    return path


def test_mapped_ids_come_from_the_rows_content_so_a_reexport_adds_only_its_new_rows(tmp_path: Path) -> None:
    """The generated ids used to hash the line number: a re-export with one row more at the top imported as all
    new events (twice the purchases and the revenue). They hash the mapped row now; identical rows of one file
    stay distinct events (the later copies numbered), and the same rows in another file are the same events."""
    valid = REES46.read_text().splitlines()[1:14]  # the sample's 13 valid rows
    cart = valid[5]  # a cart add, sent twice in the same second: two events
    first = _rees46_export(tmp_path / "october.csv", [*valid[:6], cart, *valid[6:]])
    columns = [8, 7, 6, 5, 4, 3, 2, 1, 0]  # another column order,
    rows = [NEW_PURCHASE, *reversed([*valid[:6], cart, *valid[6:]])]  # one row more at the top, the others reversed
    again = _rees46_export(tmp_path / "october-again.csv", rows, columns)
    as_parquet = _rees46_export(tmp_path / "october-again.parquet", rows, columns)

    one = import_files("mapped", [first], tmp_path / "one", mapping="rees46", progress=False)
    two = import_files("mapped", [again], tmp_path / "two", mapping="rees46", progress=False)
    three = import_files("mapped", [as_parquet], tmp_path / "three", mapping="rees46", progress=False)
    assert (one.events_written, two.events_written, three.events_written) == (14, 15, 15)
    by_id = {e["event_id"]: e for e in read_events(one)}
    assert len(by_id) == 14  # every event its own id, the identical cart adds too
    for summary in (two, three):
        events = {e["event_id"]: e for e in read_events(summary)}
        assert len(events) == 15 and set(by_id) < set(events)
        [added] = set(events) - set(by_id)
        assert events[added]["event_type"] == "purchase" and events[added]["revenue"] == 11
    # the same rows: the same events (from Parquet too, bar the properties' types: category_id is a number there)
    reexported = {e["event_id"]: e for e in read_events(two)}
    assert all(reexported[i] == e for i, e in by_id.items())
    [copy] = [i for i in by_id if i.endswith("-2")]
    assert by_id[copy] == {**by_id[copy.removesuffix("-2")], "event_id": copy}
    assert (one.identical_rows, two.identical_rows, three.identical_rows) == (1, 1, 1)

    # All three in one landing zone: raw.events holds every copy; deduplicated, each event once.
    landing = tmp_path / "landing"
    for source in (first, again, as_parquet):
        import_files("mapped", [source], landing, mapping="rees46", progress=False)
    con = ingest_all(landing)
    assert con.execute("select count(*) from raw.events").fetchall() == [(14 + 15 + 15,)]
    purchases, revenue, carts, total = con.execute(
        f"""select count_if(event_type = 'purchase'), sum(revenue), count_if(event_type = 'add_to_cart'), count(*)
        from {deduplicated(con)}"""
    ).fetchall()[0]
    assert (purchases, round(revenue, 2), carts, total) == (3, round(1081.98 + 130.76 + 11, 2), 3, 15)


@pytest.mark.parametrize("part_events", [1_000_000, 2])
def test_identical_rows_are_numbered_in_file_order_across_buffer_flushes(tmp_path: Path, part_events: int) -> None:
    """The copies are numbered after the file, in the staged day files, whatever the writer's flushes, and across
    the parts of a day written in parts."""
    valid = REES46.read_text().splitlines()[1:14]
    rows = [valid[0], valid[5], valid[0], valid[11], valid[0], valid[5]]  # three of one, two of another
    source = _rees46_export(tmp_path / "repeats.csv", rows)
    mapping = load_mapping("rees46")
    from pulse.importers.mapped import make_converter

    landing = tmp_path / "landing"
    result = import_file(
        "mapped", Source(source), make_converter(mapping), landing, buffer_bytes=100, part_events=part_events
    )
    assert result.identical_rows == 3
    assert len(list(landing.rglob("*.jsonl.gz"))) == (2 if part_events > 6 else 4)  # two days (4 and 2 rows)
    # the 2019-10-01 file in row order, then the 2019-10-02 one
    ids = [e["event_id"] for e in read_events(ImportSummary("mapped", files=[result]))]
    view, cart, other = ids[0], ids[1], ids[-1]
    assert ids == [view, cart, f"{view}-2", f"{view}-3", f"{cart}-2", other]
    assert len({view, cart, other}) == 3


def test_mapped_purchase_log_csv_and_parquet(tmp_path: Path) -> None:
    summary = import_files("mapped", [PURCHASE_LOG], tmp_path / "csv", mapping="purchase_log")
    assert (summary.rows_read, summary.events_written, summary.rejected) == (5, 3, 2)
    events = read_events(summary)
    assert events == [
        {
            "event_id": "order-A-1001",
            "event_type": "purchase",
            "event_time": "2026-09-01T18:08:00Z",
            "user_id": "c-17",
            "order_id": "A-1001",
            "revenue": 179.8,
        },
        {
            "event_id": "order-A-1002",
            "event_type": "purchase",
            "event_time": "2026-09-01T23:59:59.500Z",
            "user_id": "c-23",
            "order_id": "A-1002",
            "revenue": 12,
        },
        {
            "event_id": "order-A-1003",
            "event_type": "purchase",
            "event_time": "2026-09-02T06:00:00Z",
            "user_id": "c-17",
            "order_id": "A-1003",
            "revenue": 54.25,
        },
    ]
    assert [(r["line"], r["reason"]) for r in rejects_of(summary)] == [
        (5, "missing identity: neither user_id nor anonymous_id"),
        (6, "revenue is not a number: -"),
    ]
    con = ingest_all(tmp_path / "csv")
    assert con.execute("select sum(revenue) from raw.events").fetchall() == [(pytest.approx(246.05),)]
    # The same log as Parquet, with a typed timestamp column.
    table = pa.table(
        {
            "order_id": ["A-1001", "A-1002"],
            "customer_id": ["c-17", "c-23"],
            "ordered_at": pa.array([datetime(2026, 9, 1, 18, 8), datetime(2026, 9, 1, 23, 59, 59, 500000)]),
            "amount": [179.8, 12.0],
        }
    )
    parquet = tmp_path / "orders.parquet"
    pq.write_table(table, parquet)
    from_parquet = import_files("mapped", [parquet], tmp_path / "parquet", mapping="purchase_log")
    assert read_events(from_parquet) == events[:2]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "must be a YAML mapping"),
        ({"fields": {"event_type": {"value": "purchase"}, "user_id": "u"}}, "no event_time mapping"),
        ({"fields": {"event_time": "t", "user_id": "u"}}, "no event_type mapping"),
        ({"fields": {"event_time": "t", "event_type": {"value": "purchase"}}}, "maps neither user_id nor"),
        ({"fields": {"event_time": "t", "event_type": "e", "user_id": "u", "colour": "c"}}, "unknown contract field"),
        ({"fields": {"event_time": "t", "event_type": "e", "user_id": "u"}, "extra": 1}, "unknown key 'extra'"),
        (
            {"fields": {"event_time": "t", "event_type": {"column": "e", "values": {"v": "teleport"}}, "user_id": "u"}},
            "maps to unknown event_type 'teleport'",
        ),
        ({"fields": {"event_time": "t", "event_type": {"value": "nope"}, "user_id": "u"}}, "not a contract event"),
        (
            {"fields": {"event_time": {"column": "t", "timezone": "Mars/Base"}, "event_type": "e", "user_id": "u"}},
            "not a known time zone",
        ),
        (
            {"fields": {"event_time": {"column": "t", "format": "yyyy"}, "event_type": "e", "user_id": "u"}},
            "format must be",
        ),
        (
            {"fields": {"event_time": "t", "event_type": "e", "user_id": {"column": "u", "value": "x"}}},
            "exactly one of",
        ),
        ({"fields": {"event_time": "t", "event_type": "e", "user_id": {"colum": "u"}}}, "unknown key 'colum'"),
        (
            {"fields": {"event_time": "t", "event_type": "e", "user_id": "u", "price": {"column": "p", "format": "x"}}},
            "apply to timestamp fields only",
        ),
        (
            {
                "fields": {
                    "event_time": "t",
                    "event_type": "e",
                    "user_id": "u",
                    "revenue": {"column": "r", "only_for": ["x"]},
                }
            },
            "only_for must list contract event types",
        ),
        (
            {"fields": {"event_time": "t", "event_type": "e", "user_id": {"generate": "hash"}}},
            "only event_id can be generated",
        ),
        ({"fields": {"event_time": "t", "event_type": "e", "user_id": "u"}, "properties": 3}, "'properties' must be"),
    ],
)
def test_invalid_mappings_are_explained(doc: object, message: str) -> None:
    with pytest.raises(MappingError, match=message) as info:
        parse_mapping(doc, Path("my.yaml"))
    assert "my.yaml" in str(info.value)


def test_mapped_strptime_format_timezone_constants_and_custom_types(tmp_path: Path) -> None:
    mapping_file = tmp_path / "shop.yaml"
    mapping_file.write_text(
        """
fields:
  event_time: {column: when, format: "%d.%m.%Y %H:%M", timezone: Europe/Berlin}
  event_type: {column: what, values: {sieht: product_view}, unmapped: custom}
  anonymous_id: {column: visitor, prefix: "shop-"}
  utm_source: {value: import}
  quantity: {column: n}
properties: {shop_country: country}
source: {delimiter: ";"}
"""
    )
    source = tmp_path / "shop.csv"
    source.write_text(
        "when;what;visitor;n;country\n01.09.2026 00:30;sieht;v1;;DE\n01.09.2026 01:30;Merkt Sich;v2;2.0;AT\n"
    )
    summary = import_files("mapped", [source], tmp_path / "landing", mapping=mapping_file)
    events = read_events(summary)
    assert [(e["event_time"], e["event_type"], e["anonymous_id"]) for e in events] == [
        ("2026-08-31T22:30:00Z", "product_view", "shop-v1"),  # 00:30 in Berlin (CEST) is 22:30 UTC the day before
        ("2026-08-31T23:30:00Z", "custom.merkt_sich", "shop-v2"),
    ]
    assert [e.get("quantity") for e in events] == [None, 2]
    assert all(e["utm_source"] == "import" for e in events)
    assert [e["properties"] for e in events] == [{"shop_country": "DE"}, {"shop_country": "AT"}]
    assert all(e["event_id"].startswith("mapped-") for e in events)  # no event_id mapping: a hash
    assert summary.days == [date(2026, 8, 31)]
    ingest_all(tmp_path / "landing")


def test_mapping_errors_at_import(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="no such file"):
        import_files("mapped", [REES46], tmp_path, mapping=tmp_path / "missing.yaml")
    with pytest.raises(MappingError, match="needs a mapping"):
        import_files("mapped", [REES46], tmp_path)
    with pytest.raises(MappingError, match="applies to --format mapped only"):
        import_files("otto", [OTTO], tmp_path, mapping="rees46")
    with pytest.raises(SourceError, match="columns order_id, ordered_at, customer_id, amount named in mapping"):
        import_files("mapped", [REES46], tmp_path, mapping="purchase_log")


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    landing = tmp_path / "landing"
    rc = main(["import", "--format", "segment", "--landing", str(landing), "--quiet", str(SEGMENT)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "22 rows read, 15 events written, 7 rejected" in out
    assert "2026-09-01..2026-09-02 (2 days)" in out
    assert f"rejected: {SEGMENT}:16: price is not a number: cheap" in err
    assert "... 2 more" in err
    assert len(list((landing / "rejected").glob("import-segment-*.jsonl"))) == 1

    rc = main(["import", "--format", "mapped", "--mapping", "rees46", "--landing", str(landing), str(REES46)])
    out, err = capsys.readouterr()
    assert rc == 0 and "18 rows read, 13 events written, 5 rejected" in out
    # the progress bar (pulse/core/progress.py): the source's bytes, then the rows and events it became
    assert "pulse import rees46_sample.csv: 100%" in err and "18 rows  13 events" in err

    rc = main(["import", "--format", "otto", "--landing", str(landing), str(tmp_path / "missing.jsonl")])
    out, err = capsys.readouterr()
    assert rc == 1 and "missing.jsonl" in err


def test_cli_import_defaults_to_pulse_landing(pulse_home, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--format", "otto", "--quiet", str(OTTO)]) == 0
    assert "20 rows read, 862 events written, 0 rejected" in capsys.readouterr().out
    assert landed_days(pulse_home.events_landing)
