"""Live triggers: the five rules of dbt's ``int_trigger_candidates`` / ``fct_trigger_firings`` computed per user
as events arrive, with event-time timers for the rules that wait for something not to happen.

The rules, episodes and boundaries are docs/triggers.md's; every threshold is the dbt var of the same name, read
through the settings door (:meth:`TriggerRules.from_settings`: ``Settings.dbt_vars()``, what dbt gets as
``--vars``), and the trigger names are ``pulse.core.settings.TRIGGERS`` (the choices of ``triggers_enabled``).
A firing has dbt's ``firing_key`` (``md5(trigger_name | user_key | episode_key)``), so a live firing and the
batch's are the same row; tests/integration/test_live_trigger_parity.py proves them equal row for row.

Interface (the stream processor owns the store; this module owns the rules)::

    triggers = LiveTriggers(TriggerRules.from_settings(settings))
    state = triggers.new_state(user_key)        # a small JSON-able dict, stored per user
    firings = triggers.apply(state, event)      # an event of that user, in (event_time, event_id) order
    firings = triggers.advance(state, now)      # the clock moved: timers due at or before ``now`` fire
    triggers.next_due(state)                    # the earliest pending timer (to index users by), or None

``apply`` and ``advance`` change ``state`` in place and return the firings it produced, oldest first.

Sessions are int_events_sessionized's, computed here from the events themselves (event_time, event_id and the
client's ``session_id``): a visit starts at a user's first event, after a gap of more than
``session_timeout_minutes`` (whole seconds crossed, as dbt.datediff counts them) or when the client session id
changes (both known); a visit is cut into sessions of ``max_session_hours``. ``visit_key`` is
``md5(user_key | first event_id)``, a later piece's session key ``md5(visit_key | piece)``.

Timers. Cart abandonment is due ``cart_abandonment_minutes`` after the last add of a burst, low engagement
``low_engagement_wait_days`` after the first session's last event. An event at time T first fires the timers
due strictly before T (nothing at T can cancel them), then may cancel the ones due at or after T (a purchase at
exactly +30:00 still cancels). ``advance(now)`` fires the timers due at or before ``now``: the batch's horizon
(fct_trigger_firings emits ``fired_at <=`` the latest event). A firing is only as final as the clock the caller
passes: an event of that user at or before a fired timer's due time that arrives after ``advance`` passed it
cannot take the firing back (the batch, which sees it, would not fire); the processor should advance to its
watermark, not past it.

State (per user, JSON): the last event's position and client session id, the current visit and session (start,
end, purchases, adds, the categories it viewed with their counts), the first session's page view ids while
low engagement is still possible (at most ``low_engagement_max_page_views`` + 1), today's session count, the
product views and adds of the last ``high_intent_window_hours`` (epoch microseconds), and the pending timers
(at most one low engagement, and one cart abandonment per session with an add in the last
``cart_abandonment_minutes``). Size: a few hundred bytes for most users; the only part that grows with activity
is the high-intent window (~20 bytes per product view or add of the last 24 hours) and the session's category
counts (one entry per category viewed in the current session).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from pulse.core.settings import TRIGGERS
from pulse.live.store import Firing as StoredFiring

CART_ABANDONMENT, FREQUENT_VISITOR, HIGH_INTENT, LOW_ENGAGEMENT, RETURNING_BROWSER = TRIGGERS
STATE_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = timedelta(microseconds=1)
_SECOND = 1_000_000


class LateEventError(ValueError):
    """An event at or before the (event_time, event_id) position its user's state has already passed.

    The state keeps no history to replay, so such an event cannot be placed: the processor reorders events
    within its watermark before applying them, and one later than that waits for the batch, which places it
    (fct_trigger_firings recomputes the user)."""

    def __init__(self, user_key: str, event_id: str, event_time: datetime, last: datetime, last_event_id: str):
        self.user_key, self.event_id, self.event_time = user_key, event_id, event_time
        super().__init__(
            f"event {event_id!r} of user {user_key!r}: event_time {event_time.isoformat()} is not after the last "
            f"applied event ({last_event_id!r} at {last.isoformat()}); live triggers take a user's events in "
            "(event_time, event_id) order"
        )


@dataclass(frozen=True)
class TriggerRules:
    """The thresholds of the five triggers and of sessionization: the dbt vars of the same names."""

    session_timeout_minutes: int
    max_session_hours: int
    cart_abandonment_minutes: int
    frequent_visitor_sessions_per_day: int
    high_intent_product_views: int
    high_intent_window_hours: int
    low_engagement_max_seconds: int
    low_engagement_max_page_views: int
    low_engagement_wait_days: int
    returning_browser_days: int
    triggers_enabled: tuple[str, ...]

    @classmethod
    def from_dbt_vars(cls, dbt_vars: Mapping[str, Any]) -> TriggerRules:
        """From the effective dbt vars (``Settings.dbt_vars()``); a missing or bad var is an error naming it."""
        values: dict[str, Any] = {}
        problems = []
        for f in fields(cls):
            if f.name not in dbt_vars:
                problems.append(f"dbt var {f.name} is missing")
                continue
            raw = dbt_vars[f.name]
            if f.name == "triggers_enabled":
                names = [raw] if isinstance(raw, str) else list(raw or [])
                unknown = [name for name in names if name not in TRIGGERS]
                if unknown:
                    problems.append(f"dbt var triggers_enabled: unknown {unknown}; expected some of {list(TRIGGERS)}")
                values[f.name] = tuple(names)
            elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                problems.append(f"dbt var {f.name} = {raw!r}: expected a whole number >= 0")
            else:
                values[f.name] = raw
        if problems:
            raise ValueError("live trigger rules: " + "; ".join(problems))
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Any) -> TriggerRules:
        """From a :class:`pulse.core.settings.Settings` (the settings door)."""
        return cls.from_dbt_vars(settings.dbt_vars())


@dataclass(frozen=True)
class Firing:
    """One firing: the shared schema's ``live_trigger_firings`` row (``seq`` and ``recorded_at`` are the store's),
    with fct_trigger_firings' meaning of each field."""

    firing_key: str
    trigger_name: str
    user_key: str
    fired_at: datetime
    episode_key: str
    evidence_count: int
    evidence_started_at: datetime
    evidence_ended_at: datetime
    evidence_detail: str | None

    @property
    def evidence(self) -> dict[str, Any]:
        return {
            "episode_key": self.episode_key,
            "count": self.evidence_count,
            "started_at": _iso(self.evidence_started_at),
            "ended_at": _iso(self.evidence_ended_at),
            "detail": self.evidence_detail,
        }

    def record(self) -> dict[str, Any]:
        """The columns of ``live_trigger_firings`` this firing fills: timestamps as ISO-8601 UTC text, the
        evidence as JSON text."""
        return {
            "firing_key": self.firing_key,
            "trigger_name": self.trigger_name,
            "user_key": self.user_key,
            "fired_at": _iso(self.fired_at),
            "evidence": json.dumps(self.evidence, sort_keys=True),
        }


