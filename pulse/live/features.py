"""Live features: a user's feature vector as ``user_feature_snapshots`` would compute it at any instant, kept
up to date event by event.

The state of a user is a JSON-able dict (the stream processor stores it in ``live_users.state``):

``counted``   all-history totals of the sessions already folded in (the batch seed, then sessions the stream
              saw end): counts and sums, numerators and denominators of the rates (never the rates), the first
              session start, the last session end (``through``: every event up to it is in these totals), the
              last purchase session end, the set of categories viewed, and the last 30 days in detail (sessions
              started per UTC day, active days) above ``day_floor``; older active days are a count.
``open``      one summary per session not folded yet (by ``session_key``): its start and end, the event
              counts, revenue, last cart add and purchase, event dates, categories, and its page views with
              what their engaged time and scroll depth need (heartbeat buckets of the pings, the largest
              scroll depth, pixel scroll, page and viewport heights).

A session is folded into ``counted`` once it ended more than ``session_timeout_minutes`` plus
``max_session_hours`` before the user's latest event: it is over, and an event that late is not waited for
(see :func:`apply`). So the state is bounded: the open sessions of about a day, 31 days of per-day detail, the
categories (a catalogue's size).

:func:`features_as_of` gives the ``user_feature_snapshots`` columns at an instant: the sessions over at it
(their last event more than ``session_timeout_minutes`` before it) are the counted totals plus the open
summaries that qualify. Day differences are to the as-of date: the instant's date at a UTC midnight (exactly
the dbt snapshot of that date), else the next midnight's (the date ``user_features`` uses for "now": the day
after the latest events). The parity test (tests/integration/test_live_features.py) proves it equal to the
dbt snapshot row for row.

The formulas of fct_sessions and fct_page_views that feed the features exist here a second time, in Python
(engaged seconds from distinct heartbeat buckets, scroll depth with its pixel fallback, bounce, engaged and
cart-abandoned sessions); the thresholds are the dbt vars of the same names (:class:`FeatureRules`). Events
arrive with ``user_key`` and ``session_key`` computed by the stream processor (as ``int_events_sessionized``).

Not mirrored (the batch corrects them at its next run; docs/realtime.md): a ``page_view_id`` sent twice in two
different sessions counts in both (the batch keeps the first); an event later than the fold (at or before
``through``) is not counted (:func:`apply` returns False and ``late_events`` counts it); identity stitching
that merges two users' histories is the processor's (it re-keys the state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from ml.features import USER_FEATURE_COLUMNS

STATE_VERSION = 1
WINDOW_DAYS = 30  # the longest day window of the features (sessions_30d, active_days_30d)

# The user_feature_snapshots columns features_as_of returns, in the table's order (without user_key).
FEATURE_COLUMNS = ("as_of_date", *USER_FEATURE_COLUMNS)

# counted totals that are plain sums over sessions
_SUMS = (
    "sessions_total",
    "bounced_sessions",
    "engaged_sessions",
    "cart_sessions",
    "abandoned_cart_sessions",
    "duration_seconds",
    "engaged_seconds",
    "page_views",
    "product_views",
    "searches",
    "cart_adds",
    "purchases",
    "revenue",
    "scroll_depth_sum",
    "scroll_depth_count",
)
_COUNTED_EVENTS = {"product_view": "product_views", "search": "searches", "add_to_cart": "cart_adds"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeatureRules:
    """The dbt vars the features depend on (dbt_project.yml; one definition for batch and live)."""

    session_timeout_minutes: int = 30
    max_session_hours: int = 24
    heartbeat_seconds: int = 10
    min_visit_seconds: int = 5
    engaged_session_seconds: int = 10

    @classmethod
    def from_dbt_vars(cls, dbt_vars: Mapping[str, Any]) -> FeatureRules:
        """From the effective dbt vars (``pulse.core.settings.load_settings().dbt_vars()``)."""
        values = {}
        for name in cls.__dataclass_fields__:
            if name not in dbt_vars:
                raise KeyError(f"dbt var {name!r} missing: the live features need it (dbt_project.yml)")
            value = dbt_vars[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"dbt var {name}={value!r}: expected a whole number >= 0")
            values[name] = value
        return cls(**values)

    @cached_property
    def timeout(self) -> timedelta:
        return timedelta(minutes=self.session_timeout_minutes)

    @cached_property
    def fold_after(self) -> timedelta:
        """How long after its end, measured on the user's latest event, a session is folded (over, and no
        event that late is waited for)."""
        return self.timeout + timedelta(hours=self.max_session_hours)


class LiveFeatureError(ValueError):
    """An event or an instant the live features cannot take; the message names the field and the event."""


# ------------------------------------------------------------------------------------------------ times


def iso(t: datetime) -> str:
    """ISO-8601 UTC with microseconds always written, so that the text sorts as the time does."""
    return (t if t.tzinfo is UTC else t.astimezone(UTC)).isoformat(timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _seconds(t: datetime) -> int:
    """Whole seconds since the epoch, floored (dbt.datediff 'second' counts second boundaries)."""
    delta = t - _EPOCH
    return delta.days * 86400 + delta.seconds


def _days(later: date, earlier: date) -> int:
    return (later - earlier).days


def as_of_date(instant: datetime) -> date:
    """The snapshot date an instant's features are measured to: its date at a UTC midnight, else the next."""
    instant = instant.astimezone(UTC)
    return instant.date() if instant.time() == time(0) else instant.date() + timedelta(days=1)


