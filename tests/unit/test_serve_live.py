"""The read API with live state: GET /users/{key} merges the published profile with the stream's state
database (live-only, published-only, merged, stitched, missing or unreadable database), and
GET /users/{key}/next decides the content with the declared rules, naming the rule and its inputs.

The state database is written here with the shared schema of issue 22 (the stream processor that writes it
in production is another module); the server is the real app on uvicorn (test_serve.LiveServer)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from test_serve import LiveServer, profile, write_snapshot

from pulse.activation.serve import create_app
from pulse.live.store import SCHEMA

SNAP = "20261126T194500Z-aaaaaa"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # the day after the snapshot's as_of_date (2026-11-26)
DBT_VARS = {"frequent_visitor_sessions_per_day": 5}


# The shared schema of the live state database (docs/realtime.md), exactly.
def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def state(
    day: str = "2026-11-27",
    sessions: int = 2,
    by_category: dict | None = None,
    cart: list | None = None,
    last_purchase_at: str | None = None,
    **extra,
) -> dict:
    """A live_users.state as the stream processor writes it (pulse/live/processor.py, ActivityModel: the
    counters of each kept UTC day, the open cart, the latest purchase), plus top-level ``extra`` keys."""
    by_category = {"bags": 3, "shoes": 1} if by_category is None else by_category
    return {
        "activity": {
            "days": {
                day: {
                    "events": 20,
                    "sessions": sessions,
                    "page_views": 9,
                    "product_views": sum(by_category.values()),
                    "product_views_by_category": by_category,
                    "cart_adds": 1,
                    "purchases": 0,
                    "revenue": 0.0,
                    "engaged_seconds": 312,
                    "first_event_at": f"{day}T09:40:00+00:00",
                    "last_event_at": f"{day}T09:55:00+00:00",
                }
            },
            "cart": cart or [],
            "session": {"started_at": f"{day}T09:40:00+00:00", "last_event_at": f"{day}T09:55:00+00:00"},
            "last_purchase_at": last_purchase_at,
        },
    } | extra


def write_state(path: Path, users: dict, scores: dict | None = None, firings=(), identity: dict | None = None) -> None:
    """Create (or add to) a WAL state database with these rows."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("pragma journal_mode=wal")
        if new:
            con.executescript(SCHEMA)  # the processor's own schema (pulse/live/store.py)
        with con:
            for key, (st, last_event) in users.items():
                con.execute(
                    "insert or replace into live_users values (?, ?, ?, ?)",
                    (key, json.dumps(st), ts(last_event), ts(last_event + timedelta(milliseconds=40))),
                )
            for key, (p, as_of) in (scores or {}).items():
                features = json.dumps({"sessions_30d": 4, "cart_adds_30d": 2})
                con.execute(
                    "insert or replace into live_scores values (?, ?, ?, ?, ?, ?)",
                    (key, p, "3", features, ts(as_of), ts(as_of + timedelta(milliseconds=5))),
                )
            for key, trigger, fired_at in firings:
                con.execute(
                    "insert into live_trigger_firings (firing_key, trigger_name, user_key, fired_at, recorded_at, "
                    "evidence) values (?, ?, ?, ?, ?, ?)",
                    (
                        f"{trigger}:{key}:{ts(fired_at)}",
                        trigger,
                        key,
                        ts(fired_at),
                        ts(fired_at + timedelta(seconds=1)),
                        json.dumps({"last_cart_add_at": ts(fired_at - timedelta(minutes=30))}),
                    ),
                )
            for anonymous_id, user_id in (identity or {}).items():
                con.execute("insert or replace into identity_map values (?, ?, ?)", (anonymous_id, user_id, ts(NOW)))
    finally:
        con.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


