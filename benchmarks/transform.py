"""Ingestion and the dbt transform, against a one-statement DuckDB anchor and a hand-written pandas version.

    python benchmarks/transform.py --events 10000000

Generates ~N demo events, then in one run measures:
  ingest     landing files -> raw.events (+ quarantine), pulse.ingest.raw_events
  transform  dbt: raw.events -> stg_events -> int_events_sessionized -> fct_page_views, fct_sessions,
             fct_user_daily (`dbt run`, including dbt's own start-up)
  anchor     ONE DuckDB statement: LAG + running SUM + GROUP BY into sessions over the same raw table
  pandas     the same sessionization written by hand in pandas (dedupe, sort, diff, cumsum, groupby)
Each stage runs in its own process, so its peak RSS is its own. Prints seconds, events/s, peak RSS, and
the ratios transform/anchor and pandas/transform. Figures, not assertions: machines here are noisy.
Before the timed stages the warehouse file is read once (untimed), so that neither the transform nor the
anchor pays for reading raw.events from disk: whichever ran first would, when the kernel has dropped the
file's pages since ingestion (with --reuse, after other work: the first dbt models took 0.8 s longer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import BENCH_START, add_workdir_arguments, run_stage, stage_args  # noqa: E402 - benchmarks/bench_common.py

ANCHOR_SQL = """
create or replace table anchor_sessions as
with events as (
    select coalesce(user_id, anonymous_id) as user_key, event_time,
        lag(event_time) over (partition by coalesce(user_id, anonymous_id) order by event_time) as previous_time
    from raw.events
),
flagged as (
    select *, sum(case when previous_time is null or event_time - previous_time > interval 30 minutes
                       then 1 else 0 end)
        over (partition by user_key order by event_time rows between unbounded preceding and current row)
        as session_index
    from events
)
select user_key, session_index, min(event_time) as session_start, max(event_time) as session_end,
    count(*) as events
from flagged
group by user_key, session_index
"""


def stage_generate(a: dict) -> dict:
    from pulse.demo.generator import generate_demo, users_for_target_events

    users = users_for_target_events(a["events"], days=a["days"], seed=a["seed"])
    s = generate_demo(Path(a["landing"]), users=users, days=a["days"], seed=a["seed"], start=BENCH_START, progress=True)
    return {"users": users, "events": s.events_written}


def stage_count(a: dict) -> dict:
    import duckdb

    from pulse.ingest.raw_events import create_raw_tables

    con = duckdb.connect(a["warehouse"])
    create_raw_tables(con)  # a work dir from an older pulse may lack a newer raw table (idempotent)
    events = con.execute("select count(*) from raw.events").fetchall()[0][0]
    con.close()
    return {"events": events, "reused": True}


def stage_ingest(a: dict) -> dict:
    import duckdb

    from pulse.ingest.raw_events import ingest_day, landed_days

    events_landing = Path(a["landing"]) / "events"
    con = duckdb.connect(a["warehouse"])
    con.execute(f"set memory_limit = '{a['memory_limit']}'")
    accepted = quarantined = 0
    for day in landed_days(events_landing):
        r = ingest_day(con, events_landing, day)
        accepted += r.accepted
        quarantined += r.quarantined
    con.close()
    return {"events": accepted, "quarantined": quarantined}


def _dbt_env(a: dict) -> dict:
    return {**os.environ, "PULSE_WAREHOUSE": a["warehouse"], "PULSE_DUCKDB_MEMORY": a["memory_limit"]}


def _dbt_target(a: dict) -> Path:
    # The same target path for parse and run: dbt's partial parsing reads target/partial_parse.msgpack.
    return Path(a["warehouse"]).parent / "dbt_target"


def stage_prepare(a: dict) -> dict:
    """`dbt parse` with the benchmark's profile, as `make` does at install time (not timed as transform)."""
    dbt = str(Path(sys.executable).parent / "dbt")
    cmd = [dbt, "parse", "--quiet", "--target-path", str(_dbt_target(a)), "--log-path", str(_dbt_target(a))]
    subprocess.run(cmd, cwd=REPO / "dbt_project", env=_dbt_env(a), check=True)
    return {}


