"""Bounded requests (issue 20, point 8, the collector's half): a long User-Agent is cut with a mark, a request's
dead letters carry its metadata once (so they are about the size of the request, not that times the number of
events), and an event nested too deeply is rejected alone with a reason while the rest of its batch is kept."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from test_collector import CHROME, batch, event, landed, request, run_app

from pulse.cli.commands import build_parser
from pulse.collector.app import DEFAULT_MIN_FREE_MB, TRUNCATED_MARK, Collector, CollectorSettings, dumps_deep
from pulse.collector.events import nesting_violation


def dead_letter_records(tmp_path: Path) -> list[dict]:
    files = sorted((tmp_path / "collector" / "dead-letter").glob("*.jsonl"))
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def dead_letter_bytes(tmp_path: Path) -> int:
    return sum(f.stat().st_size for f in (tmp_path / "collector" / "dead-letter").glob("*.jsonl"))


def nested(depth: int) -> object:
    """``depth`` levels of objects and arrays, alternating, around a string."""
    value: object = "bottom"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def test_a_long_user_agent_is_cut_to_the_limit_with_a_mark(tmp_path: Path) -> None:
    agent = CHROME + " " + "X" * 20_000
    out = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", batch(event(1)), {"user-agent": agent}))
        out.append(await request(app, "POST", "/collect", batch(event(2)), {"user-agent": CHROME}))
        out.append(await request(app, "GET", "/metrics"))

    run_app(tmp_path, scenario)
    assert [r.status for r in out] == [200, 200, 200]
    rows = {r["event_id"]: r for r in landed(tmp_path)}
    assert rows["e1"]["user_agent"] == agent[:1024] + TRUNCATED_MARK
    assert rows["e2"]["user_agent"] == CHROME  # an ordinary agent is kept as sent
    assert "pulse_collector_user_agents_truncated_total 1\n" in out[2].body.decode()


@pytest.mark.parametrize("agent_bytes", [500, 200_000])
def test_dead_letters_keep_the_request_metadata_once(tmp_path: Path, agent_bytes: int) -> None:
    """The probe's request: a long agent and 500 invalid events. Its dead letters are one record holding the
    agent once; their size is about the request's (the reasons add a few dozen bytes per event)."""
    agent = "A" * agent_bytes
    # Two broken rules each (an event gets every reason that applies, as in ingestion's quarantine).
    body = batch(*[{"event_id": f"x{n}", "event_type": "nope", "anonymous_id": "a"} for n in range(500)])
    request_bytes = len(body) + len(agent)
    out = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", body, {"user-agent": agent}))

    run_app(tmp_path, scenario)
    assert out[0].status == 200 and out[0].json()["rejected"] == 500
    [record] = dead_letter_records(tmp_path)
    assert [item["index"] for item in record["rejected"]] == list(range(500))
    assert record["rejected"][7]["payload"] == {"event_id": "x7", "event_type": "nope", "anonymous_id": "a"}
    assert record["rejected"][7]["reason"] == "missing required field event_time; unknown event_type: nope"
    written = dead_letter_bytes(tmp_path)
    assert written < 3 * request_bytes, (written, request_bytes)
    text = b"".join(f.read_bytes() for f in (tmp_path / "collector" / "dead-letter").glob("*.jsonl"))
    assert text.count(b"A" * min(agent_bytes, 1024)) == 1  # the agent (cut to the limit) once


def test_a_too_deep_event_is_rejected_alone_and_the_rest_of_its_batch_kept(tmp_path: Path) -> None:
    deep = event(2, properties={"tree": nested(300)})
    out = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", batch(event(1), deep, event(3))))
        # the event, its properties and 30 levels inside: 32, the limit
        out.append(await request(app, "POST", "/collect", batch(event(4, properties={"t": nested(30)}))))

    run_app(tmp_path, scenario)
    first, within = out
    assert first.status == 200 and within.status == 200
    assert first.json()["accepted"] == 2 and within.json()["accepted"] == 1
    [error] = first.json()["errors"]
    assert error == {"index": 1, "event_id": "e2", "reason": "nested deeper than 32 levels of objects and arrays"}
    assert sorted(r["event_id"] for r in landed(tmp_path)) == ["e1", "e3", "e4"]
    [record] = dead_letter_records(tmp_path)
    [item] = record["rejected"]
    assert item["reason"] == error["reason"] and item["payload"] == deep  # the payload whole, all 300 levels


def test_a_body_too_deep_to_parse_gets_400_with_a_reason(tmp_path: Path) -> None:
    body = b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    out = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", body))

    run_app(tmp_path, scenario)
    assert out[0].status == 400 and out[0].json()["error"].startswith("body is not JSON: ")
    [record] = dead_letter_records(tmp_path)
    assert record["rejected"][0]["payload"] == body.decode()


def test_a_structured_event_id_is_not_echoed(tmp_path: Path) -> None:
    out = []

    async def scenario(app: Collector) -> None:
        out.append(await request(app, "POST", "/collect", batch(event(1, event_id={"a": nested(300)}))))

    run_app(tmp_path, scenario)
    assert out[0].status == 200 and out[0].json()["errors"][0]["event_id"] is None


def test_nesting_is_measured_without_recursion() -> None:
    assert nesting_violation(event(1), 2) is None
    assert nesting_violation(event(1, properties={"a": {}}), 2) == "nested deeper than 2 levels of objects and arrays"
    assert nesting_violation(event(1, properties={"a": {}}), 3) is None
    assert nesting_violation(nested(100_000), 32) is not None  # no RecursionError
    assert orjson.loads(dumps_deep(nested(400))) == nested(400)
    assert dumps_deep({"a": [1, 2.5, None, True, "s"], "b": {}}) == orjson.dumps(
        {"a": [1, 2.5, None, True, "s"], "b": {}}
    )


def test_the_docs_cite_the_codes_collector_defaults() -> None:
    """Docs and code once disagreed on the free-disk default (30 vs 256 MB): every ``--min-free-mb N`` and
    ``--max-header-kb N`` the docs show is the default of ``pulse collect`` and of :class:`CollectorSettings`."""
    args = build_parser().parse_args(["collect"])
    assert args.min_free_mb == DEFAULT_MIN_FREE_MB and CollectorSettings.min_free_bytes == DEFAULT_MIN_FREE_MB << 20
    assert args.max_header_kb * 1024 == CollectorSettings.max_header_bytes
    repo = Path(__file__).resolve().parents[2]
    cited = {"--min-free-mb": set(), "--max-header-kb": set()}
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        for flag, value in re.findall(r"(--min-free-mb|--max-header-kb)[ =](\d+)", doc.read_text()):
            cited[flag].add(float(value))
    assert cited == {"--min-free-mb": {args.min_free_mb}, "--max-header-kb": {args.max_header_kb}}
    collection = (repo / "docs" / "collection.md").read_text()
    assert f"default {DEFAULT_MIN_FREE_MB} MB" in collection