def _round_half_away(x: float) -> float:
    """SQL round() of a double (DuckDB and Spark: half away from zero), not Python's half to even."""
    return float(math.floor(x + 0.5)) if x >= 0 else -float(math.floor(-x + 0.5))


# ------------------------------------------------------------------------------------------------ state


def new_state() -> dict[str, Any]:
    """The state of a user the stream sees for the first time (no batch history)."""
    return {
        "version": STATE_VERSION,
        "counted": _empty_counted(),
        "open": {},
        "latest_event_time": None,
        "fold_due": None,  # the next fold is not before this (a later event than it triggers a look)
        "late_events": 0,
    }


def _empty_counted() -> dict[str, Any]:
    return {
        **{name: 0 for name in _SUMS},
        "revenue": 0.0,
        "first_session_start": None,
        "through": None,  # the last counted session's end
        "last_purchase_session_end": None,
        "categories": [],
        "session_days": {},  # session_date -> counted sessions started that day (dates >= day_floor)
        "active_dates": [],  # active days >= day_floor
        "active_days_before_floor": 0,
        "day_floor": None,  # per-day detail is complete from this date on
    }


def seed_state(seed: Mapping[str, Any], days: list[Mapping[str, Any]], categories: list[str]) -> dict[str, Any]:
    """A user's state from the batch: one row of dbt ``live_feature_seeds``, the user's rows of
    ``live_feature_seed_days`` and categories of ``live_feature_seed_categories`` (read as they are: the
    bootstrap joins nothing). The stream then feeds the user's events; those up to the seed's
    ``last_session_end`` are already counted and are skipped."""
    state = new_state()
    counted = state["counted"]
    for name in _SUMS:
        value = seed.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise LiveFeatureError(f"live_feature_seeds row of user {seed.get('user_key')!r}: {name} is null")
        counted[name] = float(value) if name in ("revenue", "scroll_depth_sum") else int(value)
    as_of = _to_date(seed["as_of_date"], "as_of_date", seed)
    counted["first_session_start"] = iso(_to_time(seed["first_session_start"], "first_session_start", seed))
    counted["through"] = iso(_to_time(seed["last_session_end"], "last_session_end", seed))
    last_purchase = seed.get("last_purchase_session_end")
    if last_purchase is not None and not _is_missing(last_purchase):
        counted["last_purchase_session_end"] = iso(_to_time(last_purchase, "last_purchase_session_end", seed))
    counted["day_floor"] = (as_of - timedelta(days=WINDOW_DAYS)).isoformat()
    active = set()
    for row in days:
        day = _to_date(row["activity_date"], "activity_date", row)
        if _days(as_of, day) > WINDOW_DAYS:
            raise LiveFeatureError(
                f"live_feature_seed_days row {dict(row)}: activity_date more than 30 days before as_of_date"
            )
        active.add(day.isoformat())
        if int(row["sessions_started"]):
            counted["session_days"][day.isoformat()] = int(row["sessions_started"])
    counted["active_dates"] = sorted(active)
    counted["active_days_before_floor"] = int(seed["active_days_total"]) - len(active)
    if counted["active_days_before_floor"] < 0:
        raise LiveFeatureError(
            f"live_feature_seeds row of user {seed.get('user_key')!r}: active_days_total {seed['active_days_total']} "
            f"is less than its {len(active)} live_feature_seed_days rows"
        )
    counted["categories"] = sorted(set(categories))
    state["latest_event_time"] = counted["through"]
    return state


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN / NaT
    except (TypeError, ValueError):
        return False


