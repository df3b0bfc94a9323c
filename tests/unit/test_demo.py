"""The demo generator: layout, determinism, contract conformance, injected bad rows, persona realism."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pulse.core.contract import FIELDS, is_known_event_type
from pulse.demo import generator as demo
from pulse.demo.generator import (
    MALFORMED_KINDS,
    PERSONAS,
    DemoSummary,
    default_start,
    generate_demo,
    users_for_target_events,
)

USERS, DAYS, SEED, START = 400, 14, 11, date(2026, 9, 1)
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FIELD_BY_NAME = {f.name: f for f in FIELDS}


def ms(ts: str) -> int:
    return int(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def classify(line: str) -> tuple[str, dict | None]:
    """("ok", event) for a well-formed contract event, else (malformed kind, parsed or None)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "truncated_json", None
    if "event_id" not in obj:
        return "missing_event_id", obj
    if not is_known_event_type(obj["event_type"]):
        return "unknown_event_type", obj
    if isinstance(obj.get("price"), (int, float)) and obj["price"] < 0:
        return "negative_price", obj
    if not TS.match(obj["event_time"]):
        return "bad_timestamp", obj
    if obj.get("user_id") is None and obj.get("anonymous_id") is None:
        return "missing_identity", obj
    return "ok", obj


def check_contract(event: dict) -> None:
    for f in FIELDS:
        if f.required:
            assert event.get(f.name) is not None, (f.name, event)
    for name, value in event.items():
        assert name in FIELD_BY_NAME, name
        if value is None:
            continue
        f = FIELD_BY_NAME[name]
        expected = {
            "string": str,
            "timestamp": str,
            "double": (int, float),
            "bigint": int,
            "boolean": bool,
            "json": dict,
        }[f.type]
        assert isinstance(value, expected), (name, value)
        if f.type in ("double", "bigint"):
            assert not isinstance(value, bool)
            assert f.min_value is None or value >= f.min_value, (name, value)
            assert f.max_value is None or value <= f.max_value, (name, value)
        if f.type == "timestamp":
            assert TS.match(value), (name, value)


def read_files(summary: DemoSummary) -> list[tuple[date, str]]:
    """(file date, line) for every line of every file, in file order."""
    out = []
    for path in sorted(summary.files):
        day = date.fromisoformat(path.parent.name)
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            out += [(day, line) for line in fh]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, list[tuple[date, str]]]:
    landing = tmp_path_factory.mktemp("landing")
    summary = generate_demo(landing, users=USERS, days=DAYS, seed=SEED, start=START, progress=False)
    return landing, summary, read_files(summary)


@pytest.fixture(scope="module")
def events(run) -> list[tuple[date, dict]]:
    """Well-formed events (incl. duplicate copies) with their file date."""
    out = []
    for day, line in run[2]:
        kind, obj = classify(line)
        if kind == "ok":
            out.append((day, obj))
    return out


@pytest.fixture(scope="module")
def personas(run) -> dict[str, str]:
    lines = (run[0] / "personas.csv").read_text().splitlines()
    assert lines[0] == "user_key,persona"
    return dict(line.split(",") for line in lines[1:])


def test_layout(run) -> None:
    landing, summary, _ = run
    days = [START + timedelta(d) for d in range(DAYS)]
    names = sorted(p.parent.name for p in summary.files)
    assert names[:DAYS] == [d.isoformat() for d in days]  # every day of the range has a file
    assert len(names) <= DAYS + 1  # at most one spill-over day
    for path in summary.files:
        assert path.name == "demo.jsonl.gz" and path.parent.parent == landing / "events"
    assert summary.users == USERS and sum(summary.personas.values()) == USERS
    assert set(summary.personas) == set(PERSONAS) and all(summary.personas.values())


