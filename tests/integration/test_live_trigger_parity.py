"""Live triggers equal dbt's fct_trigger_firings row for row, on the demo and on a hand-made history of edge cases.

For each shape dbt builds ``+fct_trigger_firings`` (full refresh, no ``triggers_through``: the horizon is the
latest session end) with the dbt vars of one settings object (``Settings.dbt_vars()``, what pulse hands dbt as
``--vars``), and pulse/live/triggers.py gets the rules from the same object. The same events, as stg_events
has them (user_key stitched, the client session id, page view id, category), are fed one by one in
(event_time, event_id) order, each user's state going through JSON after every event (what the store keeps),
and every state is advanced to dbt's horizon. The firings must be equal in every column dbt has: firing_key,
trigger_name, user_key, episode_key, fired_at, evidence count / start / end / detail. On the demo and the edge
cases a replay too: dbt with ``triggers_through`` (events and firings before a day), live fed the events before
it with the clock stopped a microsecond before it.

Shapes:
- the demo shop (300 users x 14 days), ``frequent_visitor_sessions_per_day`` lowered to 1 (the demo never has 6
  sessions of a user in a day; test_triggers.py's larger demo fires at 2, this one does not);
- a hand-made history at the defaults (:func:`edge_case_events`): a purchase at exactly +30:00 cancelling an
  abandonment and one a second later not, a purchase in another session, a purchase and an add at the same
  instant (both event_id orders), bursts of adds, episodes re-arming the next session or day, 5 sessions on
  one day and a session across midnight, the 6th and 7th sessions of a day, high intent at exactly 24 h and
  at 24 h + 1 s, a return at exactly 7 days, a visit cut at 24 hours, gaps of 1800.2 s crossing 1801 second
  boundaries and 1800.8 s crossing 1800, a client session id change hidden by an event without one, and a late
  event (landed two days after it happened);
- real traffic: Snowplow's ecommerce test events (tests/fixtures/snowplow-ecommerce, 2022, imported with
  ``pulse import --format snowplow``'s importer), at the defaults but ``frequent_visitor_sessions_per_day`` 1.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from demo_warehouse import ingest_days, ingest_demo, run_dbt

from pulse.core.settings import TRIGGERS, Settings, load_settings
from pulse.importers import import_files
from pulse.ingest.raw_events import landed_days
from pulse.live.triggers import LiveTriggers, TriggerRules

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 300, 14, 11
D0 = datetime(2026, 9, 1, tzinfo=UTC)
SNOWPLOW_ECOMMERCE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "snowplow-ecommerce" / "source" / "snowplow_ecommerce_events.csv"
)
FIRING_COLUMNS = (
    "firing_key, trigger_name, user_key, episode_key, fired_at, evidence_count, evidence_started_at, "
    "evidence_ended_at, evidence_detail"
)


def _settings(home: Path, **overrides: str) -> Settings:
    return load_settings({"PULSE_HOME": str(home)}, overrides)


def _batch(home: Path, warehouse: Path, settings: Settings) -> tuple[list[tuple], list[tuple], datetime]:
    """dbt's firings and the events it read (stg_events, in event-time order), and its horizon."""
    run_dbt(home, warehouse, "run", "--select", "+fct_trigger_firings", "--vars", settings.dbt_vars_json())
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        firings = con.execute(f"select {FIRING_COLUMNS} from fct_trigger_firings").fetchall()
        events = con.execute(
            "select event_id, event_type, event_time, user_key, client_session_id, page_view_id, category "
            "from stg_events order by event_time, event_id"
        ).fetchall()
        [(horizon,)] = con.execute("select max(session_end) from fct_sessions").fetchall()
    finally:
        con.close()
    return firings, events, horizon.replace(tzinfo=UTC)


def _batch_through(home: Path, warehouse: Path, settings: Settings) -> list[tuple]:
    """dbt's firings with ``triggers_through`` (a replay: events and firings before it), the same upstream."""
    args = ("int_trigger_candidates", "fct_trigger_firings", "--vars", settings.dbt_vars_json())
    run_dbt(home, warehouse, "run", "--select", *args)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"select {FIRING_COLUMNS} from fct_trigger_firings").fetchall()
    finally:
        con.close()


def _before(events: list[tuple], through: date) -> list[tuple]:
    return [e for e in events if e[2] < datetime(through.year, through.month, through.day)]


