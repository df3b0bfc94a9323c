"""int_visits against a plain Python sessionization, on events made to hit its edges: int_visits finds visits
from one row per (user, 30-minute bucket of time) instead of sorting every event (docs/architecture.md), so
the events here pile up where that could go wrong: several events at one instant (the smallest id opens the
visit), gaps of exactly the timeout, of the timeout plus half a second and of sub-second fractions across
bucket boundaries, client session ids that change without a pause, disappear and come back, and late events
delivered a day after they happened. Built twice, as one full run and day by day (incremental), and both
must equal the reference row for row."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import ingest_days, run_dbt

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = 30 * 60  # dbt_project.yml: session_timeout_minutes
DAYS = [date(2026, 9, 1), date(2026, 9, 2), date(2026, 9, 3)]
# seconds to the user's next event, and how often: ties, sub-second steps, the timeout and its neighbours
GAPS = [0, 0, 0.4, 5, 59.9, 600, 1799.6, 1800, 1800.5, 1801, 3600, 6 * 3600]
GAP_WEIGHTS = [3, 3, 3, 20, 10, 8, 3, 3, 3, 3, 3, 2]


def _events(seed: int = 5, users: int = 24, per_user: int = 70) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for u in range(users):
        at = datetime(2026, 9, 1, 6, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 4 * 3600))
        session, sessions = "s0", 0
        for _ in range(per_user):
            roll = rng.random()
            if roll < 0.08:  # a new client session id (often without any pause)
                sessions += 1
                session = f"s{sessions}"
            elif roll < 0.14:
                session = None  # an event without one ...
            elif roll < 0.18:
                session = f"s{max(sessions - 1, 0)}"  # ... or an earlier id coming back
            event = {
                "event_id": hashlib.md5(f"{seed}-{u}-{len(events)}".encode()).hexdigest()[:12],
                "event_type": "page_view",
                "event_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "user_id": f"u{u:02d}",
            }
            if session is not None:
                event["session_id"] = session
            events.append(event)
            at += timedelta(seconds=rng.choices(GAPS, GAP_WEIGHTS)[0])
            if at.date() > DAYS[-1]:
                break
    return events


def _land(events: list[dict], landing: Path, seed: int = 6) -> None:
    """One file per day of event_time; about 5 % arrive a day late (in the next day's file)."""
    rng = random.Random(seed)
    by_day: dict[date, list[dict]] = defaultdict(list)
    for event in events:
        day = date.fromisoformat(event["event_time"][:10])
        if day < DAYS[-1] and rng.random() < 0.05:
            day += timedelta(days=1)
        by_day[day].append(event)
    for day, rows in by_day.items():
        folder = landing / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "events.jsonl.gz").write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))


def _reference_visits(events: list[dict]) -> set[tuple]:
    """The rule in plain Python: per user, events in (time, id) order; a visit starts at the first event, after a
    gap of more than the timeout (in whole seconds, as dbt.datediff counts them), or where two consecutive
    events carry different client session ids."""
    by_user: dict[str, list[tuple[datetime, str, str | None]]] = defaultdict(list)
    for e in events:
        at = datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")).replace(tzinfo=None)
        by_user[e["user_id"]].append((at, e["event_id"], e.get("session_id")))
    epoch = datetime(1970, 1, 1)

    def seconds(at: datetime) -> int:
        return (at - epoch) // timedelta(microseconds=1) // 1_000_000

    rows = set()
    for user, user_events in by_user.items():
        user_events.sort(key=lambda e: (e[0], e[1]))
        visits: list[list[tuple[datetime, str, str | None]]] = []
        previous = None
        for event in user_events:
            starts = (
                previous is None
                or seconds(event[0]) - seconds(previous[0]) > TIMEOUT_SECONDS
                or (event[2] is not None and previous[2] is not None and event[2] != previous[2])
            )
            if starts:
                visits.append([])
            visits[-1].append(event)
            previous = event
        for index, visit in enumerate(visits, start=1):
            following = visits[index] if index < len(visits) else None
            first = visit[0]
            rows.add(
                (
                    hashlib.md5(f"{user}|{first[1]}".encode()).hexdigest(),
                    user,
                    index,
                    first[1],
                    first[0],
                    first[2],
                    following[0][1] if following else None,
                    following[0][0] if following else None,
                    visit[-1][0],
                )
            )
    return rows


def _visits(warehouse: Path) -> set[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return set(
            con.execute(
                """select visit_key, user_key, visit_index, first_event_id, start_time, client_session_id,
                next_first_event_id, next_start_time, end_time from int_visits"""
            ).fetchall()
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("visits")
    events = _events()
    landing = root / "landing" / "events"
    _land(events, landing)

    full_home, full_wh = root / "full", root / "full" / "warehouse.duckdb"
    full_home.mkdir()
    ingest_days(full_wh, landing, DAYS)
    run_dbt(full_home, full_wh, "run", "--select", "+tag:batch")

    inc_home, inc_wh = root / "incremental", root / "incremental" / "warehouse.duckdb"
    inc_home.mkdir()
    batches_full = []
    for day in DAYS:
        ingest_days(inc_wh, landing, [day])
        run_dbt(inc_home, inc_wh, "run", "--select", "+tag:batch")
        con = duckdb.connect(str(inc_wh), read_only=True)
        batches_full.append(con.execute("select is_full from int_batch").fetchall()[0][0])
        con.close()
    return {"events": events, "full": full_wh, "incremental": inc_wh, "batches_full": batches_full}


def test_the_events_reach_the_edges(built) -> None:
    """The data is what the test claims: ties, timeout-long gaps, session ids changing inside a bucket."""
    events = built["events"]
    times = [e["event_time"] for e in events]
    assert len(times) - len(set(times)) >= 20  # events sharing an instant
    con = duckdb.connect(str(built["full"]), read_only=True)
    try:
        exact, mixed = con.execute(
            f"""with ordered as (
                select user_key, event_time, client_session_id,
                    lag(event_time) over (partition by user_key order by event_time, event_id) as previous_time
                from stg_events
            )
            select
                count_if(date_diff('second', previous_time, event_time) = {TIMEOUT_SECONDS}),
                (select count(*) from (
                    select user_key, epoch(event_time) // {TIMEOUT_SECONDS}
                    from stg_events group by all
                    having count(distinct client_session_id) > 1
                        or (count(client_session_id) > 0 and count(client_session_id) < count(*))
                ))
            from ordered"""
        ).fetchall()[0]
    finally:
        con.close()
    assert exact >= 5  # gaps of exactly the timeout (the visit goes on)
    assert mixed >= 20  # buckets whose events do not share one client session id


def test_a_full_build_equals_the_reference(built) -> None:
    reference = _reference_visits(built["events"])
    got = _visits(built["full"])
    assert len(reference) > 100
    assert got == reference, (sorted(got - reference)[:5], sorted(reference - got)[:5])


def test_day_by_day_builds_equal_the_reference(built) -> None:
    assert built["batches_full"] == [True, False, False]  # the second and third days were incremental batches
    reference = _reference_visits(built["events"])
    got = _visits(built["incremental"])
    assert got == reference, (sorted(got - reference)[:5], sorted(reference - got)[:5])
