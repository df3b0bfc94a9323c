"""What the CLI prints about raw.events_quarantine after a run: per reason, the count and one example line,
most frequent first, readable for a day of many files and many reasons."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from pulse.ingest.quarantine import MAX_REASONS, quarantine_report, render_quarantine
from pulse.ingest.raw_events import IngestOptions, ingest_days

DAY = date(2026, 9, 1)


def line(i: int, **overrides: object) -> str:
    event = {"event_id": f"e{i}", "event_type": "page_view", "event_time": "2026-09-01T10:00:00Z", "anonymous_id": "a"}
    event.update(overrides)
    return json.dumps({k: v for k, v in event.items() if v is not None})


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def land(events: Path, day: date, name: str, lines: list[str]) -> None:
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def test_reasons_are_counted_with_one_example_each(tmp_path: Path, con) -> None:
    events = tmp_path / "events"
    # 15 files, as a busy day has: the same few reasons again and again, with different values in them
    for f in range(15):
        land(
            events,
            DAY,
            f"part-{f:02d}.jsonl",
            [
                line(f * 10, event_type=f"weird_{f}"),  # unknown event_type: weird_<f>
                line(f * 10 + 1, event_time="1990-05-01T00:00:00Z"),  # before the floor
                line(f * 10 + 2, event_time="1990-05-01T00:00:00Z", anonymous_id=None),  # two reasons at once
                "not json at all",
                line(f * 10 + 3),  # fine
            ],
        )
    ingest_days(con, events, [DAY])
    report = quarantine_report(con, DAY, DAY)
    assert report.lines == 60
    assert [(r.reason, r.lines) for r in report.reasons] == [
        ("event_time before 2000-01-01 00:00:00", 30),
        ("malformed JSON", 15),
        ("missing identity", 15),
        ("unknown event_type", 15),
    ]
    first = report.reasons[0]
    assert (first.example_file, first.example_line) == ("2026-09-01/part-00.jsonl", 2)
    assert '"event_time": "1990-05-01T00:00:00Z"' in first.example
    text = render_quarantine(report)
    assert text.splitlines()[:3] == [
        "quarantine: 60 lines of landing days 2026-09-01 in raw.events_quarantine, by reason:",
        "  30  event_time before 2000-01-01 00:00:00",
        '      e.g. 2026-09-01/part-00.jsonl:2: {"event_id": "e1", "event_type": "page_view", "event_time": '
        '"1990-05-01T00:00:00Z", "anonymous_id": "a"}',
    ]
    assert "  hint: older events are quarantined below PULSE_EARLIEST_EVENT_TIME" in text
    assert len(text.splitlines()) == 1 + 2 * 4 + 1  # head, two lines per reason, one hint


def test_long_lines_are_cut_and_many_reasons_summed(tmp_path: Path, con) -> None:
    events = tmp_path / "events"
    lines = [line(0, page_title="x" * 5000, event_type=None)]
    lines += [line(i, **{"price": "free" if i % 2 else -1, "event_type": f"t{i}"}) for i in range(1, 40)]
    broken_fields = ["is_bot", "quantity", "scroll_depth_pct", "scroll_depth_px", "doc_height_px", "revenue"]
    broken_fields += ["viewport_height_px", "value", "cart_value", "consent_analytics", "consent_personalization"]
    broken_fields += ["properties", "received_at"]
    lines += [line(100 + i, **{f: "nope"}) for i, f in enumerate(broken_fields)]
    land(events, DAY, "part.jsonl", lines)
    ingest_days(con, events, [DAY], IngestOptions())
    report = quarantine_report(con, DAY, DAY)
    text = render_quarantine(report, gate_blocked=True)
    assert "(the raw gate gx_raw_events blocked the models" in text.splitlines()[0]
    example = next(t for t in text.splitlines() if "part.jsonl:1:" in t)
    assert example.endswith("…") and len(example) < 200
    # unknown event_type, price (two), 13 broken fields, a missing event_type: 17 reasons, 12 shown
    assert len(report.reasons) == 17 > MAX_REASONS
    assert "  ... 5 more reasons (5 lines): select reason, count(*) from raw.events_quarantine group by all" in text
    assert max(len(t) for t in text.splitlines()) < 240


def test_only_the_runs_own_lines_unless_the_gate_blocked(tmp_path: Path, con) -> None:
    events = tmp_path / "events"
    other = DAY + timedelta(days=1)
    land(events, DAY, "a.jsonl", ["broken"])
    ingest_days(con, events, [DAY])
    since = datetime.now().replace(microsecond=0) + timedelta(days=365 * 100)  # a run that quarantined nothing
    assert quarantine_report(con, DAY, DAY, since=since).lines == 0
    assert quarantine_report(con, DAY, DAY).lines == 1
    assert quarantine_report(con, other, other).lines == 0  # another day
    assert quarantine_report(duckdb.connect(), DAY, DAY).lines == 0  # no raw tables yet
