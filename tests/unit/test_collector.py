"""The collector in-process: contract checks, enrichment, limits, dead letters, cookies, back-pressure, and the
durable log (group commit, rolling into the landing zone, recovery of a dead process's segment)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.collector import log as durable
from pulse.collector.app import COOKIE_NAME, Collector, CollectorSettings
from pulse.collector.events import (
    RequestContext,
    anonymize_ip,
    contract_violation,
    enrich,
    is_bot,
)
from pulse.collector.log import DurableLog, Unavailable, cut_torn_tail
from pulse.core.contract import EventLimits
from pulse.ingest.raw_events import ingest_day

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"


def event(n: int = 1, **fields: Any) -> dict[str, Any]:
    base = {
        "event_id": f"e{n}",
        "event_type": "page_view",
        "event_time": "2026-11-27T11:59:00.123Z",
        "anonymous_id": "a1",
        "page_url": "https://shop.example/",
        "consent_analytics": True,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# ------------------------------------------------------------------------------------------ pure functions


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, None),
        ({"event_type": "custom.newsletter_signup"}, None),
        ({"event_id": None}, "missing required field event_id"),
        ({"event_id": ""}, "missing required field event_id"),
        ({"event_time": "27/11/2026"}, "event_time is not an RFC 3339 timestamp: 27/11/2026"),
        ({"event_time": "2026-11-27T11:59:00"}, "event_time is not an RFC 3339 timestamp: 2026-11-27T11:59:00"),
        ({"event_type": "pageview"}, "unknown event_type: pageview"),
        ({"event_type": "custom."}, "unknown event_type: custom."),
        ({"anonymous_id": None}, "missing identity: neither user_id nor anonymous_id"),
        ({"anonymous_id": None, "user_id": "u1"}, None),
        ({"scroll_depth_pct": 101}, "scroll_depth_pct is above 100"),
        ({"price": -1}, "price is below 0"),
        ({"price": "12.50"}, None),
        ({"quantity": 1.5}, "quantity is not an integer"),
        ({"quantity": True}, "quantity is not an integer"),
        ({"consent_analytics": "yes"}, "consent_analytics is not a boolean"),
        ({"properties": [1, 2]}, "properties is not a JSON object"),
        ({"page_url": {"href": "x"}}, "page_url is not a string"),
        ({"event_time": "1999-12-31T23:59:59Z"}, "event_time before 2000-01-01 00:00:00"),
        ({"event_time": "2026-11-28T12:00:01Z"}, "event_time in the future: after 2026-11-28 12:00:00"),
    ],
)
def test_contract_violation_names_the_broken_rule(fields: dict, reason: str | None) -> None:
    found = contract_violation(event(**fields), NOW)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)


def test_a_non_object_event_is_refused() -> None:
    """Worded as ingestion words a landing line that is not an object (DuckDB's name of its JSON type)."""
    assert contract_violation(["e1"], NOW) == "not a JSON object: array"
    assert contract_violation("e1", NOW) == "not a JSON object: varchar"
    assert contract_violation(None, NOW) == "not a JSON object: null"


def test_every_broken_rule_is_named_in_the_contract_order() -> None:
    """As ingestion's quarantine does: each reason, fields in the contract's order, then the event rules."""
    found = contract_violation({"price": "x", "event_id": "e1", "event_type": "nope"}, NOW)
    assert found == (
        "missing required field event_time; price is not a number: x; unknown event_type: nope; "
        "missing identity: neither user_id nor anonymous_id"
    )


def test_the_time_window_comes_from_the_limits() -> None:
    limits = EventLimits(earliest_event_time=datetime(2026, 1, 1), future_tolerance=timedelta(hours=2))
    assert contract_violation(event(event_time="2025-12-31T23:59:59Z"), NOW, limits) == (
        "event_time before 2026-01-01 00:00:00"
    )
    assert contract_violation(event(event_time="2026-11-27T14:00:00Z"), NOW, limits) is None
    assert contract_violation(event(event_time="2026-11-27T14:00:01Z"), NOW, limits) == (
        "event_time in the future: after 2026-11-27 14:00:00"
    )


def test_enrichment_overwrites_server_fields_and_respects_consent() -> None:
    context = RequestContext("2026-11-27T12:00:00.000Z", CHROME, "10.1.2.0", False, "f" * 32)
    forged = event(received_at="2020-01-01T00:00:00Z", is_bot=False, ip_address="1.2.3.4", network_user_id="x")
    out = enrich(forged, context)
    assert out["received_at"] == "2026-11-27T12:00:00.000Z" and out["user_agent"] == CHROME
    assert out["ip_address"] == "10.1.2.0" and out["network_user_id"] == "f" * 32 and out["is_bot"] is False
    no_consent = enrich(event(consent_analytics=False, ip_address="1.2.3.4", network_user_id="x"), context)
    assert "ip_address" not in no_consent and "network_user_id" not in no_consent
    assert no_consent["received_at"] == "2026-11-27T12:00:00.000Z"


def test_ip_addresses_are_truncated_or_dropped() -> None:
    assert anonymize_ip("203.0.113.77", "truncate") == "203.0.113.0"
    assert anonymize_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348", "truncate") == "2001:db8:85a3::"
    assert anonymize_ip("203.0.113.77", "drop") is None
    assert anonymize_ip("203.0.113.77", "full") == "203.0.113.77"
    assert anonymize_ip("not an ip", "truncate") is None


def test_bots_are_recognized_by_user_agent() -> None:
    assert not is_bot(CHROME)
    for agent in ("Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0", "", None, "HeadlessChrome/156"):
        assert is_bot(agent), agent


def test_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert cut_torn_tail(path) == 16 and path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    path.write_bytes(b'{"c":')
    assert cut_torn_tail(path) == 0 and path.read_bytes() == b""


# ------------------------------------------------------------------------------------------ the ASGI app


class Response:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = {k.decode(): v.decode() for k, v in headers}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def request(
    app: Collector,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    chunk: int | None = None,
) -> Response:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw_headers, "client": ("192.0.2.33", 5000)}
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Response(start["status"], start["headers"], b"".join(m.get("body", b"") for m in sent[1:]))


