"""Behavioral triggers on the demo shop: replaying all history in one run gives the same firings, row for row,
as daily incremental runs (every firing depends only on events up to its fired_at).

A fresh demo (1 500 users x 21 days) in a temporary folder, ingested with ``pulse.ingest.raw_events.ingest_day``; dbt
builds the upstream models once and the warehouse file is copied. The replay is one full-refresh run of
``fct_trigger_firings`` over all history; the copy gets one run per day with ``triggers_through`` = that day + 1
(each reads only the events before it: int_trigger_candidates rebuilds from them, fct_trigger_firings emits the
firings before it). The demo never has more than 3 sessions of a user in one day, so
both builds lower ``frequent_visitor_sessions_per_day`` to 2 to make that trigger fire too.

The day-by-day runs are one in-process dbt (``dbtRunner``) that parses the project once and reuses the manifest:
a ``dbt run`` per day from the shell re-parses the whole project whenever ``--vars`` change (~4 s a day). dbt
runs in a child process, which keeps its DuckDB connections away from the test's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from demo_warehouse import DBT_PROJECT, dbt_env, ingest_demo, run_dbt

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 1500, 21, 7
TRIGGERS = ("cart_abandonment", "frequent_visitor", "high_intent", "low_engagement", "returning_browser")
# The demo has at most 3 sessions of a user a day: with the default (5) frequent_visitor would never fire.
TRIGGER_VARS = {"frequent_visitor_sessions_per_day": 2}
COLUMNS = (
    "firing_key, trigger_name, user_key, episode_key, fired_at, fired_date, evidence_count, "
    "evidence_started_at, evidence_ended_at, evidence_detail"
)

# Run in a child process (argv[1]: JSON settings): one parse, then per day a run and a look at the table.
DAY_BY_DAY = textwrap.dedent(
    """
    import json, sys
    from dbt.cli.main import dbtRunner

    settings = json.loads(sys.argv[1])
    paths = ["--target-path", settings["target_path"], "--log-path", settings["log_path"], "--quiet"]
    parsed = dbtRunner().invoke(["parse", *paths])
    if not parsed.success:
        raise SystemExit(f"dbt parse failed: {parsed.exception}")
    runner = dbtRunner(manifest=parsed.result)
    seen = "select count(*) as firings, max(fired_at) as latest from {{ ref('fct_trigger_firings') }}"
    runs = []
    for number, through in enumerate(settings["through"]):
        run_vars = json.dumps({**settings["vars"], "triggers_through": through})
        args = ["run", "--select", "int_trigger_candidates", "fct_trigger_firings", "--vars", run_vars, *paths]
        run = runner.invoke(args + (["--full-refresh"] if number == 0 else []))
        if not run.success:
            raise SystemExit(f"dbt run through {through} failed: {run.exception or run.result}")
        shown = runner.invoke(["show", "--inline", seen, "--vars", run_vars, *paths])
        if not shown.success:
            raise SystemExit(f"dbt show through {through} failed: {shown.exception}")
        firings, latest = shown.result.results[0].agate_table.rows[0]
        runs.append({"through": through, "firings": int(firings), "latest": str(latest) if latest else None})
    print(json.dumps(runs))
    """
)


@dataclass(frozen=True)
class TriggerBuilds:
    replay: pd.DataFrame  # one full-refresh run over all history
    daily: pd.DataFrame  # one run per day, incremental after the first
    runs: list[dict]  # per daily run: triggers_through, rows in the table after it, latest fired_at
    days: list[date]
    seconds: dict[str, float]


def _dbt_day_by_day(home: Path, warehouse: Path, through: list[str]) -> list[dict]:
    settings = {
        "through": through,
        "vars": TRIGGER_VARS,
        "target_path": str(home / "target_daily"),
        "log_path": str(home / "logs_daily"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", DAY_BY_DAY, json.dumps(settings)],
        cwd=DBT_PROJECT,
        env=dbt_env(home, warehouse),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _firings(warehouse: Path) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"select {COLUMNS} from fct_trigger_firings order by firing_key").df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> TriggerBuilds:
    home = tmp_path_factory.mktemp("triggers")
    replayed, daily = home / "replay.duckdb", home / "daily.duckdb"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    ingest_demo(home, USERS, DAYS, SEED, warehouse=replayed)
    run_dbt(home, replayed, "run", "--select", "+int_events_sessionized")
    con = duckdb.connect(str(replayed), read_only=True)
    try:
        first, last = con.execute("select min(event_time)::date, max(event_time)::date from stg_events").fetchone()
    finally:
        con.close()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    shutil.copy(replayed, daily)
    seconds["demo and upstream models"] = time.perf_counter() - started

    # One run per event day D, through D + 1 (landing days are receive days: the last one holds late events only).
    # The replay runs through the same end: all history, the last day included (without triggers_through it
    # would stop at the latest event, 23:41 on the demo's last day).
    through = [(day + timedelta(days=1)).isoformat() for day in days]
    started = time.perf_counter()
    replay_vars = json.dumps({**TRIGGER_VARS, "triggers_through": through[-1]})
    run_dbt(
        home,
        replayed,
        "run",
        "--select",
        "int_trigger_candidates",
        "fct_trigger_firings",
        "--full-refresh",
        "--vars",
        replay_vars,
    )
    seconds["replay (1 dbt run)"] = time.perf_counter() - started
    started = time.perf_counter()
    runs = _dbt_day_by_day(home, daily, through)
    seconds[f"day by day ({len(through)} dbt runs)"] = time.perf_counter() - started
    print("timings: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()))
    return TriggerBuilds(_firings(replayed), _firings(daily), runs, days, seconds)


def test_every_trigger_fires_on_the_demo(builds: TriggerBuilds) -> None:
    # 1 500 users x 21 days, seed 7: cart_abandonment 849, frequent_visitor 9 (threshold 2), high_intent 959,
    # low_engagement 174, returning_browser 1432.
    counts = builds.replay["trigger_name"].value_counts().to_dict()
    assert all(counts.get(trigger, 0) > 0 for trigger in TRIGGERS), f"firings per trigger: {counts}"
    assert set(counts) == set(TRIGGERS), counts


def test_replay_equals_day_by_day_incremental_runs(builds: TriggerBuilds) -> None:
    replay, daily = builds.replay, builds.daily
    counts = replay["trigger_name"].value_counts().to_dict()
    message = f"replay {len(replay)} rows, daily {len(daily)} rows; replay per trigger {counts}"
    assert len(replay) == len(daily), message
    pd.testing.assert_frame_equal(replay, daily, check_exact=True, obj=message)


def test_each_daily_run_emits_only_firings_before_its_cutoff(builds: TriggerBuilds) -> None:
    runs = builds.runs
    assert runs[0]["firings"] < runs[-1]["firings"] == len(builds.daily), runs
    for before, after in zip(runs, runs[1:], strict=False):
        assert before["firings"] <= after["firings"], runs
    for run in runs:
        assert run["latest"] is None or run["latest"] < run["through"], run
    # firings on a day are emitted by the run through the next day, never earlier
    by_day = builds.replay.groupby(builds.replay["fired_date"].astype(str)).size().cumsum()
    for run in runs:
        emitted = int(by_day[by_day.index < run["through"]].iloc[-1]) if (by_day.index < run["through"]).any() else 0
        assert run["firings"] == emitted, run


def test_at_most_once_per_user_and_episode(builds: TriggerBuilds) -> None:
    for name, firings in (("replay", builds.replay), ("daily", builds.daily)):
        assert firings["firing_key"].is_unique, name
        repeated = firings[firings.duplicated(["trigger_name", "user_key", "episode_key"], keep=False)]
        assert repeated.empty, f"{name}: {repeated.head().to_string()}"
        low = firings[firings["trigger_name"] == "low_engagement"]
        assert low["user_key"].is_unique, name
        # high_intent: at most one firing per user per UTC day (the episode)
        intent = firings[firings["trigger_name"] == "high_intent"].assign(day=lambda f: f["fired_at"].dt.date)
        assert not intent.duplicated(["user_key", "day"]).any(), name


def test_evidence_never_comes_after_the_firing(builds: TriggerBuilds) -> None:
    firings = builds.replay
    assert (firings["evidence_started_at"] <= firings["evidence_ended_at"]).all()
    assert (firings["evidence_ended_at"] <= firings["fired_at"]).all()
    assert (firings["fired_at"].dt.date == firings["fired_date"].dt.date).all()
    assert firings[["fired_at", "evidence_count", "evidence_started_at", "evidence_ended_at"]].notna().all().all()
