"""Events later than the lookback are counted and reported, not dropped, and `reprocess_from` folds them in.

The demo shop (150 users x 8 days) is built from its first 7 landing days, then one landing day at a time with
the default lookback (incremental_lookback_days: 1). Planted in the last landing day: the only visit of a new
visitor, dated three days before that landing day, one of its events delivered twice, and a second copy of an
event of the first day (a tracker retrying days later: already in the sessions). The run that ingests it must
not recompute that visitor (the event is beyond the lookback) and must list exactly the planted visit's events
in qa_late_events, once each and without the repeated delivery, with the figures the Dagster asset shows; the
blocking gate on fct_sessions passes, counting them as kept aside. Ingesting that landing day again (as the
sensor does when the collector adds a file to today's folder) changes none of it. Running again with
reprocess_from (what `pulse reprocess` does) must fold them in: qa_late_events empty and the tables equal to one
full build of all the landing files.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, time, timedelta

import duckdb
import pytest
from demo_warehouse import demo_landing, ingest_days, run_dbt, table_differences

from expectations.runner import run_suite
from orchestration.transform.assets import batch_metadata
from pulse.demo.generator import DEMO_FILE_NAME
from pulse.ingest.batches import batch_report

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 150, 8, 5
FIRST_BUILD_DAYS = 7
LATE_USER = "planted-late-visitor"
LATE_IDS = {"late-view", "late-ping", "late-product"}
COMPARED = ("int_visits", "fct_sessions", "fct_page_views", "fct_user_daily", "dim_users", "user_features")


def _late_visit(at: datetime) -> str:
    rows = [
        ("late-view", "page_view", at, {"page_view_id": "late-pv", "page_url": "/late"}),
        ("late-ping", "page_ping", at + timedelta(seconds=10), {"page_view_id": "late-pv"}),
        ("late-product", "product_view", at + timedelta(seconds=20), {"product_id": "p1", "category": "shoes"}),
    ]
    return "".join(
        json.dumps(
            {
                "event_id": event_id,
                "event_type": event_type,
                "event_time": when.isoformat(timespec="milliseconds") + "Z",
                "anonymous_id": LATE_USER,
                **fields,
            }
        )
        + "\n"
        for event_id, event_type, when, fields in rows
    )


def _state(warehouse) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            "report": batch_report(con),
            "reported_ids": {r[0] for r in con.execute("select event_id from qa_late_events").fetchall()},
            "late_in_raw": con.execute(
                "select count(*) from raw.events where anonymous_id = ?", [LATE_USER]
            ).fetchall(),
            "late_sessions": con.execute(
                "select count(*) from fct_sessions where user_key = ?", [LATE_USER]
            ).fetchall(),
            "sessions_gate": run_suite(con, "fct_sessions", docs=False),
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("late_events")
    events, days = demo_landing(root, USERS, DAYS, SEED)
    late_at = datetime.combine(days[-1] - timedelta(days=3), time(12))
    with gzip.open(events / days[0].isoformat() / DEMO_FILE_NAME, "rt") as first_day:
        redelivered = next(line.rstrip("\n") for line in first_day if line.startswith('{"event_id"'))
    visit = _late_visit(late_at)
    (events / days[-1].isoformat() / "late.jsonl").write_text(visit + visit.splitlines()[0] + "\n" + redelivered + "\n")

    inc_home, inc_wh = root / "incremental", root / "incremental" / "warehouse.duckdb"
    inc_home.mkdir()
    ingest_days(inc_wh, events, days[:FIRST_BUILD_DAYS])
    run_dbt(inc_home, inc_wh, "build")
    for day in days[FIRST_BUILD_DAYS:]:
        ingest_days(inc_wh, events, [day])
        run_dbt(inc_home, inc_wh, "build")  # the data test on qa_late_events warns; the run succeeds
    before = _state(inc_wh)
    ingest_days(inc_wh, events, days[-1:])  # the same landing day again: its rows retracted and re-inserted
    run_dbt(inc_home, inc_wh, "build")
    again = _state(inc_wh)
    run_dbt(inc_home, inc_wh, "run", "--vars", json.dumps({"reprocess_from": str(late_at.date())}))
    after = _state(inc_wh)

    full_home, full_wh = root / "full", root / "full" / "warehouse.duckdb"
    full_home.mkdir()
    ingest_days(full_wh, events, days)
    run_dbt(full_home, full_wh, "run")
    return {
        "before": before,
        "again": again,
        "after": after,
        "late_date": late_at.date(),
        "full": full_wh,
        "incremental": inc_wh,
    }


def test_events_beyond_the_lookback_are_counted_and_reported(builds: dict) -> None:
    before = builds["before"]
    # kept in raw.events, not in the sessions, and listed: exactly the planted events (the demo's own late
    # arrivals land the next day, inside the lookback)
    assert before["late_in_raw"] == [(4,)]  # 3 events, one delivered twice
    assert before["late_sessions"] == [(0,)]
    assert before["reported_ids"] == LATE_IDS
    report = before["report"]
    assert report is not None and not report.is_full
    assert (report.late_events, report.late_events_from) == (3, builds["late_date"])
    assert f"pulse reprocess --from {builds['late_date']}" in report.describe()
    shown = batch_metadata(report)
    late = shown[next(k for k in shown if k.path == ["qa_late_events"])]
    assert late["late_events"].value == 3
    assert late["reprocess_command"].value == f"pulse reprocess --from {builds['late_date']}"


@pytest.mark.parametrize("state", ["before", "again"])
def test_events_kept_aside_pass_the_blocking_gate(builds: dict, state: str) -> None:
    shown = builds[state]
    assert shown["reported_ids"] == LATE_IDS and shown["report"].late_events == 3
    gate = shown["sessions_gate"]
    assert gate.passed and gate.blocking, gate.summary()
    [metrics] = gate.metrics
    assert (metrics["late_events_kept_aside"], metrics["unsessionized_events"]) == (3, 0)


def test_reprocessing_folds_them_in(builds: dict) -> None:
    after = builds["after"]
    assert after["reported_ids"] == set()
    assert after["report"].late_events == 0
    assert after["late_sessions"] == [(1,)]


@pytest.mark.parametrize("table", COMPARED)
def test_after_reprocessing_the_tables_equal_a_full_build(builds: dict, table: str) -> None:
    rows, only_full, only_incremental = table_differences(builds["full"], builds["incremental"], table)
    assert rows > 0
    assert (only_full, only_incremental) == (0, 0), (
        f"{table}: {only_full} only in the full build, {only_incremental} only in the incremental one"
    )