def _to_time(value: Any, field: str, row: Mapping[str, Any]) -> datetime:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise LiveFeatureError(f"{field} of {row.get('user_key') or row.get('event_id')!r}: not a time ({value!r})")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_date(value: Any, field: str, row: Mapping[str, Any]) -> date:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise LiveFeatureError(f"{field} of {row.get('user_key')!r}: not a date ({value!r})")


# ------------------------------------------------------------------------------------------------ apply


def _event_time(event: Mapping[str, Any]) -> datetime:
    t = event.get("event_time")
    if not isinstance(t, datetime) or t.tzinfo is None:
        raise LiveFeatureError(f"event {event.get('event_id')!r}: event_time must be a UTC-aware datetime, got {t!r}")
    return t if t.tzinfo is UTC else t.astimezone(UTC)


def _new_session(t: str) -> dict[str, Any]:
    return {
        "start": t,
        "end": t,
        "dates": [],
        "product_views": 0,
        "searches": 0,
        "cart_adds": 0,
        "purchases": 0,
        "revenue": 0.0,
        "last_cart_add": None,
        "last_purchase": None,
        "categories": [],
        "page_views": {},  # page_view_id -> [started_at, event_id] of its first page_view event
        "anonymous_page_views": 0,  # page_view events without a page_view_id (no pings can join them)
        "activity": {},  # page_view_id -> heartbeat buckets and scroll maxima of the session's events
    }


def _max(a: Any, b: Any) -> Any:
    if b is None:
        return a
    return b if a is None or b > a else a


def apply(state: dict[str, Any], event: Mapping[str, Any], rules: FeatureRules) -> bool:
    """Add one event (contract fields plus ``user_key`` and ``session_key``) to ``state`` in place. Returns
    False, changing nothing but ``late_events``, for an event at or before the folded sessions' end (counted
    by the batch at its next run). Events may come in any order within ``rules.fold_after``. Each event once:
    the processor deduplicates by event_id."""
    t = _event_time(event)
    session_key = event.get("session_key")
    if not session_key:
        raise LiveFeatureError(f"event {event.get('event_id')!r}: session_key is missing")
    event_type = event.get("event_type")
    if not event_type:
        raise LiveFeatureError(f"event {event.get('event_id')!r}: event_type is missing")
    stamp = iso(t)
    counted = state["counted"]
    if counted["through"] is not None and stamp <= counted["through"]:
        state["late_events"] += 1
        return False
    session = state["open"].get(session_key)
    if session is None:
        session = state["open"][session_key] = _new_session(stamp)
        due = iso(t + rules.fold_after)
        if state.get("fold_due") is None or due < state["fold_due"]:
            state["fold_due"] = due
    session["start"] = min(session["start"], stamp)
    session["end"] = max(session["end"], stamp)
    day = t.date().isoformat()
    if day not in session["dates"]:
        session["dates"].append(day)
        session["dates"].sort()

    if event_type in _COUNTED_EVENTS:
        session[_COUNTED_EVENTS[event_type]] += 1
    if event_type == "product_view":
        category = event.get("category")
        if category is not None and category not in session["categories"]:
            session["categories"].append(category)
            session["categories"].sort()
    elif event_type == "add_to_cart":
        session["last_cart_add"] = _max(session["last_cart_add"], stamp)
    elif event_type == "purchase":
        session["purchases"] += 1
        session["last_purchase"] = _max(session["last_purchase"], stamp)
        revenue = event.get("revenue")
        if revenue is not None:
            session["revenue"] += float(revenue)
    page_view_id = event.get("page_view_id")
    if event_type == "page_view":
        if page_view_id is None:
            session["anonymous_page_views"] += 1
        else:
            first = [stamp, str(event.get("event_id"))]
            known = session["page_views"].get(page_view_id)
            session["page_views"][page_view_id] = first if known is None else min(known, first)
    if page_view_id is not None:
        activity = session["activity"].setdefault(
            page_view_id, {"buckets": [], "pct": None, "px": None, "doc": None, "viewport": None}
        )
        if event_type == "page_ping":
            bucket = _seconds(t) // rules.heartbeat_seconds
            if bucket not in activity["buckets"]:
                activity["buckets"].append(bucket)
        for field, name in (
            ("scroll_depth_pct", "pct"),
            ("scroll_depth_px", "px"),
            ("doc_height_px", "doc"),
            ("viewport_height_px", "viewport"),
        ):
            activity[name] = _max(activity[name], event.get(field))

    if state["latest_event_time"] is None or stamp > state["latest_event_time"]:
        state["latest_event_time"] = stamp
        if state.get("fold_due") is not None and stamp > state["fold_due"]:
            _fold(state, iso(t - rules.fold_after), rules)  # only a later latest event moves the fold
    return True


