"""Live triggers (pulse/live/triggers.py) with an injectable clock: timers fire when the clock reaches them, an event
cancels what it prevents, the thresholds are the dbt vars through the settings door, and the state is JSON.

The row-for-row agreement with dbt's fct_trigger_firings is tests/integration/test_live_trigger_parity.py's."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulse.core.settings import TRIGGERS, load_settings
from pulse.live.triggers import LateEventError, LiveTriggers, TriggerRules

T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
USER = "u1"


def _rules(tmp_path: Path, **overrides: str) -> TriggerRules:
    return TriggerRules.from_settings(load_settings({"PULSE_HOME": str(tmp_path)}, overrides))


@pytest.fixture
def triggers(tmp_path: Path) -> LiveTriggers:
    return LiveTriggers(_rules(tmp_path))


class Clock:
    """A clock a test moves forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def forward(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _event(event_id: str, event_type: str, at: datetime, **fields: object) -> dict[str, object]:
    return {"event_id": event_id, "event_type": event_type, "event_time": at, "user_key": USER, **fields}


def _names(firings) -> list[str]:
    return [f.trigger_name for f in firings]


def test_a_cart_add_fires_when_the_clock_reaches_its_30_minutes(triggers: LiveTriggers) -> None:
    clock = Clock(T0)
    state = triggers.new_state(USER)
    assert triggers.apply(state, _event("e1", "add_to_cart", clock(), category="shoes", session_id="s1")) == []
    assert triggers.next_due(state) == T0 + timedelta(minutes=30)
    clock.forward(minutes=29)
    assert triggers.advance(state, clock()) == []
    clock.forward(seconds=59, microseconds=999_999)
    assert triggers.advance(state, clock()) == [], "not due before +30:00"
    clock.forward(microseconds=1)
    [firing] = triggers.advance(state, clock())
    assert (firing.trigger_name, firing.user_key, firing.fired_at) == ("cart_abandonment", USER, clock())
    assert firing.fired_at == T0 + timedelta(minutes=30)
    assert (firing.evidence_count, firing.evidence_ended_at, firing.evidence_detail) == (1, T0, "shoes")
    # dbt's firing_key: md5(trigger_name | user_key | episode_key), the episode the add's session
    session_key = hashlib.md5(f"{USER}|e1".encode()).hexdigest()
    assert firing.episode_key == session_key
    assert firing.firing_key == hashlib.md5(f"cart_abandonment|{USER}|{session_key}".encode()).hexdigest()
    assert triggers.advance(state, clock.forward(minutes=5)) == [], "once per episode"


def test_a_purchase_before_the_deadline_cancels_it(triggers: LiveTriggers) -> None:
    clock = Clock(T0)
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "add_to_cart", clock()))
    assert triggers.apply(state, _event("e2", "purchase", clock.forward(minutes=10))) == []
    assert triggers.next_due(state) is None or triggers.next_due(state) > T0 + timedelta(days=1)
    assert "cart_abandonment" not in _names(triggers.advance(state, clock.forward(hours=2)))


def test_a_purchase_at_exactly_30_minutes_cancels_and_one_a_microsecond_later_does_not(
    triggers: LiveTriggers,
) -> None:
    on_time, late = triggers.new_state(USER), triggers.new_state(USER)
    for state in (on_time, late):
        triggers.apply(state, _event("e1", "add_to_cart", T0))
    assert triggers.apply(on_time, _event("e2", "purchase", T0 + timedelta(minutes=30))) == []
    firings = triggers.apply(late, _event("e2", "purchase", T0 + timedelta(minutes=30, microseconds=1)))
    assert [(f.trigger_name, f.fired_at) for f in firings] == [("cart_abandonment", T0 + timedelta(minutes=30))]


def test_another_add_in_the_session_moves_the_deadline(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "add_to_cart", T0, category="a"))
    triggers.apply(state, _event("e2", "add_to_cart", T0 + timedelta(minutes=20), category="b"))
    assert triggers.advance(state, T0 + timedelta(minutes=49)) == []
    [firing] = triggers.advance(state, T0 + timedelta(minutes=50))
    assert (firing.evidence_count, firing.evidence_started_at, firing.evidence_detail) == (2, T0, "b")


def test_a_purchase_at_the_same_instant_as_the_add_buys_it_whatever_the_event_ids(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER)
    triggers.apply(state, _event("a", "purchase", T0))  # sorts before the add by event_id
    triggers.apply(state, _event("b", "add_to_cart", T0))
    assert "cart_abandonment" not in _names(triggers.advance(state, T0 + timedelta(hours=1)))


def test_thresholds_are_the_dbt_vars_through_the_settings_door(tmp_path: Path) -> None:
    rules = _rules(tmp_path, cart_abandonment_minutes="10", triggers_enabled="cart_abandonment")
    assert rules.cart_abandonment_minutes == 10 and rules.triggers_enabled == ("cart_abandonment",)
    triggers = LiveTriggers(rules)
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "add_to_cart", T0))
    assert _names(triggers.advance(state, T0 + timedelta(minutes=10))) == ["cart_abandonment"]
    # settings.toml counts too (the same door dbt's --vars come from)
    (tmp_path / "settings.toml").write_text("low_engagement_wait_days = 3\n")
    assert _rules(tmp_path).low_engagement_wait_days == 3
    assert set(_rules(tmp_path).triggers_enabled) == set(TRIGGERS)


def test_a_disabled_trigger_does_not_fire_but_its_episode_is_used(tmp_path: Path) -> None:
    triggers = LiveTriggers(_rules(tmp_path, triggers_enabled="low_engagement"))
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "add_to_cart", T0))
    assert triggers.advance(state, T0 + timedelta(hours=1)) == []


