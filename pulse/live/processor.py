"""The stream processor (`pulse stream`): accepted events in, per-user live state out, exactly once.

One loop: read a micro-batch from the source (:mod:`pulse.live.source`) after the committed position, skip the
event ids the state already includes, give every event its user_key (identity stitching as ``stg_events``),
let each state model fold it into the user's state, and commit the changed users, the processed event ids,
the identity links, the firings and the new position in ONE transaction (:mod:`pulse.live.store`). A crash at
any point (``kill -9``) leaves the store at the last commit; the restart reads from its position, so nothing is
lost and nothing is counted twice. A batch is at most ``stream_batch_size`` events; with nothing to read the
loop sleeps ``stream_max_wait_ms``, so an event waits at most that long before its batch starts.

State models (:class:`StateModel`) keep their part of a user's state (``live_users.state`` is a JSON object
with one key per model); the live triggers and features plug in as further models. :class:`ActivityModel` is
the first: today's counters, the open cart, the current session and the last activity.

Identity stitching: an event's user_key is its user_id; else the user its anonymous_id is linked to; else the
anonymous_id. An event carrying both ids links them; as in ``base_identity_map`` the link with the latest
event_time (ties: the greater user_id) wins, whatever the arrival order. When a link moves an anonymous id to
a user, the anonymous-only events the state models still keep for it move with it (``restitch``), as the
batch re-attributes them on its next run.

Time: every model sees event time. Timers (``advance``) run at the processor's clock while it is caught up
with the source, and at the latest event time read while it reads a backlog (a replay fires a timer when the
events say its time has come, not at once because the wall clock is far ahead).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from pulse.live.clock import Clock, iso, parse_iso, system_clock
from pulse.live.source import EventSource, LiveEvent, SourceBatch
from pulse.live.store import CommitBatch, Firing, LiveStateStore, Score

log = logging.getLogger(__name__)

Output = Firing | Score


@dataclass(frozen=True)
class StreamOptions:
    """The stream's settings (pulse/core/settings.py: stream_* and live_late_days) and the dbt vars its rules
    read (one definition for batch and live)."""

    session_timeout_minutes: int
    max_session_hours: int
    heartbeat_seconds: int
    min_visit_seconds: int
    batch_size: int = 5000
    max_wait_seconds: float = 0.05
    late_days: int = 1
    cached_users: int = 100_000
    max_cart_events: int = 200

    @classmethod
    def from_settings(cls, settings: Any) -> StreamOptions:
        return cls(
            session_timeout_minutes=settings.session_timeout_minutes,
            max_session_hours=settings.max_session_hours,
            heartbeat_seconds=settings.heartbeat_seconds,
            min_visit_seconds=settings.min_visit_seconds,
            batch_size=settings.stream_batch_size,
            max_wait_seconds=settings.stream_max_wait_ms / 1000,
            late_days=settings.live_late_days,
            cached_users=settings.stream_cached_users,
        )


class StateModel(Protocol):
    """One part of a user's live state (``state[name]``). The processor calls, per user:

    - ``apply(state, event, user_key)`` for each new event, in the source's order (not event time: a model
      that needs event-time order keeps its events sorted);
    - ``settle(state, user_key)`` once after the batch's events (derived fields, firings, scores);
    - ``advance(state, user_key, now)`` when ``next_due(state)`` is at or before ``now`` (timers);
    - ``restitch(source, target, anonymous_id, target_key)`` when identity stitching moves an anonymous id's
      events from one user_key to another: move what the model keeps of them; returns the event ids moved.
    Each returns outputs (:class:`~pulse.live.store.Firing`, :class:`~pulse.live.store.Score`) or []. A model
    must be deterministic in its inputs (the crash test compares a replay with one clean pass)."""

    name: str

    def initial(self) -> dict[str, Any]: ...

    def apply(self, state: dict[str, Any], event: LiveEvent, user_key: str) -> list[Output]: ...

    def settle(self, state: dict[str, Any], user_key: str) -> list[Output]: ...

    def advance(self, state: dict[str, Any], user_key: str, now: datetime) -> list[Output]: ...

    def next_due(self, state: dict[str, Any]) -> datetime | None: ...

    def restitch(
        self, source: dict[str, Any], target: dict[str, Any], anonymous_id: str, target_key: str
    ) -> list[str]: ...


# ------------------------------------------------------------------------------------------ activity


def epoch_second(moment: datetime) -> int:
    """The whole second a timestamp falls in, counted from 1970 (floor): differences of these are dbt's
    ``datediff(..., 'second')`` on DuckDB and Spark (the second boundaries crossed)."""
    return math.floor(moment.timestamp())


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# a kept event: [event_time, event_id, event_type, client_session_id, page_view_id, category, revenue, anon,
# second] (anon: the anonymous_id of an event without user_id, so identity stitching can move it, else null;
# second: epoch_second(event_time))
T, ID, TYPE, CSID, PVID, CATEGORY, REVENUE, ANON, SECOND = range(9)
# a cart event: [event_time, event_id, event_type, product_id, quantity, price, anon]
C_T, C_ID, C_TYPE, C_PRODUCT, C_QUANTITY, C_PRICE, C_ANON = range(7)
CART_TYPES = ("add_to_cart", "remove_from_cart")


class ActivityModel:
    """Today's counters, the open cart, the current session, the last activity: ``state["activity"]``.

    It keeps the user's events of the last ``late_days + 1`` UTC days (by event time, counted back from the
    day of the user's latest event) sorted by (event_time, event_id), and derives from them, as the batch
    models do from all events:

    - ``days[<YYYY-MM-DD>]``: the counters of each kept day as ``fct_user_daily`` counts them (events,
      sessions started that day, page views, product views and by category, cart adds, purchases, revenue,
      engaged seconds of the page views started that day, as ``fct_page_views``);
    - ``session``: the latest session (visit as ``int_visits``: a gap over session_timeout_minutes or a change
      of the client session id starts one; cut at max_session_hours as ``int_events_sessionized``), with its
      ``session_key`` as the batch builds it and ``expires_at`` (after it, the next event opens a new one);
    - ``cart``: the items added since the latest purchase (by event time; an add at the purchase's instant
      counts as bought), less those removed;
    - ``last_activity``: the latest event.

    Lateness: an event more than ``late_days`` UTC days before the day of the user's latest event is too late:
    it is recorded as processed, counted in ``late_events`` and changes nothing (the nightly batch has it). A
    later event anywhere inside the kept days lands in its own day's counters, whatever its arrival order.
    Where the kept days begin, ``carry`` remembers the session the earlier events left open, so a session that
    began before them is not counted again."""

    name = "activity"

    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self.timeout_seconds = options.session_timeout_minutes * 60
        self.piece_seconds = options.max_session_hours * 3600

    def initial(self) -> dict[str, Any]:
        return {
            "events": [], "carry": None, "cart_events": [], "last_purchase_at": None, "late_events": 0,
            "latest_day": None, "first_kept_day": None,
        }  # fmt: skip

    # ---------------------------------------------------------------- events in

    def apply(self, state: dict[str, Any], event: LiveEvent, user_key: str) -> list[Output]:
        moment = event["event_time"]
        t = iso(moment)
        first_kept = state.get("first_kept_day")
        if first_kept is not None and t[:10] < first_kept:
            state["late_events"] += 1
            return []
        anon = event["anonymous_id"] if event["user_id"] is None else None
        kind = event["event_type"]
        row = [
            t,
            event["event_id"],
            kind,
            event["session_id"],
            event["page_view_id"],
            event["category"] if kind == "product_view" else None,
            event["revenue"] if kind == "purchase" else None,
            anon,
            epoch_second(moment),
        ]
        events: list[list[Any]] = state["events"]
        if not events or (events[-1][T], events[-1][ID]) < (t, row[ID]):
            events.append(row)  # the usual case: in order
        else:
            bisect.insort(events, row, key=lambda r: (r[T], r[ID]))
        if kind == "purchase" and (state["last_purchase_at"] is None or t > state["last_purchase_at"]):
            state["last_purchase_at"] = t
        if kind in CART_TYPES:
            cart_row = [t, event["event_id"], kind, event["product_id"], event["quantity"], event["price"], anon]
            bisect.insort(state["cart_events"], cart_row, key=lambda r: (r[C_T], r[C_ID]))
        self._forget(state)
        return []

    def _forget(self, state: dict[str, Any]) -> None:
        """Move the kept days to the latest event's day; drop the events before them (remembering the session
        they leave open) and the cart events at or before the latest purchase."""
        events = state["events"]
        if events:
            latest = events[-1][T][:10]
            if latest != state.get("latest_day"):
                state["latest_day"] = latest
                first = date.fromisoformat(latest) - timedelta(days=self.options.late_days)
                state["first_kept_day"] = first.isoformat()
            first_kept = state["first_kept_day"]
            if events[0][T][:10] < first_kept:
                cut = bisect.bisect_left(events, first_kept, key=lambda r: r[T][:10])
                state["carry"] = self._walk(events[:cut], state["carry"], lambda *_: None)
                del events[:cut]
        cart, bought = state["cart_events"], state["last_purchase_at"]
        if cart and bought is not None and cart[0][C_T] <= bought:
            cart[:] = [r for r in cart if r[C_T] > bought]
        if len(cart) > self.options.max_cart_events:
            del cart[: len(cart) - self.options.max_cart_events]

    # ---------------------------------------------------------------- derived fields

    def _walk(
        self,
        events: Sequence[list[Any]],
        carry: dict[str, Any] | None,
        visit: Callable[[list[Any], str, int, str], None],
    ) -> dict[str, Any] | None:
        """Sessionize ``events`` (sorted) after ``carry`` (the open visit before them), calling
        ``visit(event, visit_first_event_id, piece, piece_start)`` for each; returns the carry after them."""
        prev_second = carry["last_second"] if carry else None
        prev_csid = carry["client_session_id"] if carry else None
        visit_first = carry["visit_first_event_id"] if carry else None
        visit_second = carry["visit_start_second"] if carry else None
        piece = carry["piece"] if carry else -1
        piece_start = carry["piece_start"] if carry else ""
        for event in events:
            second = event[SECOND]
            csid = event[CSID]
            if (
                prev_second is None
                or second - prev_second > self.timeout_seconds
                or (csid is not None and prev_csid is not None and csid != prev_csid)
            ):
                visit_first, visit_second, piece = event[ID], second, -1
            this_piece = (second - visit_second) // self.piece_seconds
            if this_piece != piece:
                piece, piece_start = this_piece, event[T]
            visit(event, visit_first, piece, piece_start)
            prev_second, prev_csid = second, csid
        if prev_second is None:
            return carry
        return {
            "last_second": prev_second,
            "client_session_id": prev_csid,
            "visit_first_event_id": visit_first,
            "visit_start_second": visit_second,
            "piece": piece,
            "piece_start": piece_start,
        }

    def settle(self, state: dict[str, Any], user_key: str) -> list[Output]:
        """Derive ``days``, ``session``, ``cart`` and ``last_activity`` from the kept events."""
        days: dict[str, dict[str, Any]] = {}
        sessions: dict[tuple[str, int], dict[str, Any]] = {}
        page_views: dict[str, tuple[str, str, int]] = {}  # page_view_id -> (its day, visit, piece): the first one
        pings: dict[tuple[str, str, int], set[int]] = {}
        session_of: dict[str, tuple[str, int]] = {}

        def day(key: str) -> dict[str, Any]:
            if key not in days:
                days[key] = {
                    "events": 0, "sessions": 0, "page_views": 0, "product_views": 0, "product_views_by_category": {},
                    "cart_adds": 0, "purchases": 0, "revenue": [], "engaged_seconds": 0,
                    "first_event_at": None, "last_event_at": None,
                }  # fmt: skip
            return days[key]

        def visit(event: list[Any], visit_first: str, piece: int, piece_start: str) -> None:
            counters = day(event[T][:10])
            counters["events"] += 1
            counters["first_event_at"] = counters["first_event_at"] or event[T]
            counters["last_event_at"] = event[T]
            session = (visit_first, piece)
            if session not in sessions:
                sessions[session] = {"started_at": piece_start, "events": 0, "page_views": 0, "client_session_id": None}
                if piece_start == event[T]:  # it starts here (else it began before the kept days: counted there)
                    counters["sessions"] += 1
            current = sessions[session]
            current["events"] += 1
            current["last_event_at"] = event[T]
            current["client_session_id"] = current["client_session_id"] or event[CSID]
            kind = event[TYPE]
            if kind == "page_view":
                counters["page_views"] += 1
                current["page_views"] += 1
                if event[PVID] is not None and event[PVID] not in page_views:
                    page_views[event[PVID]] = (event[T][:10], visit_first, piece)
            elif kind == "page_ping" and event[PVID] is not None:
                pings.setdefault((event[PVID], visit_first, piece), set()).add(
                    event[SECOND] // self.options.heartbeat_seconds
                )
            elif kind == "product_view":
                counters["product_views"] += 1
                if event[CATEGORY] is not None:
                    by_category = counters["product_views_by_category"]
                    by_category[event[CATEGORY]] = by_category.get(event[CATEGORY], 0) + 1
            elif kind == "add_to_cart":
                counters["cart_adds"] += 1
            elif kind == "purchase":
                counters["purchases"] += 1
                if event[REVENUE] is not None:
                    counters["revenue"].append(event[REVENUE])
            session_of[event[ID]] = session

        self._walk(state["events"], state["carry"], visit)
        for page_view_id, (page_day, visit_first, piece) in page_views.items():
            buckets = pings.get((page_view_id, visit_first, piece))
            if buckets:
                day(page_day)["engaged_seconds"] += (
                    self.options.heartbeat_seconds * (len(buckets) - 1) + self.options.min_visit_seconds
                )
        for counters in days.values():
            counters["revenue"] = math.fsum(counters["revenue"])
        state["days"] = days
        state["session"] = self._current_session(sessions, user_key)
        state["cart"] = self._open_cart(state["cart_events"])
        last = state["events"][-1] if state["events"] else None
        state["last_activity"] = (
            None if last is None else {"at": last[T], "event_type": last[TYPE], "event_id": last[ID]}
        )
        return []

    def _current_session(self, sessions: dict[tuple[str, int], dict[str, Any]], user_key: str) -> dict[str, Any] | None:
        if not sessions:
            return None
        (visit_first, piece), session = max(sessions.items(), key=lambda item: (item[1]["started_at"], item[0][0]))
        visit_key = md5_hex(f"{user_key}|{visit_first}")
        last = parse_iso(session["last_event_at"])
        return {
            "session_key": visit_key if piece == 0 else md5_hex(f"{visit_key}|{piece}"),
            "started_at": session["started_at"],
            "last_event_at": session["last_event_at"],
            "expires_at": iso(last + timedelta(seconds=self.timeout_seconds + 1)),
            "events": session["events"],
            "page_views": session["page_views"],
            "client_session_id": session["client_session_id"],
        }

    @staticmethod
    def _open_cart(cart_events: list[list[Any]]) -> list[dict[str, Any]]:
        items: dict[str | None, dict[str, Any]] = {}
        for row in cart_events:
            quantity = row[C_QUANTITY] if row[C_QUANTITY] is not None else 1
            item = items.setdefault(
                row[C_PRODUCT], {"product_id": row[C_PRODUCT], "quantity": 0, "price": None, "added_at": None}
            )
            if row[C_TYPE] == "add_to_cart":
                item["quantity"] += quantity
                item["price"] = row[C_PRICE] if row[C_PRICE] is not None else item["price"]
                item["added_at"] = row[C_T]
            else:
                item["quantity"] = max(0, item["quantity"] - quantity)
        return [item for item in items.values() if item["quantity"] > 0]

    # ---------------------------------------------------------------- timers and stitching

    def advance(self, state: dict[str, Any], user_key: str, now: datetime) -> list[Output]:
        return []

    def next_due(self, state: dict[str, Any]) -> datetime | None:
        return None

    def restitch(self, source: dict[str, Any], target: dict[str, Any], anonymous_id: str, target_key: str) -> list[str]:
        moved = [r for r in source["events"] if r[ANON] == anonymous_id]
        moved_cart = [r for r in source["cart_events"] if r[C_ANON] == anonymous_id]
        if not moved and not moved_cart:
            return []
        source["events"] = [r for r in source["events"] if r[ANON] != anonymous_id]
        source["cart_events"] = [r for r in source["cart_events"] if r[C_ANON] != anonymous_id]
        first_kept = target.get("first_kept_day")
        for row in moved:
            if first_kept is not None and row[T][:10] < first_kept:
                target["late_events"] += 1
                continue
            bisect.insort(target["events"], row, key=lambda r: (r[T], r[ID]))
        for row in moved_cart:
            bisect.insort(target["cart_events"], row, key=lambda r: (r[C_T], r[C_ID]))
        purchases = [r[T] for r in moved if r[TYPE] == "purchase"]
        if purchases and (target["last_purchase_at"] is None or max(purchases) > target["last_purchase_at"]):
            target["last_purchase_at"] = max(purchases)
        self._forget(target)
        return [r[ID] for r in moved] + [r[C_ID] for r in moved_cart if r[C_ID] not in {m[ID] for m in moved}]


# ------------------------------------------------------------------------------------------ the processor


@dataclass
class StreamStats:
    """What the processor did (for /metrics and the CLI): counts since start, the latest event time processed."""

    batches: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    firings: int = 0
    restitched: int = 0
    last_event_time: str | None = None
    last_commit_at: str | None = None
    caught_up: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class StepResult:
    events: int
    duplicates: int
    at_end: bool
    committed: bool


def user_key_for(event: LiveEvent, identity: dict[str, tuple[str, str]]) -> str:
    """stg_events' user_key: the user_id; else the user the anonymous_id is stitched to; else the anonymous_id."""
    if event["user_id"] is not None:
        return event["user_id"]
    link = identity.get(event["anonymous_id"])
    return link[0] if link else event["anonymous_id"]


