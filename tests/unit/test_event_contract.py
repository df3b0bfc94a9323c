"""The event contract, one table of good and bad events run through every path an event comes in by: the collector
(its ASGI app), the importers (contract JSON Lines, CSV, Segment; what an import writes is then ingested) and
ingestion (a landing file validated by DuckDB; JSON Lines and CSV). Each must accept or refuse the same events,
with the same reason text: the checks are derived from pulse.core.contract's one declaration (fields, value rules,
event types, identity rule, time window, size limit, reasons), in Python (collector, importers) and in SQL
(ingestion).

Two tables: CASES, one field's value at a time (every value rule), and EVENTS, whole events and lines (every
other reason, several reasons at once, good events). Together they cover every Reason of pulse.core.contract.REASONS.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pulse.collector.app import Collector, CollectorSettings
from pulse.core.contract import CSV_ROW_WIDTH, FIELDS, FUTURE_TOLERANCE, REASON_SEPARATOR, REASONS, Reason
from pulse.importers import converter_for
from pulse.importers.common import Source
from pulse.ingest.raw_events import ingest_day

# Today (UTC): the collector compares event_time with its own clock, ingestion with the landing day.
DAY = datetime.now(UTC).date()
T = f"{DAY.isoformat()}T00:30:00"
CONTRACT = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Case:
    field: str
    raw: str  # the value as JSON text, exactly as a client would send it
    accepted: bool
    reason: str = ""  # what the reason says after the field's name ("is not a finite number")

    @property
    def id(self) -> str:
        return f"{self.field}={self.raw}"

    @property
    def is_json_string(self) -> bool:
        return self.raw.startswith('"')

    @property
    def is_strict_json(self) -> bool:
        """What a strict JSON reader (the collector's orjson) takes: not NaN / Infinity, not beyond a double."""
        try:
            json.loads(self.raw, parse_constant=_refuse, parse_float=_finite)
        except ValueError:
            return False
        return True


def _refuse(token: str) -> None:
    raise ValueError(token)


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return number


CASES = [
    # numbers: finite, ASCII digits; numeric text is accepted
    Case("revenue", "33.5", True),
    Case("revenue", '"33.50"', True),
    Case("revenue", '" 12.5 "', True),
    Case("revenue", "1e3", True),
    Case("revenue", '"NaN"', False, "is not a finite number"),
    Case("revenue", '"nan"', False, "is not a finite number"),
    Case("price", '"Infinity"', False, "is not a finite number"),
    Case("price", '"-inf"', False, "is not a finite number"),
    Case("price", '"1e999"', False, "is not a finite number"),
    Case("price", '"１２"', False, "is not a number"),  # full-width digits
    Case("price", '"١٢"', False, "is not a number"),  # Arabic-Indic digits
    Case("price", '"1_000"', False, "is not a number"),
    Case("price", '"0x10"', False, "is not a number"),
    Case("price", '"12,50"', False, "is not a number"),
    Case("price", "true", False, "is not a number"),
    Case("price", '{"amount": 3}', False, "is not a number"),
    Case("price", "-1", False, "is below 0"),
    # ... and the non-standard tokens some JSON writers emit (Python's json, DuckDB's reader take them)
    Case("revenue", "NaN", False, "is not a finite number"),
    Case("price", "-Infinity", False, "is not a finite number"),
    Case("revenue", "1e999", False, "is not a finite number"),
    Case("quantity", "Infinity", False, "is not an integer"),
    Case("user_id", "NaN", False, "is not a string"),
    Case("cart_value", '"NaN"', False, "is not a finite number"),
    Case("scroll_depth_pct", '"１００"', False, "is not a number"),
    Case("scroll_depth_pct", "100.5", False, "is above 100"),
    # integers: integral and within BIGINT (-2^63 .. 2^63-1)
    Case("quantity", "2", True),
    Case("quantity", '"2"', True),
    Case("quantity", "2.0", True),
    Case("quantity", "9223372036854775807", True),
    Case("quantity", "9223372036854775808", False, "is outside the 64-bit integer range"),
    Case("quantity", "1180591620717411303424", False, "is outside the 64-bit integer range"),  # 2^70
    Case("quantity", '"1180591620717411303424"', False, "is outside the 64-bit integer range"),
    Case("quantity", "1.2e21", False, "is outside the 64-bit integer range"),
    Case("quantity", '"２"', False, "is not an integer"),
    Case("quantity", "2.5", False, "is not an integer"),
    Case("quantity", '"NaN"', False, "is not an integer"),
    Case("quantity", "-3", False, "is below 0"),
    Case("doc_height_px", '"9223372036854775808"', False, "is outside the 64-bit integer range"),
    # timestamps: RFC 3339 with a zone, ASCII digits, a real date and time, an offset within ±18:00
    Case("event_time", f'"{T}Z"', True),
    Case("event_time", f'"{T}.123456789z"', True),
    Case("event_time", f'"{DAY.isoformat()} 00:30:00+18:00"', True),
    Case("event_time", f'"{T}-18:00"', True),
    Case("event_time", f'"{T}+05:45"', True),
    Case("event_time", f'"{T}+25:00"', False, "has a UTC offset beyond ±18:00"),
    Case("event_time", f'"{T}+18:01"', False, "has a UTC offset beyond ±18:00"),
    Case("event_time", f'"{T}-19:00"', False, "has a UTC offset beyond ±18:00"),
    Case("event_time", f'"{T}+05:60"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", f'"{DAY.isoformat()}T24:00:00Z"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", f'"{DAY.isoformat()}T23:59:60Z"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", f'"{DAY.isoformat()}T00:60:00Z"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", f'"{DAY.year}-02-30T00:30:00Z"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", '"２０２６-01-01T00:00:00Z"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", f'"{T}"', False, "is not an RFC 3339 timestamp"),
    Case("event_time", "1767225600", False, "is not an RFC 3339 timestamp"),
    # strings (ids): text, or a finite number kept as its text; never an object, an array or a boolean
    Case("user_id", '"u-1"', True),
    Case("user_id", "1042", True),
    Case("user_id", "18446744073709551615", True),
    Case("user_id", '{"id": 1}', False, "is not a string"),
    Case("user_id", '["u-1"]', False, "is not a string"),
    Case("user_id", "true", False, "is not a string"),
    Case("anonymous_id", "false", False, "is not a string"),
    Case("product_id", '{"sku": "p-1"}', False, "is not a string"),
    Case("order_id", "[1, 2]", False, "is not a string"),
    Case("page_url", '{"href": "/"}', False, "is not a string"),
    Case("session_id", "true", False, "is not a string"),
    # booleans: JSON true/false or the text true/false in any case
    Case("consent_analytics", "true", True),
    Case("consent_analytics", '"TRUE"', True),
    Case("consent_analytics", '"false"', True),
    Case("consent_analytics", "1", False, "is not a boolean"),
    Case("consent_personalization", '"yes"', False, "is not a boolean"),
    # properties: a JSON object (or text holding one)
    Case("properties", '{"list": "weekly"}', True),
    Case("properties", '"{\\"list\\": \\"weekly\\"}"', True),
    Case("properties", "[1, 2]", False, "is not a JSON object"),
    Case("properties", '"weekly"', False, "is not a JSON object"),
]


def event_line(index: int, case: Case) -> str:
    """A valid purchase event as JSON text with the case's field set to its raw value."""
    base = {
        "event_id": f"e{index}",
        "event_type": "purchase",
        "event_time": f"{T}Z",
        "anonymous_id": "a-1",
        "user_id": "u-1",
        "order_id": "o-1",
    }
    base.pop(case.field, None)
    return json.dumps(base)[:-1] + f', "{case.field}": {case.raw}}}'


Outcome = tuple[bool, str]  # (accepted, the reason's part about this field, "" when accepted)


def field_reason(reason: str, names: tuple[str, ...]) -> str:
    """The part of a (possibly '; '-joined) reason about one of ``names``: 'price is not a number: x'."""
    for part in reason.split("; "):
        for name in names:
            if part.startswith(name + " "):
                return part
    return reason  # not naming the field: the assertion below shows it whole


# ---------------------------------------------------------------------------------------------- the doors


def post(app: Collector, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to /collect of a started ``app`` (in-process ASGI), then stop it: (status, response body)."""
    sent: list[dict] = []

    async def main() -> None:
        await app.log.start()
        app.started = True
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/collect", "headers": [], "client": ("192.0.2.1", 1)}
        try:
            await app(scope, receive, send)
        finally:
            await app.log.close()

    asyncio.run(main())
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def through_collector(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    """One batch of every case, POSTed to the collector app."""
    settings = CollectorSettings(
        spool=tmp_path / "spool",
        events_landing=tmp_path / "landing" / "events",
        dead_letter=tmp_path / "dead-letter",
        min_free_bytes=0,
        roll_seconds=3600,
    )
    body = ("[" + ",".join(event_line(i, c) for i, c in enumerate(cases)) + "]").encode()
    status, answer_body = post(Collector(settings), body)
    assert status == 200, answer_body
    answer = json.loads(answer_body)
    errors = {e["index"]: e["reason"] for e in answer["errors"]}
    return [(i not in errors, field_reason(errors.get(i, ""), (c.field,))) for i, c in enumerate(cases)]


def run_converter(fmt: str, path: Path) -> dict[int, Outcome]:
    """Outcome per source line (row) of an importer's converter."""
    outcomes = {}
    for row in converter_for(fmt)(Source(path)):
        outcomes[row.line] = (not row.rejects and bool(row.events), row.rejects[0][1] if row.rejects else "")
    return outcomes


def through_jsonl_import(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(event_line(i, c) for i, c in enumerate(cases)) + "\n", encoding="utf-8")
    outcomes = run_converter("jsonl", path)
    return [(outcomes[i + 1][0], field_reason(outcomes[i + 1][1], (c.field,))) for i, c in enumerate(cases)]


def csv_text(cases: list[Case]) -> str:
    """One CSV row per case (JSON strings only: a cell is text): the same columns as event_line."""
    columns = ["event_id", "event_type", "event_time", "anonymous_id", "user_id", "order_id"]
    columns += sorted({c.field for c in cases} - set(columns))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for i, c in enumerate(cases):
        writer.writerow(json.loads(event_line(i, c)))
    return out.getvalue()


def through_csv_import(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    path = tmp_path / "events.csv"
    path.write_text(csv_text(cases), encoding="utf-8")
    outcomes = run_converter("csv", path)
    return [(outcomes[i + 2][0], field_reason(outcomes[i + 2][1], (c.field,))) for i, c in enumerate(cases)]


# Where Segment carries each contract field the table covers (a track message's properties for the commerce
# fields). Its own names appear in its reasons for the fields it parses itself (timestamp).
SEGMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "event_time": ("timestamp",),
    "user_id": ("userId",),
    "anonymous_id": ("anonymousId",),
    "price": ("properties", "price"),
    "quantity": ("properties", "quantity"),
    "product_id": ("properties", "product_id"),
    "revenue": ("properties", "revenue"),
    "order_id": ("properties", "order_id"),
    "page_url": ("context", "page", "url"),
}


def segment_line(index: int, case: Case) -> str:
    product = case.field in ("price", "quantity", "product_id")
    message: dict[str, Any] = {
        "type": "track",
        "event": "Product Added" if product else "Order Completed",
        "messageId": f"m{index}",
        "timestamp": f"{T}Z",
        "anonymousId": "a-1",
        "userId": "u-1",
        "properties": {"product_id": "p-1"} if product else {"order_id": "o-1", "revenue": 1},
        "context": {"page": {"url": "https://shop.example/"}},
    }
    *parents, key = SEGMENT_FIELDS[case.field]
    target = message
    for parent in parents:
        target = target[parent]
    target[key] = "<<value>>"
    return json.dumps(message).replace('"<<value>>"', case.raw)


def through_segment_import(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    path = tmp_path / "segment.jsonl"
    path.write_text("\n".join(segment_line(i, c) for i, c in enumerate(cases)) + "\n", encoding="utf-8")
    outcomes = run_converter("segment", path)
    return [
        (outcomes[i + 1][0], field_reason(outcomes[i + 1][1], (c.field, SEGMENT_FIELDS[c.field][-1])))
        for i, c in enumerate(cases)
    ]


def ingest_landing_file(tmp_path: Path, name: str, text: str) -> dict[int, Outcome]:
    landing = tmp_path / "landing" / "events"
    (landing / DAY.isoformat()).mkdir(parents=True)
    (landing / DAY.isoformat() / name).write_text(text, encoding="utf-8")
    con = duckdb.connect()
    try:
        result = ingest_day(con, landing, DAY)
        assert result.reconciles
        accepted = {n for (n,) in con.execute("select source_line from raw.events").fetchall()}
        refused = dict(con.execute("select line_number, reason from raw.events_quarantine").fetchall())
    finally:
        con.close()
    return {n: (True, "") for n in accepted} | {n: (False, reason) for n, reason in refused.items()}


def through_jsonl_ingestion(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    text = "\n".join(event_line(i, c) for i, c in enumerate(cases)) + "\n"
    outcomes = ingest_landing_file(tmp_path, "events.jsonl", text)
    return [(outcomes[i + 1][0], field_reason(outcomes[i + 1][1], (c.field,))) for i, c in enumerate(cases)]


def through_csv_ingestion(tmp_path: Path, cases: list[Case]) -> list[Outcome]:
    outcomes = ingest_landing_file(tmp_path, "events.csv", csv_text(cases))
    return [(outcomes[i + 2][0], field_reason(outcomes[i + 2][1], (c.field,))) for i, c in enumerate(cases)]


# Door -> (the cases it can express, how to run them). CSV cells are text: only the JSON-string cases mean the same
# there (and the CSV importer converts yes/no/1/0 to booleans, a documented conversion: its run leaves the boolean
# fields out). The collector reads bodies with a strict JSON parser: a body holding NaN, Infinity or a number beyond
# a double is refused whole (400, dead-lettered; test_the_collector_refuses_non_standard_json_whole). Segment's own
# timestamp parser takes a time without a zone as UTC (a documented conversion) and
# words its refusal "is not a timestamp" (it reads more than RFC 3339).
DOORS: dict[str, tuple[Callable[[Case], bool], Callable[[Path, list[Case]], list[Outcome]]]] = {
    "collector": (lambda c: c.is_strict_json, through_collector),
    "import jsonl": (lambda c: True, through_jsonl_import),
    "import csv": (lambda c: c.is_json_string and CONTRACT[c.field].type != "boolean", through_csv_import),
    "import segment": (lambda c: c.field in SEGMENT_FIELDS and c.raw != f'"{T}"', through_segment_import),
    "ingest jsonl": (lambda c: True, through_jsonl_ingestion),
    "ingest csv": (lambda c: c.is_json_string, through_csv_ingestion),
}
SEGMENT_WORDING = {"is not an RFC 3339 timestamp": "is not a timestamp"}
RUNS = [(door, case) for door, (applies, _) in DOORS.items() for case in CASES if applies(case)]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Outcome]]:
    """door -> case id -> outcome: each door runs its cases once (one batch, one file)."""
    results: dict[str, dict[str, Outcome]] = {}
    for door, (applies, run) in DOORS.items():
        cases = [c for c in CASES if applies(c)]
        found = run(tmp_path_factory.mktemp(door.replace(" ", "_")), cases)
        results[door] = {c.id: o for c, o in zip(cases, found, strict=True)}
    return results


def test_the_table_covers_every_door_and_every_rule() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    for door, (applies, _) in DOORS.items():
        chosen = [c for c in CASES if applies(c)]
        assert any(c.accepted for c in chosen) and any(not c.accepted for c in chosen), door
    rules = {c.reason for c in CASES if not c.accepted}
    issue = {"is not a finite number", "is outside the 64-bit integer range", "is not a number", "is not a string"}
    assert issue | {"has a UTC offset beyond ±18:00"} <= rules


@pytest.mark.parametrize(("door", "case"), RUNS, ids=[f"{door}:{case.id}" for door, case in RUNS])
def test_every_door_gives_the_same_verdict_and_reason(outcomes, door: str, case: Case) -> None:
    accepted, reason = outcomes[door][case.id]
    assert accepted == case.accepted, f"{door}: {case.id} {'accepted' if accepted else 'refused: ' + reason}"
    if not case.accepted:
        expected = [f"{case.field} {case.reason}"]
        if door == "import segment":
            own = SEGMENT_FIELDS[case.field][-1]
            expected += [f"{own} {case.reason}", f"{own} {SEGMENT_WORDING.get(case.reason, case.reason)}"]
        assert any(reason.startswith(e) for e in expected), f"{door}: {reason!r}, expected {expected[0]!r}"


def test_the_collector_refuses_non_standard_json_whole(tmp_path: Path) -> None:
    """NaN, Infinity and 1e999 are not JSON numbers (RFC 8259): a body holding one is answered 400 and
    dead-lettered whole, so nothing of it is acknowledged and then dropped."""
    for case in [c for c in CASES if not c.is_strict_json]:
        folder = tmp_path / case.id.replace("=", "_")
        settings = CollectorSettings(
            spool=folder / "spool",
            events_landing=folder / "landing" / "events",
            dead_letter=folder / "dead-letter",
            min_free_bytes=0,
            roll_seconds=3600,
        )
        status, body = post(Collector(settings), f"[{event_line(0, CASES[0])}, {event_line(1, case)}]".encode())
        assert status == 400 and b"body is not JSON" in body, (case.id, status, body)
        assert not list((folder / "landing").rglob("*.jsonl")), case.id
        [dead] = [line for f in (folder / "dead-letter").glob("*.jsonl") for line in f.read_text().splitlines()]
        [item] = json.loads(dead)["rejected"]  # one record per request, the body whole as its payload
        assert case.raw in item["payload"], case.id


def test_ingestion_finds_a_non_string_id_however_the_line_spells_it(tmp_path: Path) -> None:
    """Ingestion reads string fields' JSON types only on lines that may hold a non-string in one (a pre-filter
    on the text): the lowercase tokens DuckDB's reader takes (nan, inf), a key spelled with a \\u escape, blanks
    around the colon. And a line that only mentions such a key inside a string is not refused."""
    head = '{"event_id": "e%d", "event_type": "page_view", "event_time": "%sZ", "anonymous_id": "a-1", '
    refused = ['"user_id": nan', '"user_id": -nan', '"user_id": inf', '"user_id":true', '"user\\u005fid": {"id": 1}']
    refused += ['"user_id" :\t ["u-1"]']
    accepted = ['"user_id": null', '"user_id" : "u-1"', '"page_title": "\\"user_id\\": {}"', '"user_id": 1042']
    lines = [head % (i, T) + tail + "}" for i, tail in enumerate(refused + accepted)]
    outcomes = ingest_landing_file(tmp_path, "events.jsonl", "\n".join(lines) + "\n")
    for i, tail in enumerate(refused):
        accepted_, reason = outcomes[i + 1]
        refusal = field_reason(reason, ("user_id",))
        assert not accepted_ and refusal.startswith("user_id is not a string"), (tail, reason)
    for i, tail in enumerate(accepted, start=len(refused)):
        assert outcomes[i + 1] == (True, ""), (tail, outcomes[i + 1])


def test_every_door_words_a_value_alike(outcomes) -> None:
    """Beyond the start checked above: the whole reason (the value as shown, cut alike) is the same text on every
    door that takes the case and names the contract's field (Segment's own fields aside)."""
    differ = {}
    for case in CASES:
        if case.accepted:
            continue
        texts = {
            door: outcomes[door][case.id][1]
            for door, (applies, _) in DOORS.items()
            if applies(case) and outcomes[door][case.id][1].startswith(f"{case.field} ")
        }
        if len(set(texts.values())) != 1:
            differ[case.id] = texts
        assert all(reason_of(text) is not None for text in texts.values()), (case.id, texts)
    assert differ == {}


# ---------------------------------------------------------------------------------------------- whole events

# The time window as each path applies it: ingestion against the landing day (DAY), the collector against its
# clock; the future's ceiling in a reason is filled in per path (CEILING).
CEILING = "<ceiling>"
FAR_FUTURE = (datetime.combine(DAY, datetime.min.time()) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
ALL_PATHS = frozenset({"collector", "import", "ingest"})


@dataclass(frozen=True)
class EventCase:
    """One landing line (the collector gets the JSON value it holds, in a batch); ``reason`` None when accepted.

    ``paths``: where the case means something. Lines that are not JSON (invalid UTF-8, malformed, empty) refuse a
    collector's whole body (400: test_collector.py), not one event of it. An import lands each event in the day of
    its own event_time, so no imported event is after its landing day: the future is the collector's and
    ingestion's (the import counts events after now: test_import_window.py)."""

    name: str
    line: bytes
    reason: str | None
    paths: frozenset[str] = ALL_PATHS


def line(**fields: Any) -> bytes:
    """A good page_view (today, anonymous) with ``fields`` set (None: left out)."""
    base: dict[str, Any] = {
        "event_type": "page_view",
        "event_time": f"{T}Z",
        "anonymous_id": "a-1",
        "page_url": "https://shop.example/",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, ensure_ascii=False).encode()


NOT_JSON = frozenset({"import", "ingest"})
EVENTS = [
    # good events
    EventCase("page view", line(event_id="g1"), None),
    EventCase("purchase", line(event_id="g2", event_type="purchase", user_id="u-1", revenue=12.5, quantity=2), None),
    EventCase("custom type", line(event_id="g3", event_type="custom.newsletter_signup", properties={"k": 1}), None),
    EventCase("numeric user id only", line(event_id="g4", anonymous_id=None, user_id=1042), None),
    EventCase("zone offset", line(event_id="g5", event_time=f"{T}+02:00"), None),
    EventCase("empty strings are missing", line(event_id="g6", user_id="", page_title=""), None),
    EventCase("an unknown field is ignored", line(event_id="g7", colour="red"), None),
    # every line and event rule
    EventCase("invalid UTF-8", line(event_id="b1")[:-2] + b'\xff"}', "invalid UTF-8", NOT_JSON),
    EventCase("empty line", b"   ", "empty line", NOT_JSON),
    EventCase("malformed JSON", line(event_id="b2")[:-1], "malformed JSON", NOT_JSON),
    EventCase("an array", b'["b3"]', "not a JSON object: array"),
    EventCase("a string", b'"b4"', "not a JSON object: varchar"),
    EventCase("too large", line(event_id="b5", page_title="t" * 70_000), "row exceeds 65536 bytes"),
    EventCase("no event_id", line(), "missing required field event_id"),
    EventCase("null event_type", line(event_id="b6", event_type=None), "missing required field event_type"),
    EventCase("empty event_time", line(event_id="b7", event_time=""), "missing required field event_time"),
    EventCase(
        "no identity", line(event_id="b8", anonymous_id=None), "missing identity: neither user_id nor anonymous_id"
    ),
    EventCase(
        "empty identity",
        line(event_id="b9", anonymous_id="", user_id=""),
        "missing identity: neither user_id nor anonymous_id",
    ),
    EventCase("unknown type", line(event_id="b10", event_type="pageview"), "unknown event_type: pageview"),
    EventCase("bare custom prefix", line(event_id="b11", event_type="custom."), "unknown event_type: custom."),
    EventCase(
        "a boolean type",
        line(event_id="b12", event_type=True),
        "event_type is not a string: true; unknown event_type: true",
    ),
    EventCase(
        "before the floor",
        line(event_id="b13", event_time="1999-12-31T23:59:59Z"),
        "event_time before 2000-01-01 00:00:00",
    ),
    EventCase(
        "in the future",
        line(event_id="b14", event_time=FAR_FUTURE),
        f"event_time in the future: after {CEILING}",
        frozenset({"collector", "ingest"}),
    ),
    EventCase(
        "bad time, no window",
        line(event_id="b15", event_time="1999-12-31T23:59:59+25:00"),
        "event_time has a UTC offset beyond ±18:00: 1999-12-31T23:59:59+25:00",
    ),
    # several rules at once: every reason, fields in the contract's order, then the event rules
    EventCase(
        "several",
        line(event_id="b16", event_type="nope", anonymous_id=None, price="x", quantity=-1, consent_analytics="yes"),
        "price is not a number: x; quantity is below 0; consent_analytics is not a boolean: yes; "
        "unknown event_type: nope; missing identity: neither user_id nor anonymous_id",
    ),
    # A field the collector sets (set_by="collector") is checked where it is read, in landing and import files;
    # the collector overwrites or removes what a client sends in it, so a client's broken value is no reason there.
    EventCase(
        "a collector field in a file",
        line(event_id="b17", is_bot="maybe"),
        "is_bot is not a boolean: maybe",
        frozenset({"import", "ingest"}),
    ),
    EventCase("a collector field from a client", line(event_id="g8", is_bot="maybe"), None, frozenset({"collector"})),
]


def collect_events(tmp_path: Path, cases: list[EventCase]) -> tuple[list[tuple[bool, str]], datetime, datetime]:
    """The cases' events in one batch to the collector: outcome per case, and the clock before and after."""
    settings = CollectorSettings(
        spool=tmp_path / "spool",
        events_landing=tmp_path / "landing" / "events",
        dead_letter=tmp_path / "dead-letter",
        min_free_bytes=0,
        roll_seconds=3600,
        max_body_bytes=4 << 20,
    )
    body = b"[" + b",".join(c.line for c in cases) + b"]"
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    status, answer_body = post(Collector(settings), body)
    after = datetime.now(UTC).replace(tzinfo=None)
    assert status == 200, answer_body
    errors = {e["index"]: e["reason"] for e in json.loads(answer_body)["errors"]}
    return [(i not in errors, errors.get(i, "")) for i in range(len(cases))], before, after


def import_then_ingest(tmp_path: Path, cases: list[EventCase]) -> list[tuple[bool, str]]:
    """The cases as a contract JSON Lines file through `pulse import`, then what it wrote through ingestion: a case
    is refused by the import (its reject) or by ingestion (its quarantine), else accepted."""
    from pulse.importers import import_files
    from pulse.ingest.raw_events import ingest_days, landed_days

    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(c.line for c in cases) + b"\n")
    summary = import_files("jsonl", [source], tmp_path / "landing")
    rejects = {}
    for result in summary.files:
        if result.rejected_file is not None:
            for record in map(json.loads, result.rejected_file.read_text(encoding="utf-8").splitlines()):
                rejects[record["line"]] = record["reason"]
    events = tmp_path / "landing" / "events"
    con = duckdb.connect()
    try:
        assert all(r.reconciles for r in ingest_days(con, events, landed_days(events)))
        accepted = {i for (i,) in con.execute("select event_id from raw.events").fetchall()}
        quarantined = {
            json.loads(raw)["event_id"]: reason
            for raw, reason in con.execute("select raw_line, reason from raw.events_quarantine").fetchall()
        }
    finally:
        con.close()
    out = []
    for number, case in enumerate(cases, start=1):
        if number in rejects:
            out.append((False, rejects[number]))
            continue
        event_id = json.loads(case.line)["event_id"]
        assert (event_id in accepted) != (event_id in quarantined), (case.name, "written once, accepted or not")
        out.append((event_id in accepted, quarantined.get(event_id, "")))
    return out


def ingest_events(tmp_path: Path, cases: list[EventCase]) -> list[tuple[bool, str]]:
    landing = tmp_path / "landing" / "events"
    (landing / DAY.isoformat()).mkdir(parents=True)
    (landing / DAY.isoformat() / "events.jsonl").write_bytes(b"\n".join(c.line for c in cases) + b"\n")
    con = duckdb.connect()
    try:
        assert ingest_day(con, landing, DAY).reconciles
        accepted = {n for (n,) in con.execute("select source_line from raw.events").fetchall()}
        refused = dict(con.execute("select line_number, reason from raw.events_quarantine").fetchall())
    finally:
        con.close()
    return [(n in accepted, refused.get(n, "")) for n in range(1, len(cases) + 1)]


@pytest.fixture(scope="module")
def event_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[bool, str, str | None]]]:
    """path -> case name -> (accepted, reason, the expected reason with the path's ceiling filled in)."""
    results: dict[str, dict[str, tuple[bool, str, str | None]]] = {}

    def chosen(path: str) -> list[EventCase]:
        return [c for c in EVENTS if path in c.paths]

    collected, before, after = collect_events(tmp_path_factory.mktemp("collector"), chosen("collector"))
    results["collector"] = {}
    for case, (accepted, reason) in zip(chosen("collector"), collected, strict=True):
        expected = case.reason
        if expected and CEILING in expected:  # the collector's clock + 24 h, to the second, whenever it read it
            ceiling = reason.removeprefix(expected.removesuffix(CEILING))
            stamp = datetime.strptime(ceiling, "%Y-%m-%d %H:%M:%S")
            assert before + FUTURE_TOLERANCE <= stamp <= after + FUTURE_TOLERANCE, (before, reason, after)
            expected = expected.replace(CEILING, ceiling)
        results["collector"][case.name] = (accepted, reason, expected)
    landing_ceiling = (datetime.combine(DAY, datetime.min.time()) + timedelta(days=1) + FUTURE_TOLERANCE).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    for path, run in (("import", import_then_ingest), ("ingest", ingest_events)):
        found = run(tmp_path_factory.mktemp(path), chosen(path))
        results[path] = {
            c.name: (accepted, reason, c.reason and c.reason.replace(CEILING, landing_ceiling))
            for c, (accepted, reason) in zip(chosen(path), found, strict=True)
        }
    return results