def test_rerun_is_byte_identical_and_leaves_other_files(run, tmp_path: Path) -> None:
    landing, summary, _ = run

    def digest(paths: list[Path]) -> dict[str, str]:
        return {str(p.relative_to(landing)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    before = digest([*summary.files, landing / "personas.csv"])
    other = landing / "events" / START.isoformat() / "other.jsonl"
    other.write_text('{"event_id": "x"}\n')
    stale = landing / "events" / "2020-01-01" / "demo.jsonl.gz"  # an older demo run's file goes
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    again = generate_demo(landing, users=USERS, days=DAYS, seed=SEED, start=START, progress=False)
    assert digest([*again.files, landing / "personas.csv"]) == before
    assert other.read_text() == '{"event_id": "x"}\n'
    assert not stale.exists()
    assert again.events_written == summary.events_written
    assert again.malformed_injected == summary.malformed_injected
    # a different seed gives different data
    elsewhere = generate_demo(tmp_path, users=USERS, days=DAYS, seed=SEED + 1, start=START, progress=False)
    assert elsewhere.files[0].read_bytes() != summary.files[0].read_bytes()


def test_every_line_is_an_event_or_a_counted_malformed_line(run, events) -> None:
    _, summary, lines = run
    kinds = Counter(classify(line)[0] for _, line in lines)
    assert kinds.pop("ok") == summary.events_written == len(events)
    assert dict(kinds) == {k: v for k, v in summary.malformed_injected.items() if v}
    assert set(summary.malformed_injected) == set(MALFORMED_KINDS)
    assert all(v >= 1 for v in summary.malformed_injected.values())  # every unhappy path, every run
    assert all(line.endswith("\n") for _, line in lines)


def test_well_formed_events_follow_the_contract(events) -> None:
    types = Counter()
    for _, e in events:
        check_contract(e)
        assert is_known_event_type(e["event_type"])
        assert e.get("anonymous_id"), e  # every visitor has a cookie
        types[e["event_type"]] += 1
    expected = {"page_view", "page_ping", "scroll", "click", "search", "product_view", "add_to_cart"}
    expected |= {"remove_from_cart", "checkout", "purchase", "identify"}
    assert expected <= set(types)


def test_files_hold_events_received_that_day(events) -> None:
    for day, e in events:
        assert e["received_at"][:10] == day.isoformat()
        assert ms(e["received_at"]) > ms(e["event_time"])


def test_duplicates_and_late_arrivals_match_the_summary(run, events) -> None:
    _, summary, _ = run
    seen: set[str] = set()
    duplicates = late = 0
    for day, e in events:  # files by day, lines by received_at: the first copy comes first
        late += day > date.fromisoformat(e["event_time"][:10])
        if e["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(e["event_id"])
        if day == date.fromisoformat(e["event_time"][:10]):
            assert 50 <= ms(e["received_at"]) - ms(e["event_time"]) <= 3000, e  # on time: a small delay
    assert duplicates == summary.duplicates_injected > 0
    assert late == summary.late_injected > 0
    assert 0.002 < duplicates / len(events) < 0.01
    assert 0.005 < late / len(events) < 0.03
    by_id = defaultdict(list)
    for day, e in events:
        by_id[e["event_id"]].append((day, e))
    copies = [v for v in by_id.values() if len(v) > 1]
    for (_, first), (_, second) in (v[:2] for v in copies):
        assert {k: v for k, v in first.items() if k != "received_at"} == {
            k: v for k, v in second.items() if k != "received_at"
        }
        assert second["received_at"] > first["received_at"]
    assert any(v[0][0] < v[1][0] for v in copies)  # some duplicates land in a later day's file


def test_identity_and_consent(events, personas) -> None:
    users = {}
    identifies = Counter()
    for _, e in events:
        key = e.get("user_id") or e["anonymous_id"]
        assert key in personas
        consent = (e["consent_analytics"], e["consent_personalization"])
        assert users.setdefault(key, consent) == consent  # constant per user
        if e["event_type"] == "identify":
            assert e.get("user_id")
            identifies[e["user_id"]] += 1
    logged_in = {k for k in users if k.startswith("cust_")}
    assert 0.75 < len(logged_in) / len(users) < 0.95
    assert set(identifies) == logged_in
    assert 0.9 < sum(a for a, _ in users.values()) / len(users) <= 1.0
    assert 0.8 < sum(p for _, p in users.values()) / len(users) < 0.97
    # a user's anonymous id never changes and never appears without their user_id
    anon_of = {}
    for _, e in events:
        if e.get("user_id"):
            assert anon_of.setdefault(e["user_id"], e["anonymous_id"]) == e["anonymous_id"]


def test_page_pings_are_ten_seconds_apart(events) -> None:
    views, pings = {}, defaultdict(list)
    for _, e in events:
        if e["event_type"] == "page_view":
            views[e["page_view_id"]] = ms(e["event_time"])
        elif e["event_type"] == "page_ping":
            pings[e["page_view_id"]].append(ms(e["event_time"]))
    assert pings
    for pv, times in pings.items():
        times = sorted(set(times))
        expected = [views[pv] + 10_000 * (i + 1) for i in range(len(times))]
        assert times == expected


def test_sessions_and_pages(events) -> None:
    sessions = defaultdict(list)
    for _, e in events:
        sessions[e["session_id"]].append(e)
    for evs in sessions.values():
        times = sorted({ms(e["event_time"]) for e in evs})
        assert all(b - a < 30 * 60_000 for a, b in zip(times, times[1:], strict=False))
        assert len({e.get("user_id") or e["anonymous_id"] for e in evs}) == 1
        first = min((e for e in evs if e["event_type"] == "page_view"), key=lambda e: e["event_time"])
        assert not first.get("referrer", "").startswith("https://demo-shop.example.com/")  # external or none
    utm = [e for _, e in events if e["event_type"] == "page_view" and e.get("utm_source")]
    assert utm and all("utm_source=" in e["page_url"] for e in utm)
    scrolls = [e for _, e in events if e["event_type"] == "scroll"]
    assert {e["scroll_depth_pct"] for e in scrolls} == {25, 50, 75, 100}
    assert all(e["scroll_depth_px"] <= e["doc_height_px"] for e in scrolls)
    purchases = [e for _, e in events if e["event_type"] == "purchase"]
    assert purchases and all(e["revenue"] > 0 and e["quantity"] >= 1 and e["order_id"] for e in purchases)


def test_purchase_revenue_is_the_cart(events) -> None:
    carts = defaultdict(float)
    unique = {e["event_id"]: e for _, e in events}.values()
    for e in unique:
        if e["event_type"] == "add_to_cart":
            carts[e["session_id"]] += e["price"] * e["quantity"]
        elif e["event_type"] == "remove_from_cart":
            carts[e["session_id"]] -= e["price"] * e["quantity"]
    for e in unique:
        if e["event_type"] == "purchase":
            assert e["revenue"] == pytest.approx(carts[e["session_id"]], abs=0.011)


def test_personas_behave_differently(events, personas) -> None:
    stats = defaultdict(lambda: {"users": set(), "events": 0, "purchases": 0, "adds": 0, "categories": set()})
    for _, e in events:
        key = e.get("user_id") or e["anonymous_id"]
        s = stats[personas[key]]
        s["users"].add(key)
        s["events"] += 1
        s["purchases"] += e["event_type"] == "purchase"
        s["adds"] += e["event_type"] == "add_to_cart"
        if e["event_type"] == "product_view":
            s["categories"].add((key, e["category"]))

    def per_user(persona: str, what: str) -> float:
        s = stats[persona]
        value = len(s[what]) if isinstance(s[what], set) else s[what]
        return value / len(s["users"])

    assert per_user("buyer", "purchases") > 5 * per_user("browser", "purchases")
    assert per_user("browser", "categories") > 2 * per_user("intent_driven", "categories")
    assert per_user("cart_abandoner", "adds") > 1
    assert per_user("cart_abandoner", "purchases") < 0.05 * per_user("cart_abandoner", "adds")
    assert per_user("intent_driven", "purchases") > 3 * per_user("browser", "purchases")
    others = [per_user(p, "events") for p in PERSONAS if p != "passive"]
    assert per_user("passive", "events") < min(others) / 5


def test_small_chunks_unmerged_parts_and_many_gzip_members_stay_consistent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "MAX_CHUNK_SESSIONS", 40)
    monkeypatch.setattr(demo, "MAX_MERGE_BYTES", 0)
    monkeypatch.setattr(demo, "GZIP_BLOCK", 1000)  # many gzip members, cut mid-line
    summary = generate_demo(tmp_path, users=120, days=3, seed=3, start=START, progress=False)
    kinds = Counter(classify(line)[0] for _, line in read_files(summary))
    assert kinds.pop("ok") == summary.events_written
    assert dict(kinds) == summary.malformed_injected


def test_users_for_target_events_is_calibrated(tmp_path: Path) -> None:
    users = users_for_target_events(40_000, days=7, seed=5)
    summary = generate_demo(tmp_path, users=users, days=7, seed=5, start=START, progress=False)
    assert 0.8 < summary.events_written / 40_000 < 1.2


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path, users=0)
    with pytest.raises(ValueError):
        users_for_target_events(1000, days=0)
    with pytest.raises(ValueError):
        generate_demo(tmp_path, users=10, seed=-1)


def test_default_start_ends_the_history_yesterday() -> None:
    assert default_start(60, today=date(2026, 3, 10)) == date(2026, 1, 9)  # 2026-01-09 .. 2026-03-09
    assert default_start(1, today=date(2024, 3, 1)) == date(2024, 2, 29)


def _utc_today() -> date:
    return datetime.now(UTC).date()


def test_without_a_start_the_demo_ends_yesterday(tmp_path: Path) -> None:
    before = _utc_today()
    summary = generate_demo(tmp_path, users=40, days=3, seed=5, progress=False)
    after = _utc_today()
    days = sorted(date.fromisoformat(d.name) for d in (tmp_path / "events").iterdir())
    today = summary.start + timedelta(days=3)
    assert today in (before, after)  # (the test may straddle midnight UTC)
    # every day of the range has its file, the last one yesterday; only late deliveries land today
    assert days[:3] == [today - timedelta(days=n) for n in (3, 2, 1)]
    assert days[3:] in ([], [today])


def test_pulse_demo_and_pulse_run_default_to_a_history_ending_yesterday(pulse_home, capsys) -> None:
    from pulse.cli.commands import build_parser, main

    assert build_parser().parse_args(["demo"]).start is None
    assert build_parser().parse_args(["run"]).start is None
    assert build_parser().parse_args(["demo", "--start", "2026-09-01"]).start == date(2026, 9, 1)
    today = _utc_today()
    assert main(["demo", "--users", "30", "--days", "4"]) == 0
    days = sorted(date.fromisoformat(d.name) for d in pulse_home.events_landing.iterdir())
    if _utc_today() == today:  # not across midnight UTC
        assert days[0] == today - timedelta(days=4) and today - timedelta(days=1) in days and days[-1] <= today
        assert f"({days[0]} .. {today - timedelta(days=1)})" in capsys.readouterr().out