class StreamProcessor:
    """Reads ``source``, keeps the state models' state in ``store``. :meth:`step` processes one micro-batch
    (and the timers due); :meth:`run` loops until ``stop`` is set."""

    def __init__(
        self,
        source: EventSource,
        store: LiveStateStore,
        options: StreamOptions,
        *,
        models: Sequence[StateModel] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.source = source
        self.store = store
        self.options = options
        self.models: list[StateModel] = list(models) if models is not None else [ActivityModel(options)]
        self.clock = clock
        self.stats = StreamStats()
        self.position = store.position(source.name)
        self.identity = store.identity_map()
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._timers: list[tuple[str, str]] = []  # heap of (due, user_key)
        self._due: dict[str, str] = {}
        self._watermark: str | None = None  # the latest event time read
        for key, state in store.all_users():
            self._schedule(key, state)

    # ---------------------------------------------------------------- users

    def _states(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        missing = [k for k in keys if k not in self._cache]
        loaded = self.store.users(missing) if missing else {}
        out = {}
        for key in keys:
            if key in self._cache:
                self._cache.move_to_end(key)
                out[key] = self._cache[key]
                continue
            state = loaded.get(key) or {}
            for model in self.models:
                state.setdefault(model.name, model.initial())
            out[key] = self._cache[key] = state
        while len(self._cache) > self.options.cached_users:
            self._cache.popitem(last=False)
        return out

    def _schedule(self, key: str, state: dict[str, Any]) -> None:
        dues = [d for m in self.models if m.name in state and (d := m.next_due(state[m.name])) is not None]
        if dues:
            due = iso(min(dues))
            if self._due.get(key) != due:
                self._due[key] = due
                heapq.heappush(self._timers, (due, key))
        else:
            self._due.pop(key, None)

    # ---------------------------------------------------------------- one step

    def step(self) -> StepResult:
        """Read one micro-batch after the committed position, apply it, run the timers due, commit."""
        batch: SourceBatch = self.source.read(self.position, self.options.batch_size)
        for line in batch.rejected:
            log.error("stream: %s: not an event, skipped: %s", line.where, line.reason)
        now_text = iso(self.clock())
        commit = CommitBatch(source=self.source.name, position=batch.position, committed_at=now_text)
        fresh, duplicates = self._new_events(batch.events)
        touched: dict[str, dict[str, Any]] = {}
        outputs: list[Output] = []
        if fresh:
            keys = {user_key_for(e, self.identity) for e in fresh} | {e["user_id"] for e in fresh if e["user_id"]}
            touched.update(self._states(keys))
        for event in fresh:
            self._link(event, commit, touched)
            key = user_key_for(event, self.identity)
            if key not in touched:
                touched.update(self._states({key}))
            state = touched[key]
            for model in self.models:
                outputs += model.apply(state[model.name], event, key)
            t = iso(event["event_time"])
            commit.processed.append((event["event_id"], key, t))
            if self._watermark is None or t > self._watermark:
                self._watermark = t
        for key, state in touched.items():
            if key in commit.removed_users:
                continue
            for model in self.models:
                outputs += model.settle(state[model.name], key)
        timer_now = self.clock() if batch.at_end else min(self.clock(), parse_iso(self._watermark or now_text))
        outputs += self._advance(timer_now, touched)
        for key, state in touched.items():
            if key in commit.removed_users:
                continue
            commit.users[key] = (state, self._last_event_time(state))
            self._schedule(key, state)
        for output in outputs:
            (commit.firings if isinstance(output, Firing) else commit.scores).append(output)
        changed = bool(commit.users or commit.removed_users or commit.processed or commit.identity or outputs)
        if changed or batch.position != self.position:
            try:
                self.store.commit(commit)
            except BaseException:
                self._forget_uncommitted()
                raise
            self.position = batch.position
            self.stats.batches += 1
            self.stats.last_commit_at = now_text
        self.stats.events += len(fresh)
        self.stats.duplicates += duplicates
        self.stats.rejected += len(batch.rejected)
        self.stats.firings += len(commit.firings)
        self.stats.caught_up = batch.at_end
        if self._watermark:
            self.stats.last_event_time = self._watermark
        return StepResult(len(fresh), duplicates, batch.at_end, changed)

    def _forget_uncommitted(self) -> None:
        """After a failed commit: drop what memory holds beyond the store (states, links, timers), so that a
        next step starts from the last commit."""
        self._cache.clear()
        self.identity = self.store.identity_map()
        self._timers, self._due = [], {}
        for key, state in self.store.all_users():
            self._schedule(key, state)

    def _new_events(self, events: list[LiveEvent]) -> tuple[list[LiveEvent], int]:
        """The events whose id is neither in the store nor earlier in the batch (the first copy counts)."""
        if not events:
            return [], 0
        seen = self.store.processed(e["event_id"] for e in events)
        fresh = []
        for event in events:
            if event["event_id"] in seen:
                continue
            seen.add(event["event_id"])
            fresh.append(event)
        return fresh, len(events) - len(fresh)

    def _link(self, event: LiveEvent, commit: CommitBatch, touched: dict[str, dict[str, Any]]) -> None:
        """An event with both ids links them; the latest link (event_time, then user_id) wins. A link that moves
        the anonymous id moves what the models keep of its anonymous-only events to the new user_key."""
        anonymous_id, user_id = event["anonymous_id"], event["user_id"]
        if anonymous_id is None or user_id is None:
            return
        linked_at = iso(event["event_time"])
        current = self.identity.get(anonymous_id)
        if current is not None and (current[1], current[0]) >= (linked_at, user_id):
            return
        previous_key = current[0] if current else anonymous_id
        self.identity[anonymous_id] = commit.identity[anonymous_id] = (user_id, linked_at)
        if previous_key == user_id:
            return
        states = self._states({previous_key, user_id} - set(touched))
        touched.update(states)
        source, target = touched[previous_key], touched[user_id]
        moved: list[str] = []
        for model in self.models:
            moved += model.restitch(source[model.name], target[model.name], anonymous_id, user_id)
        if moved:
            self.stats.restitched += len(moved)
            commit.rekeyed.setdefault(user_id, []).extend(moved)
            moved_ids = set(moved)  # this batch's own rows are not in the store yet: rekeyed here
            commit.processed[:] = [(i, user_id if i in moved_ids else k, t) for i, k, t in commit.processed]
        if previous_key == anonymous_id and self._empty(source):
            commit.removed_users.add(previous_key)
            self._cache.pop(previous_key, None)
            touched.pop(previous_key, None)
            self._due.pop(previous_key, None)

    def _empty(self, state: dict[str, Any]) -> bool:
        activity = state.get(ActivityModel.name)
        return activity is None or (
            not activity["events"] and not activity["cart_events"] and not activity["late_events"]
        )

    @staticmethod
    def _last_event_time(state: dict[str, Any]) -> str | None:
        activity = state.get(ActivityModel.name) or {}
        events = activity.get("events") or []
        return events[-1][T] if events else None

    def _advance(self, now: datetime, touched: dict[str, dict[str, Any]]) -> list[Output]:
        """Run the timers due at ``now``: each model's ``advance`` for the users whose earliest due is reached."""
        outputs: list[Output] = []
        now_text = iso(now)
        while self._timers and self._timers[0][0] <= now_text:
            due, key = heapq.heappop(self._timers)
            if self._due.get(key) != due:
                continue  # rescheduled or gone
            del self._due[key]
            if key not in touched:
                touched.update(self._states({key}))
            state = touched[key]
            for model in self.models:
                outputs += model.advance(state[model.name], key, now)
        return outputs

    # ---------------------------------------------------------------- the loop

    def run(self, stop: threading.Event, *, until_caught_up: bool = False) -> StreamStats:
        """Process micro-batches until ``stop`` is set (or, ``until_caught_up``, until the source has nothing
        more); sleeps ``max_wait_seconds`` whenever it is at the source's end."""
        while not stop.is_set():
            result = self.step()
            if result.at_end:
                if until_caught_up:
                    break
                stop.wait(self.options.max_wait_seconds)
        return self.stats
