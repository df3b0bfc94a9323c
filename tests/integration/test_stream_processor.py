"""The stream processor (`pulse stream`, pulse/live) on the demo shop's events written as the collector's durable
log writes them (segments rolled into the landing zone, the last ones still in the spool, one with a torn
line):

- kill -9: the `pulse stream` process is killed with SIGKILL at random moments, several times, and restarted
  (meanwhile a spool segment rolls into the landing zone); the final store equals one clean uninterrupted
  pass, every table, row for row: nothing lost, nothing counted twice;
- parity with the batch: the live counters (events, sessions, page views, product views and categories, cart
  adds, purchases, revenue, engaged seconds per user and UTC day) equal dbt's fct_user_daily row for row, on
  the demo and on a second shape (a purchase-only shop in another year), with identity stitching, injected
  duplicates and late arrivals.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
from demo_warehouse import ingest_days, ingest_demo, run_dbt

from pulse.collector.events import contract_violation
from pulse.core.settings import load_settings
from pulse.live.processor import StreamOptions, StreamProcessor
from pulse.live.source import CollectorLogSource
from pulse.live.store import TABLES, LiveStateReader, LiveStateStore

REPO = Path(__file__).resolve().parents[2]
PULSE = REPO / ".venv" / "bin" / "pulse"
# columns written from the wall clock (when a batch was committed): the only ones two passes may differ in
WALL_CLOCK_COLUMNS = {"stream_position": (2,), "live_users": (3,), "live_trigger_firings": (0, 5), "live_scores": (5,)}


def collector_log(lines_by_day: dict[date, list[str]], home: Path, *, per_segment: int, spooled: int) -> int:
    """Write ``lines_by_day`` (contract JSON lines in arrival order) as a collector's durable log under ``home``:
    the lines the collector would accept, ``per_segment`` to a segment, the last ``spooled`` segments left in
    ``collector/spool`` (the very last with a torn line: a write in flight), the others rolled into
    ``landing/events/<day>/collector-host_a-<stem>.jsonl``. Returns the number of events written."""
    spool, landing = home / "collector" / "spool", home / "landing" / "events"
    spool.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    segments: list[tuple[str, list[str]]] = []
    for day, lines in sorted(lines_by_day.items()):
        accepted = []
        for text in lines:
            try:
                event = json.loads(text)
            except ValueError:
                continue  # the collector answers 400 to a line that does not parse
            if contract_violation(event, now) is None:
                accepted.append(text.rstrip("\n") + "\n")
        for n, start in enumerate(range(0, len(accepted), per_segment)):
            stamp = (datetime(day.year, day.month, day.day) + timedelta(seconds=n)).strftime("%Y-%m-%dT%H%M%S")
            segments.append((f"{stamp}-4242-{len(segments) + 1}", accepted[start : start + per_segment]))
    for i, (stem, lines) in enumerate(segments):
        if i >= len(segments) - spooled:
            torn = '{"event_id": "in-flight", "event_type": "page_' if i == len(segments) - 1 else ""
            (spool / f"{stem}.jsonl").write_text("".join(lines) + torn)
        else:
            folder = landing / stem[:10]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"collector-host_a-{stem}.jsonl").write_text("".join(lines))
    return sum(len(lines) for _, lines in segments)


def demo_lines(events_landing: Path) -> dict[date, list[str]]:
    """The demo's landing lines per day, in their file's order (the order the collector received them)."""
    out = {}
    for folder in sorted(events_landing.iterdir()):
        with gzip.open(folder / "demo.jsonl.gz", "rt") as f:
            out[date.fromisoformat(folder.name)] = f.readlines()
    return out


def roll(home: Path, stem: str) -> None:
    """What the collector does at a roll: rename the spool segment into its landing day."""
    folder = home / "landing" / "events" / stem[:10]
    folder.mkdir(parents=True, exist_ok=True)
    os.rename(home / "collector" / "spool" / f"{stem}.jsonl", folder / f"collector-host_a-{stem}.jsonl")


def store_rows(path: Path) -> dict[str, list[tuple]]:
    """Every table of the live state, without the wall-clock columns, sorted."""
    with LiveStateReader(path) as reader:
        return {
            table: sorted(
                (tuple(v for i, v in enumerate(row) if i not in WALL_CLOCK_COLUMNS.get(table, ())) for row in rows),
                key=repr,
            )
            for table in TABLES
            for rows in [reader.table(table)]
        }


def stream_env(home: Path, live_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    return {**env, "PULSE_HOME": str(home), "PULSE_LIVE_DIR": str(live_dir), **settings}


def committed_position(live_dir: Path) -> str:
    path = live_dir / "state.sqlite"
    if not path.exists():
        return ""
    try:
        with LiveStateReader(path) as reader:
            row = reader.position("collector")
    except Exception:  # noqa: BLE001 - created but its tables not yet committed
        return ""
    return row["position"] if row else ""


def test_kill_9_at_random_moments_then_restart_equals_one_clean_pass(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    from pulse.demo.generator import generate_demo

    generate_demo(demo / "landing", users=60, days=4, seed=11, start=date(2026, 9, 1), progress=False)
    home = tmp_path / "home"
    events = collector_log(demo_lines(demo / "landing" / "events"), home, per_segment=150, spooled=2)
    assert events > 3000
    spooled = sorted(p.stem for p in (home / "collector" / "spool").glob("*.jsonl"))

    # one clean pass (small batches, as in the killed runs: the batch size must not matter either)
    clean = tmp_path / "clean"
    roll(home, spooled[0])
    done = subprocess.run(
        [str(PULSE), "stream", "--until-caught-up"],
        env=stream_env(home, clean, PULSE_STREAM_BATCH_SIZE="37"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # back as it was: the first spooled segment unrolled, so the killed runs see it roll while they read
    os.rename(
        home / "landing" / "events" / spooled[0][:10] / f"collector-host_a-{spooled[0]}.jsonl",
        home / "collector" / "spool" / f"{spooled[0]}.jsonl",
    )

    killed = tmp_path / "killed"
    end = committed_position(clean)
    rng = random.Random(22)
    positions = []
    rolled = False
    for attempt in range(8):
        if committed_position(killed) == end:
            break
        # small batches: many commits, so a kill lands inside a batch or a commit as often as between them
        process = subprocess.Popen(
            [str(PULSE), "stream"],
            env=stream_env(home, killed, PULSE_STREAM_BATCH_SIZE=str(rng.choice((3, 5, 7)))),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        start_position = committed_position(killed)
        deadline = time.monotonic() + 60
        while committed_position(killed) in (start_position, "") and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            time.sleep(0.01)
        if attempt == 2:
            roll(home, spooled[0])  # the collector rolls the segment the processor may be reading
            rolled = True
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside the replay: a batch half applied, a commit in flight
        process.send_signal(signal.SIGKILL)
        process.wait()
        positions.append(committed_position(killed))
    if not rolled:
        roll(home, spooled[0])
    finished = subprocess.run(
        [str(PULSE), "stream", "--until-caught-up"],
        env=stream_env(home, killed),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    assert committed_position(killed) == end
    interrupted = [p for p in positions if p and p != end]
    assert len(interrupted) >= 3, f"the kills should land inside the replay: positions {positions}, end {end}"
    clean_rows, killed_rows = store_rows(clean / "state.sqlite"), store_rows(killed / "state.sqlite")
    assert len(clean_rows["processed_events"]) > 3000
    for table in TABLES:
        assert killed_rows[table] == clean_rows[table], f"{table} differs after the kills"
    # the torn line in the open segment was never read
    assert "in-flight" not in {row[0] for row in clean_rows["processed_events"]}


# ------------------------------------------------------------------------------------------ parity with batch

# (live counter, fct_user_daily column)
COUNTERS = (
    ("events", "events"),
    ("sessions", "sessions_started"),
    ("page_views", "page_views"),
    ("product_views", "product_views"),
    ("categories", "categories_viewed"),
    ("cart_adds", "cart_adds"),
    ("purchases", "purchases"),
    ("revenue", "revenue"),
    ("engaged_seconds", "engaged_seconds"),
)


def live_daily(path: Path) -> set[tuple]:
    """(user_key, day, counters...) of every user and kept day of the live state."""
    rows = set()
    with LiveStateReader(path) as reader:
        for user_key, state_text, *_ in reader.table("live_users"):
            for day, c in json.loads(state_text)["activity"]["days"].items():
                c = {**c, "categories": len(c["product_views_by_category"]), "revenue": round(c["revenue"], 6)}
                rows.add((user_key, day, *(c[name] for name, _ in COUNTERS)))
    return rows


def batch_daily(warehouse: Path) -> set[tuple]:
    columns = ", ".join(f"round({c}, 6)" if c == "revenue" else c for _, c in COUNTERS)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(f"select user_key, cast(activity_date as varchar), {columns} from fct_user_daily").fetchall()
    finally:
        con.close()
    return {tuple(row) for row in rows}


def replay(home: Path, live_dir: Path, late_days: int) -> Path:
    """Every event of ``home``'s collector log through the processor, in this process; the store's path."""
    settings = load_settings({"PULSE_HOME": str(home)})
    options = StreamOptions(**{**StreamOptions.from_settings(settings).__dict__, "late_days": late_days})
    source = CollectorLogSource(home / "collector" / "spool", home / "landing" / "events")
    with LiveStateStore(live_dir / "state.sqlite") as store:
        StreamProcessor(source, store, options).run(threading.Event(), until_caught_up=True)
    return live_dir / "state.sqlite"


def assert_parity(live: set[tuple], batch: set[tuple]) -> None:
    only_live, only_batch = sorted(live - batch), sorted(batch - live)
    assert not only_live and not only_batch, (
        f"{len(only_live)} live rows not in fct_user_daily, e.g. {only_live[:3]}; "
        f"{len(only_batch)} batch rows not live, e.g. {only_batch[:3]}"
    )


def test_live_counters_equal_fct_user_daily_on_the_demo(tmp_path: Path) -> None:
    batch_home = tmp_path / "batch"
    landing, warehouse = ingest_demo(batch_home, users=60, days=4, seed=7)
    run_dbt(batch_home, warehouse, "run", "--select", "+fct_user_daily")
    live_home = tmp_path / "live"
    lines = demo_lines(landing / "events")
    collector_log(lines, live_home, per_segment=400, spooled=1)
    # every day kept (late_days covers the history): each day's counters, not only today's, can be compared
    live = live_daily(replay(live_home, tmp_path / "state", late_days=10))
    batch = batch_daily(warehouse)
    assert len(batch) > 60
    assert_parity(live, batch)
    with LiveStateReader(tmp_path / "state" / "state.sqlite") as reader:
        stitched = [row for row in reader.table("processed_events")]
    assert len({row[0] for row in stitched}) == len(stitched)


def test_live_counters_equal_fct_user_daily_on_a_purchase_only_shop_in_another_year(tmp_path: Path) -> None:
    """Another shape: an order log (only purchases, a user id on each, no sessions ids, no pages), in 2011,
    with a duplicate delivery and an order that arrives three days late."""
    orders: dict[date, list[str]] = {}
    rng = random.Random(5)
    for n in range(400):
        day = date(2011, 3, 1) + timedelta(days=rng.randrange(6))
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86400))
        event = {
            "event_id": f"order-{n}",
            "event_type": "purchase",
            "event_time": moment.isoformat().replace("+00:00", "Z"),
            "user_id": f"customer-{rng.randrange(40)}",
            "order_id": f"o{n}",
            "revenue": round(rng.uniform(5, 200), 2),
        }
        arrival = day + timedelta(days=3) if n % 97 == 0 else day
        orders.setdefault(arrival, []).append(json.dumps(event) + "\n")
        if n % 50 == 0:
            orders[arrival].append(json.dumps(event) + "\n")  # delivered twice
    batch_home = tmp_path / "batch"
    events = batch_home / "landing" / "events"
    for day, lines in orders.items():
        (events / day.isoformat()).mkdir(parents=True)
        (events / day.isoformat() / "orders.jsonl").write_text("".join(lines))
    warehouse = batch_home / "warehouse.duckdb"
    ingest_days(warehouse, events, sorted(orders))
    run_dbt(batch_home, warehouse, "run", "--select", "+fct_user_daily")
    live_home = tmp_path / "live"
    collector_log(orders, live_home, per_segment=50, spooled=1)
    live = live_daily(replay(live_home, tmp_path / "state", late_days=10))
    assert_parity(live, batch_daily(warehouse))
    assert len(live) > 100


def test_a_running_stream_shows_an_appended_event_within_a_second_and_stops_on_sigterm(tmp_path: Path) -> None:
    home, live_dir = tmp_path / "home", tmp_path / "home" / "live"
    spool = home / "collector" / "spool"
    spool.mkdir(parents=True)
    segment = spool / "2026-12-07T100000-77-1.jsonl"
    segment.write_text("")
    process = subprocess.Popen(
        [str(PULSE), "stream"], env=stream_env(home, live_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while committed_position(live_dir) == "" and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            time.sleep(0.05)  # the empty segment committed at 0: the processor is running
        event = {"event_id": "e1", "event_type": "add_to_cart", "event_time": "2026-12-07T10:00:00Z", "user_id": "u1"}
        with open(segment, "a") as f:
            f.write(json.dumps(event) + "\n")
        written = time.monotonic()
        while time.monotonic() - written < 5:
            with LiveStateReader(live_dir / "state.sqlite") as reader:
                user = reader.user("u1")
            if user is not None:
                break
            time.sleep(0.01)
        visible_after = time.monotonic() - written
        assert user is not None and user["state"]["activity"]["days"]["2026-12-07"]["cart_adds"] == 1
        assert visible_after < 1.0, f"visible {visible_after:.2f} s after the append"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()[-3000:]
    assert "pulse stream: 1 events in" in out.decode()