def firing_key(trigger_name: str, user_key: str, episode_key: str) -> str:
    """dbt's ``md5(trigger_name || '|' || user_key || '|' || episode_key)`` (int_trigger_candidates)."""
    return _md5(f"{trigger_name}|{user_key}|{episode_key}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICROS


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _day(micros: int) -> str:
    return _moment(micros).date().isoformat()


def _seconds_between(earlier: int, later: int) -> int:
    """dbt.datediff(earlier, later, 'second'): whole-second boundaries crossed (DuckDB's date_diff, and
    macros/spark.sql's on Spark)."""
    return later // _SECOND - earlier // _SECOND


def _checked_state(state: Mapping[str, Any]) -> str:
    """The state's user_key, once the state is one this code reads (a stored state of another version is not)."""
    version = state.get("version") if isinstance(state, Mapping) else None
    if version != STATE_VERSION:
        raise ValueError(
            f"live trigger state of user {state.get('user_key') if isinstance(state, Mapping) else None!r}: "
            f"version {version!r}, this code reads version {STATE_VERSION} (start it afresh with new_state)"
        )
    return state["user_key"]


def _utc(value: Any, field: str, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{what}: {field} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: {field} {value.isoformat()} has no time zone; live triggers take UTC-aware times")
    return value


class LiveTriggers:
    """The five triggers over one user's events; see the module's docstring for the interface and the state."""

    def __init__(self, rules: TriggerRules) -> None:
        self.rules = rules
        r = rules
        self._timeout_seconds = r.session_timeout_minutes * 60
        self._piece_seconds = r.max_session_hours * 3600
        self._cart_wait = r.cart_abandonment_minutes * 60 * _SECOND
        self._intent_window = r.high_intent_window_hours * 3600 * _SECOND
        self._low_max = r.low_engagement_max_seconds * _SECOND
        self._low_wait = r.low_engagement_wait_days * 86400 * _SECOND
        self._return_within = r.returning_browser_days * 86400 * _SECOND
        self._enabled = frozenset(r.triggers_enabled)

    # ------------------------------------------------------------------------------------------- interface

    @staticmethod
    def new_state(user_key: str) -> dict[str, Any]:
        """The state of a user not seen yet."""
        if not isinstance(user_key, str) or not user_key:
            raise ValueError(f"user_key must be a non-empty string, got {user_key!r}")
        return {
            "version": STATE_VERSION,
            "user_key": user_key,
            "last": None,  # [event_time µs, event_id] of the last applied event
            "client_session_id": None,  # the last event's (int_visits compares each event with the one before)
            "visit": None,  # {"key", "index", "start"}
            "session": None,  # the current session, see _begin_session
            "first_session": None,  # page view ids while low engagement is possible
            "day": None,  # {"date", "sessions", "first_start"}: frequent_visitor
            "intent": {"window": [], "fired_day": None},  # window: [µs, 1 if add else 0], oldest first
            "last_purchase": None,  # µs: an add at the same instant as a purchase is bought
            "timers": [],  # pending firings, each {"trigger", "due", ...}, by due time
        }

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> list[Firing]:
        """Apply one event of ``state``'s user (its contract fields, with ``user_key``): the timers it passes
        fire first, then the event's own rules. Raises :class:`LateEventError` for an event at or before the
        last applied one, ``ValueError`` naming the field for a malformed event."""
        user_key = _checked_state(state)
        event_id, event_type, moment = self._checked(event, user_key)
        now = _micros(moment)
        if state["last"] is not None and (now, event_id) <= (state["last"][0], state["last"][1]):
            last_time, last_id = state["last"]
            raise LateEventError(user_key, event_id, moment, _moment(last_time), last_id)

        firings = self._fire_due(state, lambda due: due < now)
        firings += self._sessionize(state, event, event_id, now)
        session = state["session"]
        session["end"] = now
        state["last"] = [now, event_id]

        if event_type == "purchase":
            session["purchases"] += 1
            state["last_purchase"] = now
            # a purchase at or before a pending add's deadline buys it, in any session
            state["timers"] = [t for t in state["timers"] if t["trigger"] != CART_ABANDONMENT]
        elif event_type == "add_to_cart":
            self._cart_add(state, event, now)
        elif event_type == "product_view":
            category = event.get("category")
            if category is not None:
                seen = session["categories"].setdefault(category, [0, now])
                seen[0] += 1
        elif event_type == "page_view" and state["first_session"] is not None:
            ids = state["first_session"]["page_view_ids"]
            page_view = event.get("page_view_id")
            page_view = event_id if page_view is None else page_view  # coalesce(page_view_id, event_id)
            if page_view not in ids:
                ids.append(page_view)
        if event_type in ("product_view", "add_to_cart"):
            firings += self._high_intent(state, event_type, now)
        self._low_engagement_timer(state)
        return firings

    def advance(self, state: dict[str, Any], now: datetime) -> list[Firing]:
        """The clock reached ``now`` (UTC-aware): the timers due at or before it fire."""
        until = _micros(_utc(now, "now", f"advancing user {_checked_state(state)!r}"))
        return self._fire_due(state, lambda due: due <= until)

    @staticmethod
    def next_due(state: Mapping[str, Any]) -> datetime | None:
        """When the state's earliest pending timer is due, or None."""
        timers = state["timers"]
        return _moment(min(t["due"] for t in timers)) if timers else None

    # ------------------------------------------------------------------------------------------- the rules

    def _checked(self, event: Mapping[str, Any], user_key: str) -> tuple[str, str, datetime]:
        event_id = event.get("event_id")
        what = f"event {event_id!r} of user {user_key!r}"
        if not isinstance(event_id, str) or not event_id:
            raise ValueError(f"{what}: event_id must be a non-empty string")
        if event.get("user_key") != user_key:
            raise ValueError(f"{what}: user_key is {event.get('user_key')!r}, not this state's user")
        event_type = event.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"{what}: event_type must be a non-empty string, got {event_type!r}")
        return event_id, event_type, _utc(event.get("event_time"), "event_time", what)

    def _sessionize(self, state: dict[str, Any], event: Mapping[str, Any], event_id: str, now: int) -> list[Firing]:
        """Place the event in its visit and session (int_visits, pulse_sessionized_events); a session that
        begins here ends the previous one (returning_browser) and counts for the day (frequent_visitor)."""
        client_session_id = event.get("session_id")
        previous_id, state["client_session_id"] = state["client_session_id"], client_session_id
        visit = state["visit"]
        new_visit = (
            visit is None
            or _seconds_between(state["last"][0], now) > self._timeout_seconds
            or (client_session_id is not None and previous_id is not None and client_session_id != previous_id)
        )
        if new_visit:
            index = 1 if visit is None else visit["index"] + 1
            visit = state["visit"] = {"key": _md5(f"{state['user_key']}|{event_id}"), "index": index, "start": now}
            piece = 0
        else:
            piece = _seconds_between(visit["start"], now) // self._piece_seconds
            if piece == state["session"]["piece"]:
                return []
        key = visit["key"] if piece == 0 else _md5(f"{visit['key']}|{piece}")
        return self._begin_session(state, key, piece, now)

    def _begin_session(self, state: dict[str, Any], key: str, piece: int, now: int) -> list[Firing]:
        firings = []
        previous = state["session"]
        if previous is not None:
            firings += self._returning_browser(state, previous, now)
            # the first session is over: a new one began within the wait (timers due before now fired already)
            state["first_session"] = None
            state["timers"] = [t for t in state["timers"] if t["trigger"] != LOW_ENGAGEMENT]
        number = 1 if previous is None else previous["number"] + 1
        state["session"] = {
            "key": key,
            "piece": piece,
            "number": number,
            "start": now,
            "end": now,
            "purchases": 0,
            "adds": 0,
            "first_add": None,
            "cart_fired": False,
            "categories": {},  # category -> [product views, first viewed µs]
        }
        if number == 1:
            state["first_session"] = {"page_view_ids": []}
        firings += self._frequent_visitor(state, now)
        return firings

    def _frequent_visitor(self, state: dict[str, Any], now: int) -> list[Firing]:
        day = _day(now)
        if state["day"] is None or state["day"]["date"] != day:
            state["day"] = {"date": day, "sessions": 0, "first_start": now}
        today = state["day"]
        today["sessions"] += 1
        if today["sessions"] != self.rules.frequent_visitor_sessions_per_day + 1:
            return []
        return self._fired(
            state,
            FREQUENT_VISITOR,
            episode_key=day,
            fired_at=now,
            count=today["sessions"],
            started=today["first_start"],
            ended=now,
            detail=f"sessions={today['sessions']}",
        )

    def _returning_browser(self, state: dict[str, Any], browsed: Mapping[str, Any], now: int) -> list[Firing]:
        if not browsed["categories"] or browsed["purchases"] or now > browsed["end"] + self._return_within:
            return []
        # the category viewed most (ties: viewed first, then by name)
        category, (views, _) = min(browsed["categories"].items(), key=lambda item: (-item[1][0], item[1][1], item[0]))
        return self._fired(
            state,
            RETURNING_BROWSER,
            episode_key=browsed["key"],
            fired_at=now,
            count=views,
            started=browsed["start"],
            ended=browsed["end"],
            detail=category,
        )

    def _cart_add(self, state: dict[str, Any], event: Mapping[str, Any], now: int) -> None:
        session = state["session"]
        session["adds"] += 1
        if session["first_add"] is None:
            session["first_add"] = now
        # another add in the session within the deadline moves it: the last add of a burst counts
        state["timers"] = [
            t for t in state["timers"] if not (t["trigger"] == CART_ABANDONMENT and t["session"] == session["key"])
        ]
        bought_at_the_same_instant = state["last_purchase"] == now  # a purchase sorts after an add at one instant
        if session["cart_fired"] or bought_at_the_same_instant:
            return
        self._add_timer(
            state,
            {
                "trigger": CART_ABANDONMENT,
                "due": now + self._cart_wait,
                "session": session["key"],
                "add": now,
                "add_number": session["adds"],
                "first_add": session["first_add"],
                "category": event.get("category"),
            },
        )

    def _high_intent(self, state: dict[str, Any], event_type: str, now: int) -> list[Firing]:
        intent = state["intent"]
        window = intent["window"]
        window.append([now, 1 if event_type == "add_to_cart" else 0])
        while window[0][0] < now - self._intent_window:  # the window's start is inclusive
            window.pop(0)
        adds = sum(is_add for _, is_add in window)
        views = len(window) - adds
        day = _day(now)
        if views < self.rules.high_intent_product_views or adds < 1 or intent["fired_day"] == day:
            return []
        intent["fired_day"] = day
        return self._fired(
            state,
            HIGH_INTENT,
            episode_key=day,
            fired_at=now,
            count=views + adds,
            started=window[0][0],
            ended=now,
            detail=f"product_views={views}, cart_adds={adds}",
        )

    def _low_engagement_timer(self, state: dict[str, Any]) -> None:
        """While the first session is short and shallow, its low engagement is due a wait after its last event."""
        first = state["first_session"]
        if first is None:
            return
        session = state["session"]
        state["timers"] = [t for t in state["timers"] if t["trigger"] != LOW_ENGAGEMENT]
        short = session["end"] < session["start"] + self._low_max
        shallow = len(first["page_view_ids"]) <= self.rules.low_engagement_max_page_views
        if not (short and shallow):
            state["first_session"] = None  # it only grows: never again
            return
        self._add_timer(
            state,
            {
                "trigger": LOW_ENGAGEMENT,
                "due": session["end"] + self._low_wait,
                "session": session["key"],
                "start": session["start"],
                "end": session["end"],
                "page_views": len(first["page_view_ids"]),
            },
        )

    # ---------------------------------------------------------------------------------------- timers, firing

    @staticmethod
    def _add_timer(state: dict[str, Any], timer: dict[str, Any]) -> None:
        state["timers"].append(timer)
        state["timers"].sort(key=lambda t: t["due"])

    def _fire_due(self, state: dict[str, Any], is_due: Callable[[int], bool]) -> list[Firing]:
        due = [t for t in state["timers"] if is_due(t["due"])]
        if not due:
            return []
        state["timers"] = [t for t in state["timers"] if not is_due(t["due"])]
        firings = []
        for timer in due:
            if timer["trigger"] == CART_ABANDONMENT:
                session = state["session"]
                if session is not None and session["key"] == timer["session"]:
                    session["cart_fired"] = True
                firings += self._fired(
                    state,
                    CART_ABANDONMENT,
                    episode_key=timer["session"],
                    fired_at=timer["due"],
                    count=timer["add_number"],
                    started=timer["first_add"],
                    ended=timer["add"],
                    detail=timer["category"],
                )
            else:
                state["first_session"] = None
                firings += self._fired(
                    state,
                    LOW_ENGAGEMENT,
                    episode_key=timer["session"],
                    fired_at=timer["due"],
                    count=timer["page_views"],
                    started=timer["start"],
                    ended=timer["end"],
                    detail=f"duration_seconds={_seconds_between(timer['start'], timer['end'])}, "
                    f"page_views={timer['page_views']}",
                )
        return firings

    def _fired(
        self,
        state: Mapping[str, Any],
        trigger: str,
        *,
        episode_key: str,
        fired_at: int,
        count: int,
        started: int,
        ended: int,
        detail: str | None,
    ) -> list[Firing]:
        if trigger not in self._enabled:
            return []
        user_key = state["user_key"]
        return [
            Firing(
                firing_key=firing_key(trigger, user_key, episode_key),
                trigger_name=trigger,
                user_key=user_key,
                fired_at=_moment(fired_at),
                episode_key=episode_key,
                evidence_count=count,
                evidence_started_at=_moment(started),
                evidence_ended_at=_moment(ended),
                evidence_detail=detail,
            )
        ]


class TriggerModel:
    """The live triggers as a state model of the stream processor (pulse/live/processor.py ``StateModel``):
    ``state["triggers"]`` holds :class:`LiveTriggers`' state of the user plus ``late_events``, and the firings
    go to the store's ``live_trigger_firings``.

    - An event at or before the user's last applied one (arrived out of order) cannot be applied to a state
      that keeps no history: it is counted in ``late_events`` and left to the nightly batch
      (fct_trigger_firings has it). The activity counters still place it in its own day.
    - Identity stitching: when a login moves an anonymous id's events to the user, the trigger state stays
      with the key it was built under (a state without history cannot be merged); the batch, which re-keys the
      whole history, is the reference there. Both are the weak points docs/realtime.md names."""

    name = "triggers"

    def __init__(self, rules: TriggerRules) -> None:
        self.triggers = LiveTriggers(rules)

    def initial(self) -> dict[str, Any]:
        return {}  # the user's key arrives with the first event (new_state needs it)

    def _ready(self, state: dict[str, Any], user_key: str) -> dict[str, Any]:
        if "version" not in state:
            state.update(LiveTriggers.new_state(user_key), late_events=0)
        return state

    def apply(self, state: dict[str, Any], event: Mapping[str, Any], user_key: str) -> list[Any]:
        state = self._ready(state, user_key)
        if state["user_key"] != user_key:  # a stitched user's events keep the state they were built under
            return []
        try:
            firings = self.triggers.apply(state, {**event, "user_key": user_key})
        except LateEventError:
            state["late_events"] += 1
            return []
        return [_stored(f) for f in firings]

    def settle(self, state: dict[str, Any], user_key: str) -> list[Any]:
        return []

    def advance(self, state: dict[str, Any], user_key: str, now: datetime) -> list[Any]:
        if "version" not in state:
            return []
        return [_stored(f) for f in self.triggers.advance(state, now)]

    def next_due(self, state: dict[str, Any]) -> datetime | None:
        return LiveTriggers.next_due(state) if "version" in state else None

    def restitch(self, source: dict[str, Any], target: dict[str, Any], anonymous_id: str, target_key: str) -> list[str]:
        return []


def _stored(firing: Firing) -> StoredFiring:
    record = firing.record()
    return StoredFiring(
        firing_key=record["firing_key"],
        trigger_name=record["trigger_name"],
        user_key=record["user_key"],
        fired_at=record["fired_at"],
        evidence=firing.evidence,
    )