PUBLISHED = [
    profile("merged", SNAP, 1, active_triggers=["high_intent"], intent_probability=0.2, top_categories=["shoes"]),
    profile("bought", SNAP, 2, active_triggers=["cart_abandonment"], top_categories=[]),
    profile("stale", SNAP, 3, active_triggers=[], intent_probability=0.3),
    profile("published_only", SNAP, 4, active_triggers=[], top_categories=["hats"], user_type="Passive"),
    profile("a/next", SNAP, 5),
    profile("no_consent", SNAP, 6, active_triggers=["cart_abandonment"], consent_personalization=False),
]


def seed_state(path: Path) -> None:
    write_state(
        path,
        users={
            "merged": (
                state(
                    cart=[{"product_id": "p1", "quantity": 1, "price": 59.0, "added_at": "2026-11-27T09:50:00+00:00"}]
                ),
                NOW - timedelta(minutes=5),
            ),
            "bought": (state(last_purchase_at="2026-11-27T08:00:00+00:00", by_category={}), NOW - timedelta(hours=2)),
            "stale": (state(day="2026-11-26", sessions=7), NOW - timedelta(hours=20)),
            "liveonly": (state(sessions=6, consent_personalization=True), NOW - timedelta(minutes=1)),
        },
        scores={"merged": (0.77, NOW - timedelta(minutes=5)), "stale": (0.9, NOW - timedelta(days=2))},
        firings=[
            ("merged", "cart_abandonment", NOW - timedelta(minutes=30)),
            ("merged", "low_engagement", NOW - timedelta(days=8)),  # older than 7 days: not active
            ("liveonly", "frequent_visitor", NOW - timedelta(minutes=1)),
            ("bought", "cart_abandonment", NOW - timedelta(hours=2, minutes=30)),  # 07:30, bought at 08:00
        ],
        identity={"anon-1": "merged"},
    )


@pytest.fixture(scope="module")
def live_api(tmp_path_factory) -> Iterator[tuple[LiveServer, Clock, Path]]:
    root = tmp_path_factory.mktemp("live")
    exports = root / "exports"
    write_snapshot(exports, SNAP, PUBLISHED, {})
    db = root / "live" / "state.sqlite"
    seed_state(db)
    clock = Clock(NOW)
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=clock))
    yield server, clock, db
    server.stop()


def get(server: LiveServer, key: str, suffix: str = "") -> tuple[int, dict, dict]:
    return server.get("/users/" + quote(key, safe="") + suffix)


# ------------------------------------------------------------------------------------------------ GET /users/{key}


def test_merged_profile_says_which_fields_are_live_and_as_of_when(live_api) -> None:
    server, _, _ = live_api
    status, headers, body = get(server, "merged")
    assert status == 200 and headers["x-pulse-snapshot"] == SNAP
    assert body["profile_source"] == "merged"
    assert body["intent_probability"] == 0.77 and body["intent_model_version"] == "3"
    assert body["intent_status"] == "current" and "scored live" in body["intent_status_reason"]
    assert body["fields"]["intent_probability"] == {"live": True, "as_of": "2026-11-27T09:55:00Z"}
    # the live cart abandonment joins the published high_intent; the 8-day-old low_engagement does not
    assert body["active_triggers"] == ["cart_abandonment", "high_intent"]
    assert body["fields"]["active_triggers"]["live"] is True
    # published fields stay the snapshot's, as of its as_of_date
    assert body["segment_name"] == f"segment of merged in {SNAP}"
    assert body["fields"]["segment_name"] == {"live": False, "as_of": "2026-11-26T00:00:00Z"}
    assert body["intent_decile"] == PUBLISHED[0]["intent_decile"] and body["fields"]["intent_decile"]["live"] is False
    live = body["live"]
    assert live["status"] == "ok" and live["reason"] is None
    assert live["last_event_time"] == "2026-11-27T09:55:00Z"
    assert live["today"]["sessions"] == 2 and live["today"]["product_views"] == 4
    assert [item["product_id"] for item in live["state"]["activity"]["cart"]] == ["p1"]
    assert live["score"]["probability"] == 0.77 and live["score"]["features"] == {"sessions_30d": 4, "cart_adds_30d": 2}
    assert [(f["trigger_name"], f["active"]) for f in live["recent_firings"]] == [
        ("low_engagement", False),
        ("cart_abandonment", True),
    ]