def settings(tmp_path: Path, **overrides: Any) -> CollectorSettings:
    values: dict[str, Any] = {
        "spool": tmp_path / "collector" / "spool",
        "events_landing": tmp_path / "landing" / "events",
        "dead_letter": tmp_path / "collector" / "dead-letter",
        "min_free_bytes": 0,
        "roll_seconds": 3600,
    }
    values.update(overrides)
    return CollectorSettings(**values)


def run_app(tmp_path: Path, scenario, **overrides: Any) -> Collector:
    """Start a collector (its log), run ``await scenario(app)``, shut it down (rolling the segment)."""
    app = Collector(settings(tmp_path, **overrides))

    async def main() -> None:
        await app.log.start()
        app.started = True
        try:
            await scenario(app)
        finally:
            await app.log.close()

    asyncio.run(main())
    return app


def landed(tmp_path: Path) -> list[dict]:
    files = sorted((tmp_path / "landing" / "events").rglob("collector-*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def dead_letters(tmp_path: Path) -> list[dict]:
    """Each rejected event with its request's metadata (a dead-letter record holds a request's rejections)."""
    files = sorted((tmp_path / "collector" / "dead-letter").glob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return [
        {"received_at": r["received_at"], "user_agent": r["user_agent"], **item}
        for r in records
        for item in r["rejected"]
    ]


def batch(*events: Any) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_a_mixed_batch_is_acknowledged_and_its_invalid_events_dead_lettered(tmp_path: Path) -> None:
    responses: list[Response] = []

    async def scenario(app: Collector) -> None:
        headers = {"content-type": "text/plain;charset=UTF-8", "user-agent": CHROME}
        responses.append(await request(app, "POST", "/collect", batch(event(1), event(2, event_type="nope")), headers))
        responses.append(await request(app, "POST", "/collect", json.dumps([event(3)]).encode(), headers))
        responses.append(await request(app, "GET", "/metrics"))

    run_app(tmp_path, scenario)
    first, second, metrics = responses
    assert 'pulse_collector_requests_total{status="200"} 2' in metrics.body.decode()
    assert "pulse_collector_events_accepted_total 2\n" in metrics.body.decode()
    assert "pulse_collector_events_rejected_total 1\n" in metrics.body.decode()
    assert first.status == 200 and second.status == 200
    assert first.json() == {
        "accepted": 1,
        "rejected": 1,
        "errors": [{"index": 1, "event_id": "e2", "reason": "unknown event_type: nope"}],
    }
    rows = landed(tmp_path)
    assert [r["event_id"] for r in rows] == ["e1", "e3"]
    assert rows[0]["user_agent"] == CHROME and rows[0]["is_bot"] is False and rows[0]["ip_address"] == "192.0.2.0"
    [dead] = dead_letters(tmp_path)
    assert dead["reason"] == "unknown event_type: nope" and dead["payload"]["event_id"] == "e2"
    assert dead["index"] == 1 and dead["user_agent"] == CHROME


def test_the_landed_file_is_accepted_whole_by_ingestion(tmp_path: Path) -> None:
    async def scenario(app: Collector) -> None:
        events = [event(n, page_view_id="pv1", scroll_depth_pct=50, properties={"k": "v"}) for n in range(20)]
        assert (await request(app, "POST", "/collect", batch(*events), {"user-agent": CHROME})).status == 200

    run_app(tmp_path, scenario)
    day_dir = next((tmp_path / "landing" / "events").iterdir())
    import duckdb

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    result = ingest_day(con, tmp_path / "landing" / "events", date.fromisoformat(day_dir.name))
    assert (result.lines_read, result.accepted, result.quarantined) == (20, 20, 0)
    row = con.execute("select user_agent, is_bot, ip_address, network_user_id from raw.events limit 1").fetchall()[0]
    assert row[0] == CHROME and row[1] is False and row[2] == "192.0.2.0" and len(row[3]) == 32


def test_bodies_over_the_limit_get_413(tmp_path: Path) -> None:
    statuses: list[int] = []
    big = batch(event(1, properties={"blob": "x" * 4000}))

    async def scenario(app: Collector) -> None:
        declared = {"content-length": str(len(big))}
        statuses.append((await request(app, "POST", "/collect", big, declared)).status)
        statuses.append((await request(app, "POST", "/collect", big, chunk=256)).status)  # no content-length
        many = batch(*[event(n) for n in range(11)])
        statuses.append((await request(app, "POST", "/collect", many)).status)
        statuses.append((await request(app, "POST", "/collect", batch(*[event(n) for n in range(10)]))).status)

    run_app(tmp_path, scenario, max_body_bytes=3000, max_events=10)
    assert statuses == [413, 413, 413, 200]
    [too_many] = dead_letters(tmp_path)
    assert too_many["reason"] == "batch of 11 events is over the limit of 10"


def test_an_event_over_the_byte_limit_is_rejected_alone(tmp_path: Path) -> None:
    out: list[Response] = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", batch(event(1, page_title="t" * 5000), event(2))))

    run_app(tmp_path, scenario, max_event_bytes=4096)
    assert out[0].json()["accepted"] == 1 and out[0].json()["errors"][0]["reason"] == "row exceeds 4096 bytes"
    assert [r["event_id"] for r in landed(tmp_path)] == ["e2"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"not json", "body is not JSON"), (b'{"event": []}', "body is not a batch"), (b"42", "body is not a batch")],
)
def test_a_body_that_is_not_a_batch_is_dead_lettered_whole(tmp_path: Path, body: bytes, reason: str) -> None:
    out: list[Response] = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", body))

    run_app(tmp_path, scenario)
    assert out[0].status == 400 and out[0].json()["error"].startswith(reason)
    [dead] = dead_letters(tmp_path)
    assert dead["reason"].startswith(reason) and dead["payload"] == body.decode()
    assert landed(tmp_path) == []


def test_the_id_cookie_is_set_with_consent_only_and_expired_on_forget(tmp_path: Path) -> None:
    out: dict[str, Response] = {}

    async def scenario(app: Collector) -> None:
        out["no consent"] = await request(app, "POST", "/collect", batch(event(1, consent_analytics=False)))
        out["consent"] = await request(app, "POST", "/collect", batch(event(2)))
        cookie = out["consent"].headers["set-cookie"].split(";")[0]
        out["again"] = await request(app, "POST", "/collect", batch(event(3)), {"cookie": f"other=1; {cookie}"})
        out["forget"] = await request(app, "POST", "/collect/forget")

    run_app(tmp_path, scenario)
    assert "set-cookie" not in out["no consent"].headers
    set_cookie = out["consent"].headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    value = set_cookie.split(";")[0].split("=")[1]
    rows = {r["event_id"]: r for r in landed(tmp_path)}
    assert "network_user_id" not in rows["e1"]
    assert rows["e2"]["network_user_id"] == value and rows["e3"]["network_user_id"] == value
    assert out["forget"].status == 204 and "Max-Age=0" in out["forget"].headers["set-cookie"]


def test_low_disk_space_answers_503_with_retry_after_and_keeps_nothing(tmp_path: Path) -> None:
    out: list[Response] = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", batch(event(1))))
        out.append(await request(app, "GET", "/readyz"))
        out.append(await request(app, "GET", "/healthz"))

    run_app(tmp_path, scenario, min_free_bytes=1 << 62)
    collect, ready, health = out
    assert collect.status == 503 and collect.headers["retry-after"] == "30" and "low disk" in collect.json()["error"]
    assert ready.status == 503 and health.status == 200
    assert landed(tmp_path) == []


def test_a_failed_write_answers_503_and_leaves_no_partial_line(tmp_path: Path, monkeypatch) -> None:
    real_fsync = os.fsync
    failures = iter([True])

    def flaky_fsync(fd: int) -> None:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    out: list[Response] = []

    async def scenario(app: Collector) -> None:
        monkeypatch.setattr(durable.os, "fsync", flaky_fsync)
        out.append(await request(app, "POST", "/collect", batch(event(1), event(2))))
        out.append(await request(app, "POST", "/collect", batch(event(3))))

    run_app(tmp_path, scenario)
    assert out[0].status == 503 and out[0].headers["retry-after"] == "5"
    assert out[1].status == 200
    assert [r["event_id"] for r in landed(tmp_path)] == ["e3"]  # e1 and e2 were cut back, never acknowledged


def test_the_tracker_and_site_are_served(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "shop").mkdir(parents=True)
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "shop" / "index.html").write_text("<h1>shop</h1>")
    (tmp_path / "secret.txt").write_text("no")
    out: list[Response] = []

    async def scenario(app: Collector) -> None:
        for path in ("/", "/shop/", "/pulse.js", "/../secret.txt", "/missing.html"):
            out.append(await request(app, "GET", path))

    run_app(tmp_path, scenario, site=site)
    assert [r.status for r in out] == [200, 200, 200, 404, 404]
    assert out[0].body == b"<h1>home</h1>" and out[1].body == b"<h1>shop</h1>"
    assert out[2].headers["content-type"].startswith("text/javascript") and len(out[2].body) > 0