def _fold(state: dict[str, Any], cutoff: str, rules: FeatureRules) -> None:
    """Fold the sessions that ended before ``cutoff`` (``rules.fold_after`` before the user's latest event),
    oldest first."""
    done = sorted((s["end"], key) for key, s in state["open"].items() if s["end"] < cutoff)
    for _, key in done:
        _add_session(state["counted"], _session_totals(state["open"].pop(key), rules))
    if done:
        _prune_days(state["counted"])
    # When to look again: the oldest open session's end plus fold_after (a lower bound: ends only grow)
    ends = [s["end"] for s in state["open"].values()]
    state["fold_due"] = iso(_time(min(ends)) + rules.fold_after) if ends else None


def _prune_days(counted: dict[str, Any]) -> None:
    """Keep the per-day detail the 30-day windows can still need: any as-of date is after ``through``."""
    floor = (_time(counted["through"]).date() - timedelta(days=WINDOW_DAYS)).isoformat()
    if counted["day_floor"] is not None and counted["day_floor"] >= floor:
        return
    counted["day_floor"] = floor
    old = [d for d in counted["active_dates"] if d < floor]
    counted["active_days_before_floor"] += len(old)
    counted["active_dates"] = [d for d in counted["active_dates"] if d >= floor]
    counted["session_days"] = {d: n for d, n in counted["session_days"].items() if d >= floor}


# ------------------------------------------------------------------------------------------------ sessions


def _page_view_scroll_depth(activity: Mapping[str, Any] | None) -> float | None:
    """fct_page_views.scroll_depth_pct: the largest reported depth, else from pixels on a page of known
    height (SQL least() skips a null viewport height: the depth is then the whole page)."""
    if activity is None:
        return None
    if activity["pct"] is not None:
        return float(activity["pct"])
    doc = activity["doc"]
    if doc is None or doc == 0:
        return None
    px = min(max(activity["px"] if activity["px"] is not None else 0, 0), doc)
    reach = doc if activity["viewport"] is None else min(px + activity["viewport"], doc)
    return _round_half_away(100 * float(reach) / doc)


def _session_totals(session: Mapping[str, Any], rules: FeatureRules) -> dict[str, Any]:
    """One fct_sessions row's part of the features, from the session's summary."""
    engaged = 0
    scroll_sum, scroll_count = 0.0, 0
    for page_view_id in session["page_views"]:
        activity = session["activity"].get(page_view_id)
        buckets = len(activity["buckets"]) if activity else 0
        if buckets:
            engaged += rules.heartbeat_seconds * (buckets - 1) + rules.min_visit_seconds
        depth = _page_view_scroll_depth(activity)
        if depth is not None:
            scroll_sum += depth
            scroll_count += 1
    page_views = len(session["page_views"]) + session["anonymous_page_views"]
    last_cart_add, last_purchase = session["last_cart_add"], session["last_purchase"]
    abandoned = last_cart_add is not None and (last_purchase is None or last_cart_add > last_purchase)
    start, end = _time(session["start"]), _time(session["end"])
    return {
        "start": session["start"],
        "end": session["end"],
        "session_date": start.date().isoformat(),
        "dates": session["dates"],
        "categories": session["categories"],
        "sessions_total": 1,
        "bounced_sessions": int(page_views == 1),
        "engaged_sessions": int(engaged > rules.engaged_session_seconds or session["purchases"] > 0 or page_views >= 2),
        "cart_sessions": int(session["cart_adds"] > 0),
        "abandoned_cart_sessions": int(abandoned),
        "duration_seconds": _seconds(end) - _seconds(start),
        "engaged_seconds": engaged,
        "page_views": page_views,
        "product_views": session["product_views"],
        "searches": session["searches"],
        "cart_adds": session["cart_adds"],
        "purchases": session["purchases"],
        "revenue": session["revenue"],
        "scroll_depth_sum": scroll_sum,
        "scroll_depth_count": scroll_count,
    }