def test_a_purchase_since_the_snapshot_cancels_its_cart_abandonment(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "bought")
    assert body["active_triggers"] == []  # published ["cart_abandonment"], bought live at 08:00
    assert [(f["trigger_name"], f["active"]) for f in body["live"]["recent_firings"]] == [("cart_abandonment", False)]
    assert body["fields"]["active_triggers"]["live"] is True


def test_a_live_score_older_than_the_snapshot_does_not_replace_the_published_one(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "stale")
    assert body["intent_probability"] == 0.3
    assert body["fields"]["intent_probability"] == {"live": False, "as_of": "2026-11-26T00:00:00Z"}
    assert body["live"]["score"]["probability"] == 0.9  # shown, not used
    assert body["live"]["today"] == {}  # its counters are yesterday's: nothing yet today


def test_a_visitor_seen_only_live_gets_a_live_only_profile(live_api) -> None:
    server, _, _ = live_api
    status, headers, body = get(server, "liveonly")
    assert status == 200 and headers["x-pulse-snapshot"] == SNAP
    assert body["profile_source"] == "live"
    assert body["user_key"] == "liveonly" and body["segment_name"] is None and body["as_of_date"] is None
    assert body["active_triggers"] == ["frequent_visitor"]
    assert body["top_categories"] == ["bags", "shoes"]  # today's product views, most first
    assert body["consent_personalization"] is True
    assert body["fields"]["active_triggers"]["live"] is True
    assert body["fields"]["top_categories"] == {"live": True, "as_of": "2026-11-27T09:59:00Z"}
    assert body["fields"]["segment_name"] == {"live": False, "as_of": None}
    assert set(body["fields"]) == set(PUBLISHED[0])  # every published field, each said live or not


def test_a_user_not_seen_live_gets_the_published_profile(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "published_only")
    assert body["profile_source"] == "published"
    assert body["live"]["status"] == "not_seen" and body["live"]["reason"] is None
    assert all(not f["live"] for f in body["fields"].values())


def test_an_anonymous_id_stitched_live_reads_its_user(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "anon-1")
    assert body["user_key"] == "merged" and body["stitched_from"] == "anon-1"
    assert body["profile_source"] == "merged" and body["intent_probability"] == 0.77


def test_unknown_everywhere_is_still_404(live_api) -> None:
    server, _, _ = live_api
    status, _, body = get(server, "nobody")
    assert (status, body) == (404, {"detail": "unknown user_key: nobody"})


def test_the_clock_moves_firings_out_of_the_active_window(live_api) -> None:
    server, clock, _ = live_api
    try:
        clock.now = NOW + timedelta(days=7)  # the cart abandonment fired 7 days and 30 minutes ago
        _, _, body = get(server, "merged")
        assert body["active_triggers"] == ["high_intent"]
        assert body["live"]["today"] == {}  # a new day
    finally:
        clock.now = NOW


# ------------------------------------------------------------------------------------------------ GET /users/{key}/next


def test_next_names_the_rule_and_the_live_inputs_it_used(live_api) -> None:
    server, _, _ = live_api
    status, headers, body = get(server, "merged", "/next")
    assert status == 200 and headers["x-pulse-snapshot"] == SNAP
    assert body["rule"] == "cart_reminder" and body["rule_position"] == 2
    assert body["decision"]["slot"] == "banner" and body["decision"]["content"] == "cart_reminder"
    assert body["inputs"] == {
        "active_triggers": {
            "value": ["cart_abandonment", "high_intent"],
            "live": True,
            "as_of": body["inputs"]["active_triggers"]["as_of"],
        }
    }
    assert body["profile_source"] == "merged" and body["live_status"] == "ok"
    assert body["rules_file"].endswith("decision_rules.yaml") and len(body["rules_sha256"]) == 64
    assert body["decided_at"] == "2026-11-27T10:00:00Z"