# ------------------------------------------------------------------------------------------ the durable log


def test_group_commit_covers_concurrent_appends_with_few_fsyncs(tmp_path: Path) -> None:
    async def main() -> DurableLog:
        log = DurableLog(tmp_path / "spool", tmp_path / "landing", tmp_path / "dead", min_free_bytes=0)
        await log.start()
        await asyncio.gather(*(log.append(f'{{"n":{n}}}\n'.encode()) for n in range(500)))
        await log.close()
        return log

    log = asyncio.run(main())
    lines = [line for f in (tmp_path / "landing").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(500))
    assert log.stats.commits < 50  # 500 appends waiting together share fsyncs


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("collector-*.jsonl")) for line in f.read_text().splitlines()]


def test_segments_roll_by_day_and_a_dead_process_segment_is_recovered(tmp_path: Path) -> None:
    clock = {"now": datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)}
    spool = tmp_path / "spool"
    spool.mkdir()
    # what a killed collector left: two acknowledged lines and a torn one
    (spool / "2026-11-26T100000-99999-1.jsonl").write_bytes(b'{"n":"old1"}\n{"n":"old2"}\n{"n":"to')

    async def main() -> None:
        log = DurableLog(spool, tmp_path / "landing", tmp_path / "dead", min_free_bytes=0, clock=lambda: clock["now"])
        recovered = await log.start()
        assert [p.parent.name for p in recovered] == ["2026-11-26"]
        await log.append(b'{"n":"before midnight"}\n')
        clock["now"] += timedelta(seconds=2)
        await log.append(b'{"n":"after midnight"}\n')
        await log.close()

    asyncio.run(main())
    by_day = {d.name: [r["n"] for r in _lines(d)] for d in sorted((tmp_path / "landing").iterdir())}
    assert by_day == {
        "2026-11-26": ["old1", "old2"],
        "2026-11-27": ["before midnight"],
        "2026-11-28": ["after midnight"],
    }
    assert list(spool.iterdir()) == []


def test_overload_is_refused_instead_of_buffered(tmp_path: Path) -> None:
    async def main() -> None:
        log = DurableLog(tmp_path / "spool", tmp_path / "landing", tmp_path / "dead", min_free_bytes=0)
        log.max_pending_bytes = -1  # any backlog is too much
        await log.start()
        with pytest.raises(Unavailable) as refused:
            await log.append(b'{"n":1}\n')
        assert refused.value.retry_after == 1 and log.stats.rejected_overload == 1
        await log.close()

    asyncio.run(main())
