"""The read API's view of the live state: one user's rows of the stream's state database, merged with the
published profile, and the inputs of a content decision (docs/realtime.md, docs/decisions.md).

The stream processor (``pulse stream``) is the only writer of ``<PULSE_HOME>/live/state.sqlite`` (SQLite in
WAL mode). The API opens it read-only (``mode=ro``, ``query_only``) and reads a user's rows in one read
transaction, so a user's state, score and firings are of one commit while the processor writes on. A
database that is missing or cannot be read is never an error of the API: the profile is the published one
and says why the live part is missing (``live.status: unavailable``, ``live.reason``).

What a merged profile says, field by field (``fields``): ``live`` (true: from the stream's state) and
``as_of`` (the instant the value describes data up to: the snapshot's ``as_of_date`` at 00:00 UTC for a
published value, the last processed event, score or firing for a live one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

log = logging.getLogger(__name__)

ACTIVE_TRIGGER_DAYS = 7  # as user_profiles.sql's active_trigger_days: a firing of the last 7 days is active
RECENT_FIRINGS = 50  # the most recent firings of a user read per request
BUSY_TIMEOUT_SECONDS = 0.25  # a WAL reader waits only for a checkpoint's brief lock

LiveStatus = Literal["ok", "not_seen", "unavailable"]
ProfileSource = Literal["merged", "published", "live", "none"]

# Published fields that live state replaces when it is newer (the rest are published only).
LIVE_FIELDS = (
    "intent_probability",
    "intent_model_version",
    "intent_status",
    "intent_status_reason",
    "active_triggers",
    "consent_analytics",
    "consent_personalization",
)


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class LiveFiring:
    seq: int
    firing_key: str
    trigger_name: str
    fired_at: datetime
    recorded_at: datetime
    evidence: Any


@dataclass(frozen=True)
class LiveScore:
    probability: float
    model_version: str
    features: dict[str, Any]
    features_as_of: datetime
    scored_at: datetime


@dataclass(frozen=True)
class LiveUser:
    state: dict[str, Any]
    last_event_time: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class LiveView:
    """What the state database holds for one key: ``status`` ok (rows found), not_seen (none) or unavailable
    (the database is missing or unreadable: ``reason`` says why)."""

    status: LiveStatus
    user_key: str
    reason: str | None = None
    stitched_from: str | None = None  # the anonymous_id asked for, when the identity map links it to user_key
    user: LiveUser | None = None
    score: LiveScore | None = None
    firings: tuple[LiveFiring, ...] = ()


class LiveStateError(Exception):
    """The state database (or a row of it) cannot be read."""


def parse_utc(value: Any, where: str) -> datetime:
    """An ISO-8601 text of the state database as an aware UTC datetime (naive = UTC)."""
    if not isinstance(value, str):
        raise LiveStateError(f"{where}: expected an ISO-8601 UTC text, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise LiveStateError(f"{where}: not an ISO-8601 time: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json(value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise LiveStateError(f"{where}: not JSON: {exc}") from exc


class LiveStateReader:
    """Reads one user's live rows from the state database, read-only, one connection per thread.

    ``path`` None: live state is off (every view is unavailable, saying so)."""

    def __init__(self, path: Path | None, recent_firings: int = RECENT_FIRINGS) -> None:
        self.path = Path(path) if path is not None else None
        self.recent_firings = recent_firings
        self._local = threading.local()  # conn, and the inode of the file it opened
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def _connection(self, inode: int) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "inode", None) != inode:
            self._drop_connection()  # the file was replaced (a new state database): open the new one
            conn = None
        if conn is None:
            assert self.path is not None
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            conn.execute("pragma query_only = 1")
            self._local.conn, self._local.inode = conn, inode
            with self._lock:
                self._opened.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._opened:
                    self._opened.remove(conn)
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        """Close every thread's connection (the app's shutdown)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def read(self, key: str) -> LiveView:
        if self.path is None:
            return LiveView(
                status="unavailable", user_key=key, reason="live state is off (no state database configured)"
            )
        try:
            inode = self.path.stat().st_ino
        except OSError:
            return LiveView(
                status="unavailable",
                user_key=key,
                reason=f"no live state: {self.path} does not exist (is `pulse stream` running?)",
            )
        try:
            conn = self._connection(inode)
            conn.execute("begin")  # one read transaction: state, score and firings of the same commit
            try:
                return self._read(conn, key)
            finally:
                conn.execute("rollback")
        except (sqlite3.Error, LiveStateError) as exc:
            self._drop_connection()  # a repaired file is opened afresh next time
            reason = f"live state unreadable ({self.path}): {type(exc).__name__}: {exc}"
            if reason not in self._warned:  # once per distinct problem, not every request
                self._warned.add(reason)
                log.warning("%s; serving published profiles", reason)
            return LiveView(status="unavailable", user_key=key, reason=reason)

    def _read(self, conn: sqlite3.Connection, key: str) -> LiveView:
        user_key, stitched_from = key, None
        row = conn.execute("select user_id from identity_map where anonymous_id = ?", (key,)).fetchone()
        if row is not None and row[0] is not None and row[0] != key:
            user_key, stitched_from = str(row[0]), key
        where = f"live_users[{user_key!r}]"
        user_row = conn.execute(
            "select state, last_event_time, updated_at from live_users where user_key = ?", (user_key,)
        ).fetchone()
        user = None
        if user_row is not None:
            state = _json(user_row[0], f"{where}.state")
            if not isinstance(state, dict):
                raise LiveStateError(f"{where}.state: expected a JSON object, got {type(state).__name__}")
            user = LiveUser(
                state=state,
                last_event_time=None if user_row[1] is None else parse_utc(user_row[1], f"{where}.last_event_time"),
                updated_at=parse_utc(user_row[2], f"{where}.updated_at"),
            )
        score_row = conn.execute(
            "select probability, model_version, features, features_as_of, scored_at "
            "from live_scores where user_key = ?",
            (user_key,),
        ).fetchone()
        score = None
        if score_row is not None:
            where = f"live_scores[{user_key!r}]"
            features = _json(score_row[2], f"{where}.features")
            score = LiveScore(
                probability=float(score_row[0]),
                model_version=str(score_row[1]),
                features=features if isinstance(features, dict) else {"value": features},
                features_as_of=parse_utc(score_row[3], f"{where}.features_as_of"),
                scored_at=parse_utc(score_row[4], f"{where}.scored_at"),
            )
        firings = tuple(
            LiveFiring(
                seq=int(seq),
                firing_key=str(firing_key),
                trigger_name=str(name),
                fired_at=parse_utc(fired_at, f"live_trigger_firings[seq {seq}].fired_at"),
                recorded_at=parse_utc(recorded_at, f"live_trigger_firings[seq {seq}].recorded_at"),
                evidence=_json(evidence, f"live_trigger_firings[seq {seq}].evidence"),
            )
            for seq, firing_key, name, fired_at, recorded_at, evidence in conn.execute(
                "select seq, firing_key, trigger_name, fired_at, recorded_at, evidence from live_trigger_firings "
                "where user_key = ? order by seq desc limit ?",
                (user_key, self.recent_firings),
            )
        )
        status: LiveStatus = "ok" if (user or score or firings) else "not_seen"
        return LiveView(
            status=status, user_key=user_key, stitched_from=stitched_from, user=user, score=score, firings=firings
        )