def _through_clock(through: date) -> datetime:
    """The clock just before ``through`` (timestamps are microseconds): advance() fires what is due at or
    before it, fct_trigger_firings with triggers_through what is due before it."""
    return datetime(through.year, through.month, through.day, tzinfo=UTC) - timedelta(microseconds=1)


def _live(settings: Settings, events: list[tuple], horizon: datetime) -> tuple[list[tuple], int]:
    """The live firings of the same events (rows like _batch's, naive UTC), and the largest state in bytes."""
    triggers = LiveTriggers(TriggerRules.from_settings(settings))
    stored: dict[str, str] = {}
    firings = []
    started = time.perf_counter()
    for event_id, event_type, event_time, user_key, session_id, page_view_id, category in events:
        state = json.loads(stored[user_key]) if user_key in stored else triggers.new_state(user_key)
        event = {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": event_time.replace(tzinfo=UTC),
            "user_key": user_key,
            "session_id": session_id,
            "page_view_id": page_view_id,
            "category": category,
        }
        firings += triggers.apply(state, event)
        stored[user_key] = json.dumps(state)
    seconds = time.perf_counter() - started
    print(f"live: {len(events)} events in {seconds:.2f} s ({len(events) / seconds:,.0f}/s, states through JSON)")
    largest = max(len(text) for text in stored.values())
    for text in stored.values():
        firings += triggers.advance(json.loads(text), horizon)
    rows = [
        (
            f.firing_key,
            f.trigger_name,
            f.user_key,
            f.episode_key,
            f.fired_at.astimezone(UTC).replace(tzinfo=None),
            f.evidence_count,
            f.evidence_started_at.astimezone(UTC).replace(tzinfo=None),
            f.evidence_ended_at.astimezone(UTC).replace(tzinfo=None),
            f.evidence_detail,
        )
        for f in firings
    ]
    return rows, largest


def _assert_equal(batch: list[tuple], live: list[tuple]) -> None:
    assert len(set(live)) == len(live), "a live firing was emitted twice"
    only_batch, only_live = sorted(set(batch) - set(live)), sorted(set(live) - set(batch))
    counts: dict[str, int] = defaultdict(int)
    for row in batch:
        counts[row[1]] += 1
    assert not only_batch and not only_live, (
        f"batch {len(batch)} firings {dict(counts)}, live {len(live)}; only in the batch ({len(only_batch)}): "
        f"{only_batch[:5]}; only live ({len(only_live)}): {only_live[:5]}"
    )
    assert len(batch) == len(live)


# ----------------------------------------------------------------------------------------------- the demo


@dataclass(frozen=True)
class Parity:
    """Batch and live firings of one shape: up to the horizon, and with ``triggers_through``."""

    batch: list[tuple]
    live: list[tuple]
    largest_state: int  # bytes of JSON
    batch_through: list[tuple] | None = None
    live_through: list[tuple] | None = None


def _parity(name: str, home: Path, warehouse: Path, through: date | None, **overrides: str) -> Parity:
    """Both sides up to the horizon and, when ``through`` is given, both with ``triggers_through`` = it."""
    settings = _settings(home, **overrides)
    batch, events, horizon = _batch(home, warehouse, settings)
    live, largest = _live(settings, events, horizon)
    counts = {trigger: sum(row[1] == trigger for row in batch) for trigger in TRIGGERS}
    print(f"{name}: {len(events)} events, {len(batch)} firings {counts}, largest live state {largest} bytes")
    if through is None:
        return Parity(batch, live, largest)
    cut = _settings(home, **overrides, triggers_through=through.isoformat())
    batch_through = _batch_through(home, warehouse, cut)
    live_through, _ = _live(cut, _before(events, through), _through_clock(through))
    return Parity(batch, live, largest, batch_through, live_through)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Parity:
    home = tmp_path_factory.mktemp("live_triggers_demo")
    _, warehouse = ingest_demo(home, USERS, DAYS, SEED)
    return _parity("demo", home, warehouse, date(2026, 9, 8), frequent_visitor_sessions_per_day="1")


def test_live_firings_equal_fct_trigger_firings_on_the_demo(demo: Parity) -> None:
    assert {row[1] for row in demo.batch} == set(TRIGGERS), "every trigger fires on this demo"
    _assert_equal(demo.batch, demo.live)