def warm_page_cache(path: str) -> None:
    """Read the file once so that the OS page cache holds it (the timed stages then compare computation)."""
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def stage_transform(a: dict) -> dict:
    """The whole `dbt run` process, start-up included; also the models' own time from run_results.json."""
    dbt = str(Path(sys.executable).parent / "dbt")
    target = _dbt_target(a)
    # --full-refresh: a rebuild from raw.events every time, whatever an earlier run of the work dir committed
    # (the incremental path is benchmarks/incremental.py's subject).
    cmd = [dbt, "run", "--quiet", "--full-refresh", "--target-path", str(target), "--log-path", str(target)]
    cmd += ["--select", "+fct_sessions", "+fct_user_daily"]
    subprocess.run(cmd, cwd=REPO / "dbt_project", env=_dbt_env(a), check=True)
    results = json.loads((target / "run_results.json").read_text())["results"]
    import duckdb

    con = duckdb.connect(a["warehouse"], read_only=True)
    sessions = con.execute("select count(*) from fct_sessions").fetchall()[0][0]
    con.close()
    return {"sessions": sessions, "models_s": round(sum(r["execution_time"] for r in results), 2)}


def stage_anchor(a: dict) -> dict:
    import duckdb

    con = duckdb.connect(a["warehouse"])
    con.execute(f"set memory_limit = '{a['memory_limit']}'")
    con.execute(ANCHOR_SQL)
    sessions = con.execute("select count(*) from anchor_sessions").fetchall()[0][0]
    con.close()
    return {"sessions": sessions}


def stage_pandas(a: dict) -> dict:
    import duckdb
    import pandas as pd

    con = duckdb.connect(a["warehouse"], read_only=True)
    df = con.execute("select event_id, user_id, anonymous_id, event_time, received_at from raw.events").df()
    con.close()
    df = df.sort_values("received_at", na_position="last").drop_duplicates("event_id")
    df["user_key"] = df["user_id"].fillna(df["anonymous_id"])
    df = df.sort_values(["user_key", "event_time", "event_id"])
    gap = df.groupby("user_key", sort=False)["event_time"].diff()
    df["session_index"] = (gap.isna() | (gap > pd.Timedelta(minutes=30))).astype("int64")
    df["session_index"] = df.groupby("user_key", sort=False)["session_index"].cumsum()
    sessions = df.groupby(["user_key", "session_index"], sort=False).agg(
        session_start=("event_time", "min"), session_end=("event_time", "max"), events=("event_id", "size")
    )
    return {"sessions": len(sessions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workdir_arguments(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        work = Path(args.workdir or tmp)
        a = stage_args(args, work)
        results = {}
        reuse = args.reuse and (work / "warehouse.duckdb").exists()
        if reuse:
            results["ingest"] = run_stage(stage_count, a)
        for name, fn in [
            *([] if reuse else [("generate", stage_generate), ("ingest", stage_ingest)]),
            ("prepare", stage_prepare),
            ("transform", stage_transform),
            ("anchor", stage_anchor),
            ("pandas", stage_pandas),
        ]:
            if name == "transform":
                warm_page_cache(a["warehouse"])
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            results[name] = run_stage(fn, a)

    events = results["ingest"]["events"]
    print(
        f"\npulse transform benchmark: {events:,} accepted events "
        f"({results.get('generate', {}).get('users', 'reused')} users, {args.days} days), "
        f"DuckDB memory_limit {args.memory_limit}"
    )
    print(f"{'stage':<10} {'seconds':>9} {'events/s':>13} {'peak RSS MB':>12}  result")
    for name, r in results.items():
        if name == "prepare":
            continue
        extra = {k: v for k, v in r.items() if k not in ("seconds", "rss_mb")}
        print(f"{name:<10} {r['seconds']:>9.2f} {events / r['seconds']:>13,.0f} {r['rss_mb']:>12,.0f}  {extra}")
    t, an, pd_ = (results[k]["seconds"] for k in ("transform", "anchor", "pandas"))
    models = results["transform"]["models_s"]
    print(f"\ntransform/anchor = {t / an:.2f}   (target <= 4; the dbt process, start-up included)")
    print(f"models/anchor    = {models / an:.2f}   (the models' own SQL time, from dbt's run_results.json)")
    print(f"pandas/transform = {pd_ / t:.2f}   (> 1: pulse is faster than pandas)")
    peak = max(results[k]["rss_mb"] for k in ("ingest", "transform"))
    print(f"pulse peak RSS   = {peak:,.0f} MB (ingest, transform; target <= 3072)")


if __name__ == "__main__":
    main()