# ------------------------------------------------------------------------------------------------ merging


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def published_as_of(as_of_date: date | None) -> datetime | None:
    """A snapshot describes the data up to its ``as_of_date`` (exclusive) at 00:00 UTC."""
    return None if as_of_date is None else datetime.combine(as_of_date, time(0), tzinfo=UTC)


def _number(state: Mapping[str, Any], *path: str) -> float | int | None:
    value: Any = state
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _state_time(state: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = state.get(key)
    return None if value is None else parse_utc(value, where)


@dataclass(frozen=True)
class LiveFacts:
    """What the live state says, read from ``live_users.state`` (the JSON docs/realtime.md describes):
    the one place that knows that JSON's keys."""

    today: dict[str, Any] = field(default_factory=dict)  # counters of the current UTC day (empty: none yet)
    top_category_today: str | None = None
    categories_today: tuple[str, ...] = ()
    cart_items: int | float | None = None
    last_purchase_at: datetime | None = None
    consent_analytics: bool | None = None
    consent_personalization: bool | None = None

    COUNTERS = ("sessions", "page_views", "product_views", "cart_adds", "purchases", "revenue", "engaged_seconds")


def live_facts(user: LiveUser, now: datetime) -> LiveFacts:
    """Read the stream processor's JSON (pulse/live/processor.py, ``ActivityModel``): ``state["activity"]`` holds
    ``days[<YYYY-MM-DD>]`` (each kept UTC day's counters), ``cart`` (the open cart's items, each with a
    quantity) and ``last_purchase_at``; consent flags, when a state model records them, sit at the top."""
    state, where = user.state, "live_users.state"
    activity = state.get("activity") if isinstance(state.get("activity"), Mapping) else {}
    days = activity.get("days") if isinstance(activity.get("days"), Mapping) else {}
    counters = days.get(now.astimezone(UTC).date().isoformat())  # nothing yet today: no counters
    counters = counters if isinstance(counters, Mapping) else {}
    today = {name: (_number(counters, name) or 0) for name in LiveFacts.COUNTERS} if counters else {}
    by_category = counters.get("product_views_by_category") if counters else None
    categories: tuple[str, ...] = ()
    if isinstance(by_category, Mapping):
        counts = [(str(c), n) for c, n in by_category.items() if isinstance(n, int | float) and n > 0]
        categories = tuple(c for c, _ in sorted(counts, key=lambda cn: (-cn[1], cn[0])))  # ties by name
    cart = activity.get("cart")
    cart_items = (
        sum(_number(item, "quantity") or 0 for item in cart if isinstance(item, Mapping))
        if isinstance(cart, list)
        else None
    )
    flags = {
        k: state.get(k) if isinstance(state.get(k), bool) else None
        for k in ("consent_analytics", "consent_personalization")
    }
    return LiveFacts(
        today=today,
        top_category_today=categories[0] if categories else None,
        categories_today=categories,
        cart_items=cart_items,
        last_purchase_at=_state_time(activity, "last_purchase_at", f"{where}.activity.last_purchase_at"),
        **flags,
    )


@dataclass(frozen=True)
class MergedProfile:
    profile: dict[str, Any]  # the response body of GET /users/{key}
    sources: dict[str, tuple[bool, datetime | None]]  # field -> (live, as_of)
    facts: LiveFacts | None
    live: LiveView
    now: datetime


def active_live_firings(view: LiveView, facts: LiveFacts | None, now: datetime) -> list[LiveFiring]:
    """Live firings of the last ACTIVE_TRIGGER_DAYS days (no upper bound: a firing on a clock ahead of this
    one counts), less a cart_abandonment that a later purchase cancelled (as user_profiles does)."""
    since = now - timedelta(days=ACTIVE_TRIGGER_DAYS)
    bought = facts.last_purchase_at if facts else None
    return [
        f
        for f in view.firings
        if f.fired_at >= since
        and not (f.trigger_name == "cart_abandonment" and bought is not None and bought > f.fired_at)
    ]


def merge(
    published: Mapping[str, Any] | None,
    as_of_date: date | None,
    view: LiveView,
    now: datetime,
    field_names: Iterable[str] = (),
) -> MergedProfile:
    """The published profile (or None) merged with the live view: the response of GET /users/{key}.
    ``field_names``: the profile's fields, so that a live-only profile lists them too (empty, not live)."""
    pub_as_of = published_as_of(as_of_date) if published is not None else None
    profile: dict[str, Any] = dict(published) if published is not None else {"user_key": view.user_key}
    for name in field_names:
        profile.setdefault(name, None)
    sources: dict[str, tuple[bool, datetime | None]] = {
        name: (False, pub_as_of if published is not None else None) for name in profile
    }
    facts = live_facts(view.user, now) if view.user is not None else None
    live_as_of = view.user.last_event_time if view.user is not None else None

    if view.status == "ok":
        score = view.score
        if score is not None and (pub_as_of is None or score.features_as_of >= pub_as_of):
            profile["intent_probability"] = score.probability
            profile["intent_model_version"] = score.model_version
            profile["intent_status"] = "current"
            profile["intent_status_reason"] = (
                f"scored live at {iso(score.scored_at)} on features as of {iso(score.features_as_of)}"
            )
            for name in ("intent_probability", "intent_model_version", "intent_status", "intent_status_reason"):
                sources[name] = (True, score.features_as_of)

        firings = active_live_firings(view, facts, now)
        published_triggers = list(profile.get("active_triggers") or [])
        if (
            facts is not None
            and facts.last_purchase_at is not None
            and (pub_as_of is None or facts.last_purchase_at >= pub_as_of)
        ):
            # every published firing is before the snapshot's as_of: a purchase since then cancels its cart abandonment
            published_triggers = [t for t in published_triggers if t != "cart_abandonment"]
        merged_triggers = sorted(set(published_triggers) | {f.trigger_name for f in firings})
        latest = max([f.recorded_at for f in view.firings] + ([live_as_of] if live_as_of else []), default=None)
        profile["active_triggers"] = merged_triggers
        sources["active_triggers"] = (True, latest)

        if facts is not None:
            for name in ("consent_analytics", "consent_personalization"):
                value = getattr(facts, name)
                if value is not None:
                    profile[name] = value
                    sources[name] = (True, live_as_of)
            if published is None:
                profile["top_categories"] = list(facts.categories_today)
                sources["top_categories"] = (True, live_as_of)

    source: ProfileSource
    if published is not None:
        source = "merged" if view.status == "ok" else "published"
    else:
        source = "live" if view.status == "ok" else "none"
    profile["profile_source"] = source
    profile["stitched_from"] = view.stitched_from
    profile["live"] = live_block(view, facts, now)
    profile["fields"] = {name: {"live": live, "as_of": iso(as_of)} for name, (live, as_of) in sources.items()}
    return MergedProfile(profile=profile, sources=sources, facts=facts, live=view, now=now)


def live_block(view: LiveView, facts: LiveFacts | None, now: datetime) -> dict[str, Any]:
    user, score = view.user, view.score
    active = {f.seq for f in active_live_firings(view, facts, now)}
    return {
        "status": view.status,
        "reason": view.reason,
        "last_event_time": iso(user.last_event_time) if user else None,
        "updated_at": iso(user.updated_at) if user else None,
        "today": facts.today if facts else None,
        "state": user.state if user else None,
        "score": None
        if score is None
        else {
            "probability": score.probability,
            "model_version": score.model_version,
            "features": score.features,
            "features_as_of": iso(score.features_as_of),
            "scored_at": iso(score.scored_at),
        },
        "recent_firings": [
            {
                "seq": f.seq,
                "firing_key": f.firing_key,
                "trigger_name": f.trigger_name,
                "fired_at": iso(f.fired_at),
                "recorded_at": iso(f.recorded_at),
                "evidence": f.evidence,
                "active": f.seq in active,
            }
            for f in view.firings
        ],
    }


# ------------------------------------------------------------------------------------------------ decision inputs


def decision_inputs(merged: MergedProfile) -> dict[str, tuple[Any, bool, datetime | None]]:
    """Every field a decision rule may read (pulse.activation.decisions.INPUT_FIELDS): name -> (value, live, as_of)."""
    p, facts, view, now = merged.profile, merged.facts, merged.live, merged.now
    src = merged.sources

    def published(name: str) -> tuple[Any, bool, datetime | None]:
        live, as_of = src.get(name, (False, None))
        return p.get(name), live, as_of

    live_as_of = view.user.last_event_time if view.user else None
    today = facts.today if facts else {}
    inputs: dict[str, tuple[Any, bool, datetime | None]] = {
        name: published(name)
        for name in (
            "active_triggers",
            "intent_probability",
            "user_type",
            "segment_name",
            "intent_decile",
            "engagement_score",
            "top_categories",
            "purchases",
            "days_since_last_visit",
            "consent_personalization",
        )
    }
    if facts is not None and facts.top_category_today is not None:
        inputs["top_category"] = (facts.top_category_today, True, live_as_of)
    else:
        tops = p.get("top_categories") or []
        inputs["top_category"] = (tops[0] if tops else None, *src.get("top_categories", (False, None)))
    # The state database unavailable: unknown (None: no condition on it holds). Available but no state for
    # this visitor: nothing happened today (0, no cart).
    known = view.status != "unavailable"
    inputs["seen_live"] = (view.user is not None if known else None, True, live_as_of)
    for name in LiveFacts.COUNTERS:
        inputs[f"{name}_today"] = (today.get(name, 0) if known else None, True, live_as_of)
    cart_items = facts.cart_items if facts else None
    inputs["cart_items"] = ((cart_items or 0) if known else None, True, live_as_of)
    inputs["cart_open"] = (bool(cart_items) if known else None, True, live_as_of)
    minutes = None
    if live_as_of is not None:
        minutes = max(0.0, (now - live_as_of).total_seconds() / 60)
    inputs["minutes_since_last_event"] = (minutes, True, live_as_of)
    inputs["profile_source"] = (p["profile_source"], False, now)
    return inputs


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