def test_next_for_a_live_only_frequent_visitor_compares_with_the_dbt_var(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "liveonly", "/next")
    assert body["rule"] == "frequent_visitor_loyalty" and body["profile_source"] == "live"
    assert body["inputs"]["sessions_today"] == {"value": 6, "live": True, "as_of": "2026-11-27T09:59:00Z"}


def test_next_respects_a_refused_consent_before_any_trigger(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "no_consent", "/next")
    assert body["rule"] == "no_personalization" and body["decision"] == {"slot": "none", "content": "generic"}
    assert body["inputs"]["consent_personalization"] == {
        "value": False,
        "live": False,
        "as_of": "2026-11-26T00:00:00Z",
    }


def test_next_for_a_published_browser_shows_their_top_category(live_api) -> None:
    server, _, _ = live_api
    _, _, body = get(server, "published_only", "/next")
    assert body["rule"] == "browser_top_category"
    assert body["decision"]["category"] == "hats" and body["decision"]["message"] == "Picked for you: hats"
    assert body["inputs"]["top_category"]["live"] is False


def test_next_for_an_unknown_visitor_is_the_default(live_api) -> None:
    server, _, _ = live_api
    status, _, body = get(server, "first-visit", "/next")
    assert status == 200
    assert (body["rule"], body["rule_position"], body["profile_source"]) == ("default", None, "none")
    assert body["decision"]["content"] == "welcome"
    assert set(body["inputs"]) >= {"consent_personalization", "active_triggers", "sessions_today", "top_category"}


def test_an_encoded_slash_next_is_a_profile_and_a_literal_one_the_decision(live_api) -> None:
    server, _, _ = live_api
    status, headers, body = server.get("/users/a%2Fnext")
    assert status == 200 and body["user_key"] == "a/next" and "segment_name" in body
    assert headers["x-pulse-snapshot"] == SNAP
    status, _, body = server.get("/users/a%2Fnext/next")
    assert status == 200 and body["user_key"] == "a/next" and "rule" in body
    status, _, body = server.get("/users/%2Fnext")
    assert status == 404 and body == {"detail": "unknown user_key: /next"}


# ------------------------------------------------------------------------------------------------ degraded live state


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    path = tmp_path / "exports"
    write_snapshot(path, SNAP, PUBLISHED, {})
    return path