def test_live_firings_equal_a_replay_through_a_day_on_the_demo(demo: Parity) -> None:
    assert demo.batch_through is not None and 0 < len(demo.batch_through) < len(demo.batch)
    _assert_equal(demo.batch_through, demo.live_through or [])


def test_the_live_state_stays_small_on_the_demo(demo: Parity) -> None:
    assert demo.largest_state < 4096, f"largest state {demo.largest_state} bytes"


# ------------------------------------------------------------------- real traffic: Snowplow's ecommerce demo


@pytest.fixture(scope="module")
def snowplow(tmp_path_factory: pytest.TempPathFactory) -> Parity:
    """834 Snowplow events of a demo shop (2022, another year, real browsers and sessions), imported."""
    home = tmp_path_factory.mktemp("live_triggers_snowplow")
    import_files("snowplow", [SNOWPLOW_ECOMMERCE], home / "landing")
    events_landing, warehouse = home / "landing" / "events", home / "warehouse.duckdb"
    ingest_days(warehouse, events_landing, landed_days(events_landing))
    return _parity("snowplow", home, warehouse, None, frequent_visitor_sessions_per_day="1")


def test_live_firings_equal_fct_trigger_firings_on_snowplow_traffic(snowplow: Parity) -> None:
    assert snowplow.batch, "the Snowplow sample fires triggers"
    _assert_equal(snowplow.batch, snowplow.live)


# ------------------------------------------------------------------------------------ hand-made edge cases


class History:
    """Contract events of a few users, each landed on a day (by default its event day)."""

    def __init__(self) -> None:
        self.events: list[tuple[date, dict[str, Any]]] = []
        self._numbers: dict[str, int] = defaultdict(int)

    def add(
        self,
        user: str,
        event_type: str,
        at: datetime,
        session: str | None = None,
        event_id: str | None = None,
        landed: date | None = None,
        **fields: Any,
    ) -> None:
        self._numbers[user] += 1
        event = {
            "event_id": event_id or f"{user}-{self._numbers[user]:03d}",
            "event_type": event_type,
            "event_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user_id": user,
            **({"session_id": session} if session else {}),
            **fields,
        }
        self.events.append((landed or at.date(), event))

    def land(self, events_landing: Path) -> None:
        by_day: dict[date, list[dict]] = defaultdict(list)
        for day, event in self.events:
            by_day[day].append(event)
        for day, events in by_day.items():
            folder = events_landing / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "edge-cases.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _at(day: int, hour: int = 0, minute: int = 0, second: int = 0, ms: int = 0) -> datetime:
    return D0 + timedelta(days=day, hours=hour, minutes=minute, seconds=second, milliseconds=ms)