def test_the_sixth_session_of_a_utc_day_fires_frequent_visitor_once(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER)
    fired = []
    for number in range(7):  # a new client session id starts a session without a pause
        at = T0 + timedelta(minutes=number)
        fired += triggers.apply(state, _event(f"e{number}", "page_view", at, session_id=f"s{number}"))
    [firing] = [f for f in fired if f.trigger_name == "frequent_visitor"]
    assert (firing.fired_at, firing.episode_key, firing.evidence_detail) == (
        T0 + timedelta(minutes=5),
        "2026-09-01",
        "sessions=6",
    )


def test_low_engagement_waits_7_days_and_a_return_at_exactly_7_days_counts_as_back(triggers: LiveTriggers) -> None:
    gone, back = triggers.new_state(USER), triggers.new_state(USER)
    for state in (gone, back):
        triggers.apply(state, _event("e1", "page_view", T0, page_view_id="p1"))
        triggers.apply(state, _event("e2", "page_ping", T0 + timedelta(seconds=12), page_view_id="p1"))
    due = T0 + timedelta(days=7, seconds=12)
    assert triggers.next_due(gone) == due
    assert triggers.advance(gone, due - timedelta(microseconds=1)) == []
    [firing] = triggers.advance(gone, due)
    assert (firing.trigger_name, firing.evidence_detail) == ("low_engagement", "duration_seconds=12, page_views=1")
    assert _names(triggers.apply(back, _event("e3", "page_view", due))) == []
    assert triggers.advance(back, due + timedelta(days=30)) == []


def test_the_state_is_json_and_carries_on_after_a_round_trip(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "product_view", T0, category="a", session_id="s"))
    triggers.apply(state, _event("e2", "add_to_cart", T0 + timedelta(minutes=1), category="a", session_id="s"))
    stored = json.loads(json.dumps(state))
    assert stored == state and len(json.dumps(state)) < 1500
    [firing] = triggers.advance(stored, T0 + timedelta(minutes=31))
    record = firing.record()
    assert record["fired_at"] == "2026-09-01T10:31:00.000000+00:00"
    assert json.loads(record["evidence"]) == {
        "episode_key": firing.episode_key,
        "count": 1,
        "started_at": "2026-09-01T10:01:00.000000+00:00",
        "ended_at": "2026-09-01T10:01:00.000000+00:00",
        "detail": "a",
    }


def test_an_event_behind_the_users_position_is_refused_with_a_clear_error(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e2", "page_view", T0))
    with pytest.raises(LateEventError, match=r"event 'e1' of user 'u1': event_time 2026-09-01T09:59:00\+00:00"):
        triggers.apply(state, _event("e1", "purchase", T0 - timedelta(minutes=1)))
    with pytest.raises(LateEventError):  # the same instant, a smaller id: also behind
        triggers.apply(state, _event("e1", "purchase", T0))
    triggers.apply(state, _event("e3", "page_view", T0))  # the same instant, a larger id: in order


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (_event("e1", "page_view", datetime(2026, 9, 1, 10)), "event_time 2026-09-01T10:00:00 has no time zone"),
        (_event("e1", "page_view", "2026-09-01T10:00:00Z"), "event_time must be a datetime"),
        ({**_event("e1", "page_view", T0), "user_key": "u2"}, "user_key is 'u2', not this state's user"),
        (_event("", "page_view", T0), "event_id must be a non-empty string"),
        (_event("e1", None, T0), "event_type must be a non-empty string"),
    ],
)
def test_a_malformed_event_names_its_field(triggers: LiveTriggers, event: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        triggers.apply(triggers.new_state(USER), event)


def test_a_fired_timer_is_final_even_if_a_purchase_before_its_deadline_arrives_after_the_clock(
    triggers: LiveTriggers,
) -> None:
    """The arrival delay docs/realtime.md names: the processor advances to its watermark, not past it."""
    state = triggers.new_state(USER)
    triggers.apply(state, _event("e1", "add_to_cart", T0))
    assert _names(triggers.advance(state, T0 + timedelta(minutes=31))) == ["cart_abandonment"]
    assert triggers.apply(state, _event("e2", "purchase", T0 + timedelta(minutes=29))) == []
    assert triggers.apply(state, _event("e3", "add_to_cart", T0 + timedelta(minutes=40))) == []
    assert triggers.advance(state, T0 + timedelta(hours=2)) == [], "the session fired once"


def test_a_state_of_another_version_is_refused(triggers: LiveTriggers) -> None:
    state = triggers.new_state(USER) | {"version": 0}
    with pytest.raises(ValueError, match="live trigger state of user 'u1': version 0, this code reads version 1"):
        triggers.apply(state, _event("e1", "page_view", T0))
    with pytest.raises(ValueError, match="version 0"):
        triggers.advance(state, T0)


def test_rules_name_a_missing_or_bad_var() -> None:
    with pytest.raises(ValueError, match="dbt var cart_abandonment_minutes is missing"):
        TriggerRules.from_dbt_vars({})
    good = {name: 1 for name in TriggerRules.__dataclass_fields__} | {"triggers_enabled": list(TRIGGERS)}
    with pytest.raises(ValueError, match=r"dbt var high_intent_window_hours = '24h'"):
        TriggerRules.from_dbt_vars(good | {"high_intent_window_hours": "24h"})
    with pytest.raises(ValueError, match=r"triggers_enabled: unknown \['cart'\]"):
        TriggerRules.from_dbt_vars(good | {"triggers_enabled": ["cart"]})