def test_a_missing_state_database_degrades_to_the_published_profile_and_says_so(exports: Path, tmp_path: Path) -> None:
    db = tmp_path / "live" / "state.sqlite"
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    try:
        status, _, body = get(server, "merged")
        assert status == 200 and body["profile_source"] == "published"
        assert body["intent_probability"] == 0.2 and body["active_triggers"] == ["high_intent"]
        assert body["live"]["status"] == "unavailable" and f"{db} does not exist" in body["live"]["reason"]
        status, _, decision = get(server, "merged", "/next")
        assert status == 200 and decision["live_status"] == "unavailable" and decision["rule"] == "high_intent_offer"
        assert get(server, "liveonly")[0] == 404  # nothing knows it

        seed_state(db)  # the stream starts: the next request reads it
        _, _, body = get(server, "merged")
        assert body["profile_source"] == "merged" and body["intent_probability"] == 0.77
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a database, just text" * 100, "DatabaseError"),
        (b"", "no such table: identity_map"),
    ],
    ids=["garbage", "empty"],
)
def test_an_unreadable_state_database_degrades_never_500(
    exports: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    db = tmp_path / "state.sqlite"
    db.write_bytes(content)
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    try:
        status, _, body = get(server, "merged")
        assert status == 200 and body["profile_source"] == "published"
        assert body["live"]["status"] == "unavailable"
        assert "live state unreadable" in body["live"]["reason"] and expected in body["live"]["reason"]
        assert get(server, "merged", "/next")[0] == 200
    finally:
        server.stop()


def test_a_bad_row_degrades_and_names_the_row_and_column(exports: Path, tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    seed_state(db)
    with sqlite3.connect(db) as con:
        con.execute("update live_users set state = '{not json' where user_key = 'merged'")
        con.execute("update live_scores set scored_at = 'yesterday' where user_key = 'stale'")
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    try:
        _, _, body = get(server, "merged")
        assert body["profile_source"] == "published"
        assert "live_users['merged'].state: not JSON" in body["live"]["reason"]
        _, _, body = get(server, "stale")
        assert "live_scores['stale'].scored_at: not an ISO-8601 time: 'yesterday'" in body["live"]["reason"]
        assert get(server, "liveonly")[2]["profile_source"] == "live"  # other rows still read
    finally:
        server.stop()


def test_without_a_snapshot_a_live_visitor_is_served_and_others_are_503(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    db = tmp_path / "state.sqlite"
    seed_state(db)
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    try:
        status, headers, body = get(server, "liveonly")
        assert status == 200 and body["profile_source"] == "live" and "x-pulse-snapshot" not in headers
        status, _, body = get(server, "published_only")
        assert status == 503 and "no snapshot published yet" in body["detail"]
        status, _, body = get(server, "published_only", "/next")
        assert status == 200 and body["rule"] == "default" and body["snapshot_id"] is None
    finally:
        server.stop()


def test_reads_do_not_wait_for_the_writer_and_see_only_committed_state(exports: Path, tmp_path: Path) -> None:
    """WAL: the processor's open write transaction neither blocks the API nor shows through before commit."""
    db = tmp_path / "state.sqlite"
    seed_state(db)
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("begin immediate")
        writer.execute("update live_scores set probability = 0.11 where user_key = 'merged'")
        started = time.perf_counter()
        _, _, body = get(server, "merged")
        assert time.perf_counter() - started < 1.0
        assert body["intent_probability"] == 0.77  # uncommitted: not seen
        writer.execute("commit")
        assert get(server, "merged")[2]["intent_probability"] == 0.11
    finally:
        writer.close()
        server.stop()


def test_a_broken_rules_file_stops_the_api_at_start_and_is_ignored_once_running(exports: Path, tmp_path: Path) -> None:
    from pulse.activation.decisions import DecisionRulesError

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "x",
                        "when": [{"field": "sessions_today", "op": "more_then", "value": 1}],
                        "show": {"slot": "banner", "content": "x"},
                    }
                ],
                "default": {"slot": "banner", "content": "welcome"},
            }
        )
    )
    with pytest.raises(DecisionRulesError, match="rule 'x', field 'sessions_today': unknown operator 'more_then'"):
        create_app(exports, decision_rules=rules, dbt_vars=DBT_VARS)


def test_pulse_serve_with_a_broken_rules_file_exits_2_naming_the_rule(tmp_path: Path, capsys) -> None:
    from pulse.cli.commands import build_parser

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: r, when: [{field: cart_opne, op: is_set}], show: {slot: banner, content: r}}\n"
        "default: {slot: banner, content: welcome}\n"
    )
    args = build_parser().parse_args(
        [
            "serve",
            "--exports",
            str(tmp_path),
            "--decision-rules",
            str(rules),
            "--live-state",
            str(tmp_path / "state.sqlite"),
        ]
    )
    assert (args.live_state, args.decision_rules) == (str(tmp_path / "state.sqlite"), str(rules))
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("pulse serve: ")
    assert "rule 'r', field 'cart_opne': unknown field (did you mean cart_open, cart_items?)" in err


def test_a_replaced_state_database_is_read_afresh(exports: Path, tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    seed_state(db)
    server = LiveServer(create_app(exports, live_state=db, dbt_vars=DBT_VARS, clock=Clock(NOW)))
    try:
        assert get(server, "merged")[2]["intent_probability"] == 0.77
        fresh = tmp_path / "fresh.sqlite"
        write_state(fresh, users={}, scores={"merged": (0.05, NOW)})
        fresh.replace(db)  # a new database at the same path (another inode)
        _, _, body = get(server, "merged")
        assert body["intent_probability"] == 0.05 and body["live"]["state"] is None
    finally:
        server.stop()