def edge_case_events() -> History:
    h = History()
    # cart_abandonment: a purchase at exactly +30:00 cancels, one at +30:01 comes too late
    h.add("buyer", "page_view", _at(0, 10), "b1", page_view_id="bp1")
    h.add("buyer", "add_to_cart", _at(0, 10, 5), "b1", category="shoes")
    h.add("buyer", "purchase", _at(0, 10, 35), "b1", order_id="o1", revenue=10.0)
    h.add("late_buyer", "add_to_cart", _at(0, 10), "lb1", category="hats")
    h.add("late_buyer", "purchase", _at(0, 10, 30, 1), "lb1", order_id="o2", revenue=10.0)
    # a burst: the last add counts; a later abandoned add in the session does not fire again; the next
    # day's session does (the episode re-arms)
    h.add("burst", "page_view", _at(0, 9), "u1", page_view_id="up1")
    h.add("burst", "add_to_cart", _at(0, 9, 10), "u1", category="a")
    h.add("burst", "add_to_cart", _at(0, 9, 30), "u1", category="b")
    for minute in (50, 70, 90):
        h.add("burst", "page_view", _at(0, 9, minute), "u1", page_view_id=f"up{minute}")
    h.add("burst", "add_to_cart", _at(0, 10, 40), "u1", category="c")
    h.add("burst", "add_to_cart", _at(1, 9), "u2", category="d")
    # a purchase and an add at the same instant buy the add, whichever event_id sorts first
    h.add("same_instant", "purchase", _at(0, 12), "s1", event_id="same_instant-a", order_id="o3", revenue=1.0)
    h.add("same_instant", "add_to_cart", _at(0, 12), "s1", event_id="same_instant-b", category="a")
    h.add("same_instant_2", "add_to_cart", _at(0, 12), "s1", event_id="same_instant_2-a", category="a")
    h.add("same_instant_2", "purchase", _at(0, 12), "s1", event_id="same_instant_2-b", order_id="o4", revenue=1.0)
    # a purchase on another device (another client session: another session) cancels
    h.add("other_device", "add_to_cart", _at(0, 14), "phone", category="a")
    h.add("other_device", "purchase", _at(0, 14, 10), "laptop", order_id="o5", revenue=5.0)
    # frequent_visitor: 5 sessions on day 0, the last across midnight (it counts on day 0); day 1's 6th fires,
    # its 7th does not
    for hour, minute in ((20, 0), (21, 0), (22, 0), (23, 0), (23, 50)):
        h.add("frequent", "page_view", _at(0, hour, minute), page_view_id=f"f0-{hour}-{minute}")
    h.add("frequent", "page_view", _at(1, 0, 5), page_view_id="f1-0-5")
    for hour, minute in ((0, 45), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0)):
        h.add("frequent", "page_view", _at(1, hour, minute), page_view_id=f"f1-{hour}-{minute}")
    # high_intent: an add exactly 24 h after the first of 3 views qualifies; again that day does not fire;
    # the next day's first qualifying event does. 24 h + 1 s after, the first view is out.
    for hour, minute in ((8, 5), (9, 0), (10, 0)):
        h.add("intent", "product_view", _at(0, hour, minute), category="a")
        h.add("intent_late", "product_view", _at(0, hour, minute), category="a")
    h.add("intent", "add_to_cart", _at(1, 8, 5), category="a")
    h.add("intent_late", "add_to_cart", _at(1, 8, 5, 1), category="a")
    h.add("intent", "add_to_cart", _at(1, 12), category="a")
    for minute in (0, 10, 20):
        h.add("intent", "product_view", _at(2, 9, minute), category="b")
    # low_engagement: a 12 s first visit and gone fires 7 days later; back at exactly +7 days is back;
    # back on day 8 fires; two page views do not
    for user, back in (("bounce", None), ("back_at_7", _at(7, 11, 0, 12)), ("back_day_8", _at(8, 11))):
        h.add(user, "page_view", _at(0, 11), page_view_id=f"{user}-p1")
        h.add(user, "page_ping", _at(0, 11, 0, 12), page_view_id=f"{user}-p1")
        if back:
            h.add(user, "page_view", back, page_view_id=f"{user}-p2")
    h.add("two_pages", "page_view", _at(0, 11), page_view_id="tp1")
    h.add("two_pages", "page_view", _at(0, 11, 0, 5), page_view_id="tp2")
    # returning_browser: the most viewed category (a tie: the one viewed first), back within 7 days, again the
    # next day; back at exactly +7 days fires, on day 8 not; a purchase in the browsing session: no
    for minute, category in enumerate(("b", "a", "a", "b")):
        h.add("browser", "product_view", _at(0, 15, minute), category=category)
    h.add("browser", "product_view", _at(3, 15), category="c")
    h.add("browser", "page_view", _at(4, 15), page_view_id="br4")
    for user, back in (("browser_at_7", _at(7, 16)), ("browser_day_8", _at(8, 16, 0, 1))):
        h.add(user, "product_view", _at(0, 16), category="a")
        h.add(user, "page_view", back, page_view_id=f"{user}-back")
    h.add("browser_bought", "product_view", _at(0, 17), category="a")
    h.add("browser_bought", "purchase", _at(0, 17, 5), order_id="o6", revenue=3.0)
    h.add("browser_bought", "page_view", _at(1, 17), page_view_id="bb1")
    # a visit of 25 hours (an event every 20 minutes) is cut at 24 h: the second piece is a new session
    for step in range(76):
        kind = "product_view" if step < 3 else "page_ping"
        h.add("marathon", kind, _at(0, 0, 20 * step), "m", category="a", page_view_id="mp")
    # gaps: 1800.2 s crossing 1801 second boundaries is a new session; 1800.8 s crossing 1800 is not
    h.add("gap_new", "product_view", _at(0, 10, 0, 0, 900), category="a")
    h.add("gap_new", "page_view", _at(0, 10, 30, 1, 100), page_view_id="gn")
    h.add("gap_same", "product_view", _at(0, 10, 0, 0, 100), category="a")
    h.add("gap_same", "page_view", _at(0, 10, 30, 0, 900), page_view_id="gs")
    # client session ids: x, none, y compares y with the event before it (none), so no new session there; x, z does
    h.add("session_ids", "product_view", _at(0, 13), "x", category="a")
    h.add("session_ids", "page_view", _at(0, 13, 1), page_view_id="si1")
    h.add("session_ids", "page_view", _at(0, 13, 2), "y", page_view_id="si2")
    h.add("session_ids", "page_view", _at(0, 13, 3), "z", page_view_id="si3")
    # a late event: the purchase landed two days after it happened; the batch places it by event time
    h.add("late_event", "add_to_cart", _at(1, 10), "l1", category="a")
    h.add("late_event", "purchase", _at(1, 10, 20), "l1", landed=_at(3).date(), order_id="o7", revenue=2.0)
    # an add at 23:50: due after midnight, so not in a replay through the next day
    h.add("midnight_cart", "add_to_cart", _at(0, 23, 50), category="a")
    # the horizon: the latest event
    h.add("horizon", "page_view", _at(10, 12), page_view_id="hz")
    return h


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory: pytest.TempPathFactory) -> Parity:
    home = tmp_path_factory.mktemp("live_triggers_edges")
    events_landing, warehouse = home / "landing" / "events", home / "warehouse.duckdb"
    edge_case_events().land(events_landing)
    ingest_days(warehouse, events_landing, landed_days(events_landing))
    return _parity("edge cases", home, warehouse, (D0 + timedelta(days=1)).date())