def _add_session(counted: dict[str, Any], totals: Mapping[str, Any]) -> None:
    for name in _SUMS:
        counted[name] += totals[name]
    if counted["first_session_start"] is None or totals["start"] < counted["first_session_start"]:
        counted["first_session_start"] = totals["start"]
    counted["through"] = _max(counted["through"], totals["end"])
    if totals["purchases"] > 0:
        counted["last_purchase_session_end"] = _max(counted["last_purchase_session_end"], totals["end"])
    counted["session_days"][totals["session_date"]] = counted["session_days"].get(totals["session_date"], 0) + 1
    counted["active_dates"] = sorted(set(counted["active_dates"]) | set(totals["dates"]))
    counted["categories"] = sorted(set(counted["categories"]) | set(totals["categories"]))


# ------------------------------------------------------------------------------------------------ features


def features_as_of(state: Mapping[str, Any], instant: datetime, rules: FeatureRules) -> dict[str, Any] | None:
    """The user_feature_snapshots row (its columns but user_key) at ``instant`` (UTC-aware): the sessions
    over at it, measured to :func:`as_of_date`. None when no session is over yet (dbt: no row). Raises
    :class:`LiveFeatureError` for an instant before what the state has folded (the past is not kept)."""
    if instant.tzinfo is None:
        raise LiveFeatureError(f"instant {instant!r}: must be UTC-aware")
    closed_before = iso(instant - rules.timeout)
    as_of = as_of_date(instant)
    base = state["counted"]
    if base["through"] is not None and base["through"] >= closed_before:
        raise LiveFeatureError(
            f"instant {iso(instant)}: the state has folded sessions up to {base['through']}, which end less than "
            f"session_timeout_minutes ({rules.session_timeout_minutes}) before it; ask for a later instant"
        )
    if base["day_floor"] is not None and _days(as_of, date.fromisoformat(base["day_floor"])) < WINDOW_DAYS:
        raise LiveFeatureError(
            f"instant {iso(instant)}: as-of date {as_of} needs days before the state's day_floor {base['day_floor']}"
        )
    counted = {
        **{name: base[name] for name in _SUMS},
        "first_session_start": base["first_session_start"],
        "through": base["through"],
        "last_purchase_session_end": base["last_purchase_session_end"],
        "categories": list(base["categories"]),
        "session_days": dict(base["session_days"]),
        "active_dates": list(base["active_dates"]),
    }
    for session in sorted(state["open"].values(), key=lambda s: s["end"]):
        if session["end"] < closed_before:
            _add_session(counted, _session_totals(session, rules))
    if counted["sessions_total"] == 0:
        return None

    def days_to(text: str | None) -> int | None:
        return None if text is None else _days(as_of, _time(text).date())

    def ratio(numerator: float, denominator: float) -> float | None:
        return None if denominator == 0 else float(numerator) / denominator

    sessions = counted["sessions_total"]
    session_days = {date.fromisoformat(d): n for d, n in counted["session_days"].items()}
    active_dates = [date.fromisoformat(d) for d in counted["active_dates"]]
    active_total = base["active_days_before_floor"] + len(active_dates)
    purchases = counted["purchases"]
    return {
        "as_of_date": as_of,
        "days_since_last_visit": days_to(counted["through"]),
        "days_since_first_visit": days_to(counted["first_session_start"]),
        "sessions_7d": sum(n for d, n in session_days.items() if _days(as_of, d) <= 7),
        "sessions_30d": sum(n for d, n in session_days.items() if _days(as_of, d) <= WINDOW_DAYS),
        "sessions_total": sessions,
        "active_days_30d": sum(1 for d in active_dates if _days(as_of, d) <= WINDOW_DAYS),
        "sessions_per_active_day": ratio(sessions, active_total),
        "avg_session_seconds": ratio(counted["duration_seconds"], sessions),
        "avg_engaged_seconds": ratio(counted["engaged_seconds"], sessions),
        "avg_scroll_depth_pct": ratio(counted["scroll_depth_sum"], counted["scroll_depth_count"]),
        "page_views": counted["page_views"],
        "product_views": counted["product_views"],
        "categories_viewed": len(counted["categories"]),
        "searches": counted["searches"],
        "cart_adds": counted["cart_adds"],
        "purchases": purchases,
        "revenue": float(counted["revenue"]),
        "avg_order_value": ratio(counted["revenue"], purchases) or 0.0,
        "cart_abandonment_rate": ratio(counted["abandoned_cart_sessions"], counted["cart_sessions"]) or 0.0,
        "days_since_last_purchase": days_to(counted["last_purchase_session_end"]),
        "bounce_rate": ratio(counted["bounced_sessions"], sessions),
        "engaged_session_rate": ratio(counted["engaged_sessions"], sessions),
    }
