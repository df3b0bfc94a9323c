"""The stream processor's core (pulse/live): the collector log source, the SQLite WAL store, the processor and
its activity model, on hand-written log segments. The crash test (kill -9 during a replay) and the parity
with the batch models are in tests/integration/test_stream_processor.py."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.live.clock import ManualClock, OffsetFileClock, iso
from pulse.live.processor import ActivityModel, StreamOptions, StreamProcessor
from pulse.live.source import CollectorLogSource, SourceError, landing_stem, live_event, parse_position
from pulse.live.store import TABLES, CommitBatch, Firing, LiveStateReader, LiveStateStore

DAY = "2026-12-07"
OPTIONS = StreamOptions(session_timeout_minutes=30, max_session_hours=24, heartbeat_seconds=10, min_visit_seconds=5)


def line(event_id: str, time: str, event_type: str = "page_view", **fields: Any) -> str:
    """One collector log line (the contract's JSON)."""
    fields.setdefault("anonymous_id", "anon-1")
    return json.dumps({"event_id": event_id, "event_type": event_type, "event_time": time, **fields}) + "\n"


class Log:
    """A collector log on disk, written as pulse/collector/log.py writes it: segments in spool/, rolled into
    landing/events/<day>/collector-<host>-<stem>.jsonl by a rename."""

    def __init__(self, root: Path) -> None:
        self.spool = root / "collector" / "spool"
        self.landing = root / "landing" / "events"
        self.spool.mkdir(parents=True)
        self.landing.mkdir(parents=True)

    def spooled(self, stem: str, text: str) -> Path:
        path = self.spool / f"{stem}.jsonl"
        with open(path, "a") as f:
            f.write(text)
        return path

    def roll(self, stem: str) -> Path:
        day = self.landing / stem[:10]
        day.mkdir(exist_ok=True)
        target = day / f"collector-host_a-{stem}.jsonl"
        (self.spool / f"{stem}.jsonl").rename(target)
        return target

    def landed(self, stem: str, text: str) -> Path:
        self.spooled(stem, text)
        return self.roll(stem)

    def source(self) -> CollectorLogSource:
        return CollectorLogSource(self.spool, self.landing, landing_every=0.0)


def ids(batch: Any) -> list[str]:
    return [e["event_id"] for e in batch.events]


# ------------------------------------------------------------------------------------------ the source


def test_segment_names_and_positions() -> None:
    assert landing_stem("collector-host_a-2026-12-07T100000-12-3.jsonl") == "2026-12-07T100000-12-3"
    assert landing_stem("events-2026-12-07.jsonl") is None  # the demo's and importers' files are not the log
    assert parse_position("") == ("", 0)
    assert parse_position("2026-12-07T100000-12-3:456") == ("2026-12-07T100000-12-3", 456)
    with pytest.raises(SourceError, match="not a collector log position: 'nonsense'"):
        parse_position("nonsense")


def test_reads_whole_lines_in_segment_order_and_never_a_torn_line(tmp_path: Path) -> None:
    log = Log(tmp_path)
    # pid 9 sorts before pid 10 (numbers, not text); n=2 after n=1 of the same second and pid
    log.landed(f"{DAY}T100000-10-1", line("c", f"{DAY}T10:00:02Z"))
    log.landed(f"{DAY}T100000-9-1", line("a", f"{DAY}T10:00:00Z"))
    log.landed(f"{DAY}T100000-9-2", line("b", f"{DAY}T10:00:01Z"))
    log.spooled(f"{DAY}T100100-10-2", line("d", f"{DAY}T10:01:00Z") + '{"event_id": "torn", "event_ty')
    source = log.source()
    batch = source.read("", 100)
    assert ids(batch) == ["a", "b", "c", "d"]
    assert batch.at_end
    assert batch.position == f"{DAY}T100100-10-2:{len(line('d', f'{DAY}T10:01:00Z'))}"
    # the writer completes the line: it is read from the committed offset, once
    log.spooled(f"{DAY}T100100-10-2", 'pe": "click", "event_time": "2026-12-07T10:01:01Z", "anonymous_id": "x"}\n')
    again = source.read(batch.position, 100)
    assert ids(again) == ["torn"]


def test_a_segment_rolled_while_read_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = Log(tmp_path)
    stem = f"{DAY}T100000-5-1"
    log.spooled(stem, line("1", f"{DAY}T10:00:00Z") + line("2", f"{DAY}T10:00:01Z"))
    source = log.source()
    first = source.read("", 1)
    assert ids(first) == ["1"] and not first.at_end
    log.spooled(stem, line("3", f"{DAY}T10:00:02Z"))
    log.roll(stem)  # the rename: same bytes, new name
    log.spooled(f"{DAY}T100010-5-2", line("4", f"{DAY}T10:00:10Z"))
    second = source.read(first.position, 100)
    assert ids(second) == ["2", "3", "4"]
    # a fresh source (a restart) from the committed position reads the landed file
    assert ids(log.source().read(first.position, 100)) == ["2", "3", "4"]


def test_waits_at_an_open_segment_even_when_a_later_one_exists(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.spooled(f"{DAY}T100000-5-1", line("1", f"{DAY}T10:00:00Z"))
    log.spooled(f"{DAY}T100005-6-1", line("2", f"{DAY}T10:00:05Z"))  # another writer's, later
    source = log.source()
    batch = source.read("", 100)
    assert ids(batch) == ["1"] and batch.at_end
    log.roll(f"{DAY}T100000-5-1")
    assert ids(source.read(batch.position, 100)) == ["2"]


def test_an_empty_segment_deleted_at_its_roll_is_passed(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.spooled(f"{DAY}T100000-5-1", "")
    source = log.source()
    batch = source.read("", 100)
    assert batch.events == [] and batch.position == f"{DAY}T100000-5-1:0"
    (log.spool / f"{DAY}T100000-5-1.jsonl").unlink()  # what publish_segment does with an empty one
    log.landed(f"{DAY}T100100-5-2", line("1", f"{DAY}T10:01:00Z"))
    assert ids(source.read(batch.position, 100)) == ["1"]


def test_lines_the_collector_cut_back_are_reported_and_reading_goes_on_from_the_new_end(tmp_path: Path) -> None:
    log = Log(tmp_path)
    stem = f"{DAY}T100000-5-1"
    first, unacknowledged = line("1", f"{DAY}T10:00:00Z"), line("2", f"{DAY}T10:00:01Z", page_url="/a/long/path")
    segment = log.spooled(stem, first + unacknowledged)
    source = log.source()
    batch = source.read("", 100)
    assert ids(batch) == ["1", "2"]
    with open(segment, "r+b") as f:  # the collector's cut_back after a failed fsync, then the next write
        f.truncate(len(first))
    log.spooled(stem, line("3", f"{DAY}T10:00:02Z"))
    after = source.read(batch.position, 100)
    assert ids(after) == ["1", "3"]  # "1" again: the processor skips it by its id
    assert [r.where for r in after.rejected] == [f"{segment} at byte {len(first + unacknowledged)}"]
    assert after.position == f"{stem}:{len(first) + len(line('3', f'{DAY}T10:00:02Z'))}"


def test_a_segment_shorter_than_the_committed_offset_is_an_error(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(f"{DAY}T100000-5-1", line("1", f"{DAY}T10:00:00Z"))
    with pytest.raises(SourceError, match="shorter than the 9999 read"):
        log.source().read(f"{DAY}T100000-5-1:9999", 10)
    with pytest.raises(SourceError, match="is gone from"):
        log.source().read(f"{DAY}T100000-5-7:10", 10)


def test_a_line_that_is_not_an_event_is_rejected_naming_file_and_byte(tmp_path: Path) -> None:
    log = Log(tmp_path)
    good = line("1", f"{DAY}T10:00:00Z")
    path = log.landed(f"{DAY}T100000-5-1", good + '{"event_id": "2", "event_type": "click"}\nnot json\n')
    batch = log.source().read("", 100)
    assert ids(batch) == ["1"]
    assert [(r.where, r.reason) for r in batch.rejected] == [
        (f"{path} at byte {len(good)}", "event_time is missing"),
        (f"{path} at byte {len(good) + 41}", "Expecting value: line 1 column 1 (char 0)"),
    ]


def test_live_event_types_values_as_ingestion_does() -> None:
    event = live_event(
        {"event_id": 17, "event_type": "purchase", "event_time": "2026-12-07T11:00:00+01:00", "user_id": "",
         "anonymous_id": "a", "revenue": "12.5", "quantity": "2", "consent_analytics": "TRUE"}
    )  # fmt: skip
    assert event["event_id"] == "17"
    assert event["event_time"] == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert event["user_id"] is None  # "" is null, as in raw.events
    assert (event["revenue"], event["quantity"], event["consent_analytics"]) == (12.5, 2, True)
    assert event["page_url"] is None


# ------------------------------------------------------------------------------------------ the store


def test_the_store_is_wal_with_full_sync_and_readers_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "live" / "state.sqlite"
    with LiveStateStore(path) as store:
        assert store.connection.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert store.connection.execute("pragma synchronous").fetchone()[0] == 2  # FULL
        names = {r[0] for r in store.connection.execute("select name from sqlite_master where type = 'table'")}
        assert set(TABLES) <= names
        firing = Firing("cart_abandonment|u1|t", "cart_abandonment", "u1", "2026-12-07T10:30:00.000000+00:00")
        for position in ("p:1", "p:2"):  # the same firing twice (a replay): one row
            store.commit(CommitBatch("collector", position, iso(datetime.now(UTC)), firings=[firing]))
    with LiveStateReader(path) as reader:
        assert reader.position("collector")["position"] == "p:2"
        feed = reader.firings_after(0)
        assert [(f["seq"], f["firing_key"]) for f in feed] == [(1, "cart_abandonment|u1|t")]
        assert reader.firings_after(1) == []
        assert reader.user("nobody") is None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.connection.execute("delete from stream_position")
    with pytest.raises(FileNotFoundError, match="is `pulse stream` running"):
        LiveStateReader(tmp_path / "elsewhere.sqlite")


def test_a_failed_commit_leaves_nothing_of_its_batch(tmp_path: Path) -> None:
    with LiveStateStore(tmp_path / "state.sqlite") as store:
        store.commit(CommitBatch("collector", "p:1", "t", processed=[("e1", "u1", "t")]))
        with pytest.raises(sqlite3.IntegrityError):  # e2 is new, e1 again breaks the primary key mid-transaction
            store.commit(CommitBatch("collector", "p:2", "t", processed=[("e2", "u1", "t"), ("e1", "u1", "t")]))
        assert store.position("collector") == "p:1"
        assert store.processed(["e1", "e2"]) == {"e1"}


# ------------------------------------------------------------------------------------------ the processor


def run_once(root: Path, *, options: StreamOptions = OPTIONS, clock: Any = None, models: Any = None) -> Path:
    """Process everything the log holds into root/live/state.sqlite; the database's path."""
    path = root / "live" / "state.sqlite"
    with LiveStateStore(path) as store:
        processor = StreamProcessor(
            _source(root),
            store,
            options,
            clock=clock or ManualClock(datetime(2026, 12, 8, tzinfo=UTC)),
            models=models,
        )
        processor.run(threading.Event(), until_caught_up=True)
    return path


def _source(root: Path) -> CollectorLogSource:
    return CollectorLogSource(root / "collector" / "spool", root / "landing" / "events", landing_every=0.0)


def activity(path: Path, user_key: str) -> dict[str, Any]:
    with LiveStateReader(path) as reader:
        user = reader.user(user_key)
    assert user is not None, f"no live state for {user_key}"
    return user["state"]["activity"]


def test_counters_sessions_engaged_time_cart_and_duplicates(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("pv1", f"{DAY}T10:00:00Z", page_view_id="p1", session_id="s1")
        + line("ping1", f"{DAY}T10:00:12Z", "page_ping", page_view_id="p1", session_id="s1")
        + line("ping2", f"{DAY}T10:00:19Z", "page_ping", page_view_id="p1", session_id="s1")  # same 10 s bucket
        + line("ping3", f"{DAY}T10:00:31Z", "page_ping", page_view_id="p1", session_id="s1")
        + line("pv1", f"{DAY}T10:00:00Z", page_view_id="p1")  # a duplicate id: skipped
        + line("view", f"{DAY}T10:01:00Z", "product_view", category="shoes", session_id="s1")
        + line("add1", f"{DAY}T10:02:00Z", "add_to_cart", product_id="x", quantity=2, price=3.0, session_id="s1")
        + line("buy", f"{DAY}T10:03:00Z", "purchase", revenue=6.0, session_id="s1")
        + line("add2", f"{DAY}T10:04:00Z", "add_to_cart", product_id="y", price=9.0, session_id="s1")
        + line("s2", f"{DAY}T10:05:00Z", session_id="s2")  # a new client session id: a new session
        + line("late", f"{DAY}T11:00:00Z", session_id="s2"),  # 55 minutes later: a new session (timeout 30)
    )
    state = activity(run_once(tmp_path), "anon-1")
    today = state["days"][DAY]
    assert {k: today[k] for k in ("events", "sessions", "page_views", "product_views", "cart_adds", "purchases")} == {
        "events": 10, "sessions": 3, "page_views": 3, "product_views": 1, "cart_adds": 2, "purchases": 1,
    }  # fmt: skip
    assert today["product_views_by_category"] == {"shoes": 1}
    assert today["revenue"] == 6.0
    assert today["engaged_seconds"] == 10 * (2 - 1) + 5  # heartbeat buckets 1, 1, 3: 2 distinct
    added_at = f"{DAY}T10:04:00.000000+00:00"
    assert state["cart"] == [{"product_id": "y", "quantity": 1, "price": 9.0, "added_at": added_at}]
    assert state["session"]["started_at"] == f"{DAY}T11:00:00.000000+00:00"
    assert state["session"]["expires_at"] == f"{DAY}T11:30:01.000000+00:00"
    with LiveStateReader(tmp_path / "live" / "state.sqlite") as reader:
        assert len(reader.table("processed_events")) == 10


def test_session_key_is_the_batch_one() -> None:
    import hashlib

    model = ActivityModel(OPTIONS)
    state = model.initial()
    event = live_event(json.loads(line("e1", f"{DAY}T10:00:00Z")))
    model.apply(state, event, "anon-1")
    model.settle(state, "anon-1")
    assert state["session"]["session_key"] == hashlib.md5(b"anon-1|e1").hexdigest()  # int_visits' visit_key


def test_out_of_order_and_late_events_count_by_event_time(tmp_path: Path) -> None:
    log = Log(tmp_path)
    yesterday, two_days_ago = "2026-12-06", "2026-12-05"
    log.landed(
        f"{DAY}T100000-5-1",
        line("today", f"{DAY}T10:00:00Z")
        + line("yesterday", f"{yesterday}T23:59:59Z")  # arrives after today's: counted yesterday
        + line("earlier-today", f"{DAY}T09:59:00Z")  # before the first one: same session (1 minute apart)
        + line("too-late", f"{two_days_ago}T12:00:00Z", "purchase", revenue=5.0),  # beyond live_late_days = 1
    )
    state = activity(run_once(tmp_path), "anon-1")
    assert set(state["days"]) == {DAY, yesterday}
    assert (state["days"][DAY]["events"], state["days"][DAY]["sessions"]) == (2, 1)
    assert state["days"][DAY]["first_event_at"] == f"{DAY}T09:59:00.000000+00:00"
    assert (state["days"][yesterday]["events"], state["days"][yesterday]["sessions"]) == (1, 1)
    assert state["late_events"] == 1 and state["last_purchase_at"] is None
    # the same events in event-time order give the same counters
    other = tmp_path / "sorted"
    Log(other).landed(
        f"{DAY}T100000-5-1",
        line("yesterday", f"{yesterday}T23:59:59Z") + line("earlier-today", f"{DAY}T09:59:00Z")
        + line("today", f"{DAY}T10:00:00Z"),
    )  # fmt: skip
    assert activity(run_once(other), "anon-1")["days"] == state["days"]


def test_a_session_that_began_before_the_kept_days_is_not_counted_again(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("a", "2026-12-05T23:50:00Z") + line("b", "2026-12-06T00:10:00Z") + line("c", f"{DAY}T00:00:00Z"),
    )
    state = activity(run_once(tmp_path), "anon-1")  # kept: the 6th and the 7th; "b" continues a's session
    assert state["days"]["2026-12-06"]["sessions"] == 0
    assert state["days"][DAY]["sessions"] == 1
    assert state["carry"]["visit_first_event_id"] == "a"


@pytest.mark.parametrize("batch_size", [1, 5000])  # the moved events committed earlier, or in the same batch
def test_identity_stitching_moves_anonymous_events_to_the_user_as_the_batch_does(
    tmp_path: Path, batch_size: int
) -> None:
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("browse", f"{DAY}T10:00:00Z", anonymous_id="cookie")
        + line("add", f"{DAY}T10:01:00Z", "add_to_cart", anonymous_id="cookie", product_id="x")
        + line("login", f"{DAY}T10:02:00Z", "identify", anonymous_id="cookie", user_id="alice")
        + line("after", f"{DAY}T10:03:00Z", anonymous_id="cookie")  # anonymous again: alice's
        # a shared device: bob logs in later on the same cookie; its anonymous events are bob's now, alice's
        # own (logged-in) event stays hers
        + line("bob", f"{DAY}T12:00:00Z", "identify", anonymous_id="cookie", user_id="bob"),
    )
    path = run_once(tmp_path, options=StreamOptions(**{**OPTIONS.__dict__, "batch_size": batch_size}))
    with LiveStateReader(path) as reader:
        assert reader.user("cookie") is None  # no anonymous profile left: every event has a user
        assert reader.user_key_of("cookie") == "bob"
        keys = dict((r[0], r[1]) for r in reader.table("processed_events"))
    assert keys == {"browse": "bob", "add": "bob", "login": "alice", "after": "bob", "bob": "bob"}
    assert activity(path, "alice")["days"][DAY]["events"] == 1
    bob = activity(path, "bob")
    assert bob["days"][DAY]["events"] == 4
    assert [item["product_id"] for item in bob["cart"]] == ["x"]


def test_an_earlier_link_arriving_later_does_not_win(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("bob", f"{DAY}T12:00:00Z", "identify", anonymous_id="cookie", user_id="bob")
        + line("alice", f"{DAY}T10:00:00Z", "identify", anonymous_id="cookie", user_id="alice")
        + line("anon", f"{DAY}T12:01:00Z", anonymous_id="cookie"),
    )
    with LiveStateReader(run_once(tmp_path)) as reader:
        assert reader.table("identity_map") == [("cookie", "bob", f"{DAY}T12:00:00.000000+00:00")]
        assert dict((r[0], r[1]) for r in reader.table("processed_events"))["anon"] == "bob"


class CartTimer:
    """A fake live trigger (the real ones are pulse/live/triggers.py): fires 30 minutes after the last add."""

    name = "fake_trigger"

    def initial(self) -> dict[str, Any]:
        return {"due": None}

    def apply(self, state: dict[str, Any], event: Any, user_key: str) -> list[Any]:
        if event["event_type"] == "add_to_cart":
            state["due"] = iso(event["event_time"] + timedelta(minutes=30))
        return []

    def settle(self, state: dict[str, Any], user_key: str) -> list[Any]:
        return []

    def advance(self, state: dict[str, Any], user_key: str, now: datetime) -> list[Any]:
        fired_at, state["due"] = state["due"], None
        return [Firing(f"cart|{user_key}|{fired_at}", "cart", user_key, fired_at, {"now": iso(now)})]

    def next_due(self, state: dict[str, Any]) -> datetime | None:
        return datetime.fromisoformat(state["due"]) if state["due"] else None

    def restitch(self, source: dict[str, Any], target: dict[str, Any], anonymous_id: str, target_key: str) -> list:
        return []


def test_timers_run_at_the_clock_when_caught_up_and_survive_a_restart(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(f"{DAY}T100000-5-1", line("add", f"{DAY}T10:00:00Z", "add_to_cart", product_id="x"))
    clock = ManualClock(datetime(2026, 12, 7, 10, 5, tzinfo=UTC))
    models = [ActivityModel(OPTIONS), CartTimer()]
    path = run_once(tmp_path, clock=clock, models=models)
    with LiveStateReader(path) as reader:
        assert reader.firings_after(0) == []
    clock.advance(minutes=30)  # a new process (a restart) rebuilds its timers from the stored states
    run_once(tmp_path, clock=clock, models=models)
    with LiveStateReader(path) as reader:
        [firing] = reader.firings_after(0)
    assert (firing["trigger_name"], firing["fired_at"]) == ("cart", f"{DAY}T10:30:00.000000+00:00")
    assert firing["evidence"] == {"now": "2026-12-07T10:35:00.000000+00:00"}


def test_timers_follow_event_time_while_reading_a_backlog(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("add", f"{DAY}T10:00:00Z", "add_to_cart", product_id="x")
        + line("later", f"{DAY}T10:20:00Z")
        + line("much-later", f"{DAY}T11:00:00Z", anonymous_id="someone-else"),
    )
    options = StreamOptions(**{**OPTIONS.__dict__, "batch_size": 1})  # one event per batch: a backlog
    path = run_once(tmp_path, options=options, models=[ActivityModel(options), CartTimer()])
    with LiveStateReader(path) as reader:
        [firing] = reader.firings_after(0)
    # not at the wall clock's (2026-12-08) after the first batch: at the event time that passed its due
    assert firing["evidence"] == {"now": f"{DAY}T11:00:00.000000+00:00"}


def test_offset_file_clock(tmp_path: Path) -> None:
    base = ManualClock(datetime(2026, 12, 7, 10, tzinfo=UTC))
    clock = OffsetFileClock(tmp_path / "offset", base)
    assert clock() == datetime(2026, 12, 7, 10, tzinfo=UTC)
    (tmp_path / "offset").write_text("1800\n")
    assert clock() == datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    (tmp_path / "offset").write_text("soon")
    with pytest.raises(ValueError, match="offset: expected a number of seconds"):
        clock()


def test_a_landed_segment_ending_without_a_newline_is_reported_once_and_passed(tmp_path: Path) -> None:
    log = Log(tmp_path)
    good, torn = line("1", f"{DAY}T10:00:00Z"), '{"event_id": "cut'
    log.landed(f"{DAY}T100000-5-1", good + torn)
    source = log.source()
    batch = source.read("", 100)
    assert ids(batch) == ["1"] and [r.reason for r in batch.rejected] == ["a last line without its newline"]
    assert batch.position == f"{DAY}T100000-5-1:{len(good) + len(torn)}"
    again = source.read(batch.position, 100)
    assert again.events == [] and again.rejected == []


def test_after_a_failed_commit_the_next_step_starts_from_the_last_commit(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.landed(f"{DAY}T100000-5-1", line("1", f"{DAY}T10:00:00Z") + line("2", f"{DAY}T10:00:01Z"))
    options = StreamOptions(**{**OPTIONS.__dict__, "batch_size": 1})
    with LiveStateStore(tmp_path / "state.sqlite") as store:
        processor = StreamProcessor(
            _source(tmp_path), store, options, clock=ManualClock(datetime(2026, 12, 8, tzinfo=UTC))
        )
        processor.step()
        commit = store.commit
        store.commit = lambda batch: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
        with pytest.raises(OSError, match="disk full"):
            processor.step()
        store.commit = commit  # type: ignore[method-assign]
        processor.run(threading.Event(), until_caught_up=True)
    state = activity(tmp_path / "state.sqlite", "anon-1")
    assert state["days"][DAY]["events"] == 2  # event 2 once: the failed step's state was not kept in memory


# ------------------------------------------------------------------------------------------ live triggers wired in


def test_the_live_triggers_fire_through_the_processor_at_its_clock(tmp_path: Path) -> None:
    """The trigger model (pulse/live/triggers.py) as the stream runs it: an add without a purchase fires
    cart_abandonment when the processor's clock passes +30 minutes (the dbt var), with dbt's firing_key; a user
    who buys in time does not fire; an event arriving out of order is counted late, not applied."""
    from pulse.core.settings import load_settings
    from pulse.live.triggers import TriggerModel, TriggerRules, firing_key

    rules = TriggerRules.from_settings(load_settings({"PULSE_HOME": str(tmp_path)}))
    log = Log(tmp_path)
    log.landed(
        f"{DAY}T100000-5-1",
        line("a1", f"{DAY}T10:00:00Z", "add_to_cart", anonymous_id="leaver", product_id="x")
        + line("b1", f"{DAY}T10:00:00Z", "add_to_cart", anonymous_id="buyer", product_id="y")
        + line("b2", f"{DAY}T10:10:00Z", "purchase", anonymous_id="buyer", revenue=12.5)
        + line("a0", f"{DAY}T09:59:00Z", "page_view", anonymous_id="leaver"),  # before a1: arrives late
    )
    clock = ManualClock(datetime(2026, 12, 7, 10, 15, tzinfo=UTC))
    models = [ActivityModel(OPTIONS), TriggerModel(rules)]
    path = run_once(tmp_path, clock=clock, models=models)
    with LiveStateReader(path) as reader:
        assert reader.firings_after(0) == []  # 10:15: nothing due yet
        assert reader.user("leaver")["state"]["triggers"]["late_events"] == 1
    clock.advance(minutes=30)  # 10:45, a restart: the timers come back from the stored states
    run_once(tmp_path, clock=clock, models=models)
    with LiveStateReader(path) as reader:
        firings = reader.firings_after(0)
    assert [(f["trigger_name"], f["user_key"], f["fired_at"]) for f in firings] == [
        ("cart_abandonment", "leaver", f"{DAY}T10:30:00.000000+00:00")
    ]
    [firing] = firings
    assert firing["firing_key"] == firing_key("cart_abandonment", "leaver", firing["evidence"]["episode_key"])