def test_live_firings_equal_fct_trigger_firings_on_edge_cases(edge_cases: Parity) -> None:
    _assert_equal(edge_cases.batch, edge_cases.live)


def test_live_firings_equal_a_replay_through_a_day_on_edge_cases(edge_cases: Parity) -> None:
    """triggers_through the day after D0: a cart added at 23:50 is not due yet; the clock stops just before."""
    assert edge_cases.batch_through is not None and edge_cases.live_through is not None
    _assert_equal(edge_cases.batch_through, edge_cases.live_through)
    assert not [row for row in edge_cases.batch_through if row[2] == "midnight_cart"]
    assert [row[4] for row in edge_cases.batch if row[2] == "midnight_cart" and row[1] == "cart_abandonment"] == [
        datetime(2026, 9, 2, 0, 20)
    ]


def test_the_edge_cases_are_exercised(edge_cases: Parity) -> None:
    """What the batch made of the hand-made history (so the parity above covers these cases)."""
    batch = edge_cases.batch
    fired: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for row in batch:
        fired[row[2]].append((row[1], row[4]))
    carts = {user: sorted(at for name, at in f if name == "cart_abandonment") for user, f in fired.items()}
    assert "buyer" not in carts or not carts["buyer"]
    assert carts["late_buyer"] == [datetime(2026, 9, 1, 10, 30)]
    assert carts["burst"] == [datetime(2026, 9, 1, 10, 0), datetime(2026, 9, 2, 9, 30)]
    for user in ("same_instant", "same_instant_2", "other_device", "late_event"):
        assert not carts.get(user), user
    assert [at for name, at in fired["frequent"] if name == "frequent_visitor"] == [datetime(2026, 9, 2, 6)]
    assert sorted(at for name, at in fired["intent"] if name == "high_intent") == [
        datetime(2026, 9, 2, 8, 5),
        datetime(2026, 9, 3, 9, 20),
    ]
    assert not [name for name, _ in fired.get("intent_late", []) if name == "high_intent"]
    low = {user for user, f in fired.items() if any(name == "low_engagement" for name, _ in f)}
    assert {"bounce", "back_day_8"} <= low and not {"back_at_7", "two_pages"} & low
    browsers = {user: [at for name, at in f if name == "returning_browser"] for user, f in fired.items()}
    assert len(browsers["browser"]) == 2 and len(browsers["browser_at_7"]) == 1
    assert not browsers.get("browser_day_8") and not browsers.get("browser_bought")
    assert browsers["marathon"] == [datetime(2026, 9, 2, 0, 0)]
    assert len(browsers["gap_new"]) == 1 and not browsers.get("gap_same")
    assert browsers["session_ids"] == [datetime(2026, 9, 1, 13, 3)]