EVENT_RUNS = [(path, case) for case in EVENTS for path in sorted(case.paths)]


@pytest.mark.parametrize(("path", "case"), EVENT_RUNS, ids=[f"{path}:{case.name}" for path, case in EVENT_RUNS])
def test_every_path_gives_an_event_the_same_verdict_and_reason(event_outcomes, path: str, case: EventCase) -> None:
    accepted, reason, expected = event_outcomes[path][case.name]
    assert accepted == (case.reason is None), f"{path}: {case.name} {'accepted' if accepted else 'refused: ' + reason}"
    assert reason == (expected or ""), f"{path}: {case.name}"


def reason_of(text: str) -> Reason | None:
    """The Reason whose template renders ``text`` (one reason, not a '; '-joined list)."""
    for reason in REASONS:
        pattern = "".join(
            re.escape(literal) + (".*" if name is not None else "")
            for literal, name, _, _ in string.Formatter().parse(reason.template)
        )
        if re.fullmatch(pattern, text, flags=re.DOTALL):
            return reason
    return None


def test_the_tables_cover_every_reason(outcomes, event_outcomes) -> None:
    """Every reason of the contract is given by the paths to some case of the two tables (a CSV row's width, which
    no JSON line has: test_a_csv_row_of_another_width_is_refused_alike), and every reason they give is one of the
    contract's templates (Segment's wording of its own fields aside)."""
    texts = [reason for door, by_case in outcomes.items() if door != "import segment" for _, reason in by_case.values()]
    texts += [reason for by_case in event_outcomes.values() for _, reason, _ in by_case.values()]
    parts = [part for text in texts if text for part in text.split(REASON_SEPARATOR)]
    assert [part for part in parts if reason_of(part) is None] == []
    assert set(REASONS) - {reason_of(part) for part in parts} == {CSV_ROW_WIDTH}
    assert len({c.name for c in EVENTS}) == len(EVENTS)


def test_a_csv_row_of_another_width_is_refused_alike(tmp_path: Path) -> None:
    """A CSV row that does not fit its header: the CSV importer and ingestion refuse it in the same words (the
    collector takes JSON only)."""
    text = f"event_id,event_type,event_time,anonymous_id\ne1,page_view,{T}Z,a-1\ne2,page_view\n"
    expected = CSV_ROW_WIDTH.text(columns=2, header_columns=4)
    (tmp_path / "import").mkdir()
    source = tmp_path / "import" / "events.csv"
    source.write_text(text, encoding="utf-8")
    assert run_converter("csv", source) == {2: (True, ""), 3: (False, expected)}
    assert ingest_landing_file(tmp_path / "ingest", "events.csv", text) == {2: (True, ""), 3: (False, expected)}
