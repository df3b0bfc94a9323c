"""Day 61 incremental against a full rebuild of 61 days, in one run.

    python benchmarks/incremental.py --events 10000000

Generates ~N demo events over 61 landing days, then:
  setup        ingest days 1-60 and build every dbt model once (`dbt build`): "60 days already processed"
  day 61       ingest landing day 61, then `dbt build` (incremental: the batch is day 61's rows)
  full         re-ingest all 61 landing days, then `dbt build --full-refresh`
Each timed step runs in its own process (peak RSS is its own) and `dbt build` includes dbt's start-up, the
models and their data tests. The ratio day 61 / full is printed for the whole step and for dbt alone; a
breakdown of the slowest models of the day-61 build shows where its time goes. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import BENCH_START, run_stage  # noqa: E402 - benchmarks/bench_common.py

DAYS = 61  # landing days processed; the demo is generated with one more, its last landing day holding late
# arrivals only (the demo's event days end the day before), so landing day 61 is a full day of events


def _landing_days(a: dict) -> list:
    from pulse.ingest.raw_events import landed_days

    return landed_days(Path(a["landing"]) / "events")[:DAYS]


def _ingest(a: dict, days: list) -> dict:
    import duckdb

    from pulse.ingest.raw_events import ingest_day

    con = duckdb.connect(a["warehouse"])
    con.execute(f"set memory_limit = '{a['memory_limit']}'")
    accepted = 0
    started = time.perf_counter()
    for day in days:
        accepted += ingest_day(con, Path(a["landing"]) / "events", day).accepted
    con.close()
    return {"accepted": accepted, "ingest_s": round(time.perf_counter() - started, 2)}


def _dbt_build(a: dict, *extra: str) -> dict:
    target = Path(a["warehouse"]).parent / "dbt_target"
    env = {**os.environ, "PULSE_WAREHOUSE": a["warehouse"], "PULSE_DUCKDB_MEMORY": a["memory_limit"]}
    # what the Dagster asset runs (orchestration/transform/assets.py): the build without dbt's unit tests
    cmd = [str(Path(sys.executable).parent / "dbt"), "build", "--exclude-resource-type", "unit_test", "--quiet"]
    cmd += ["--target-path", str(target), "--log-path", str(target), *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO / "dbt_project", env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    results = json.loads((target / "run_results.json").read_text())["results"]
    slowest = sorted(results, key=lambda r: -r["execution_time"])[:6]
    return {
        "dbt_s": round(seconds, 2),
        "slowest": [(r["unique_id"].split(".")[-1], round(r["execution_time"], 2)) for r in slowest],
    }


def stage_generate(a: dict) -> dict:
    from pulse.demo.generator import generate_demo, users_for_target_events

    users = users_for_target_events(a["events"], days=DAYS + 1, seed=a["seed"])
    s = generate_demo(Path(a["landing"]), users=users, days=DAYS + 1, seed=a["seed"], start=BENCH_START, progress=True)
    return {"users": users, "events": s.events_written}


def stage_prepare(a: dict) -> dict:
    target = Path(a["warehouse"]).parent / "dbt_target"
    env = {**os.environ, "PULSE_WAREHOUSE": a["warehouse"]}
    dbt = str(Path(sys.executable).parent / "dbt")
    subprocess.run(
        [dbt, "parse", "--quiet", "--target-path", str(target), "--log-path", str(target)],
        cwd=REPO / "dbt_project",
        env=env,
        check=True,
    )
    return {}


def stage_setup(a: dict) -> dict:
    """Days 1-60 ingested and built (not timed against anything)."""
    return {**_ingest(a, _landing_days(a)[:-1]), **_dbt_build(a)}


def stage_day61(a: dict) -> dict:
    import duckdb

    out = {**_ingest(a, _landing_days(a)[-1:]), **_dbt_build(a)}
    con = duckdb.connect(a["warehouse"], read_only=True)
    batch_rows, users = con.execute(
        "select batch_rows, (select count(*) from int_batch_users) from int_batch"
    ).fetchall()[0]
    out["batch"] = {"rows": batch_rows, "users_recomputed": users}
    out["users"] = con.execute("select count(*) from dim_users").fetchall()[0][0]
    con.close()
    return out


def stage_full(a: dict) -> dict:
    return {**_ingest(a, _landing_days(a)), **_dbt_build(a, "--full-refresh")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about this many events over 61 days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit for every stage")
    parser.add_argument("--workdir", default=None, help="keep data here instead of a temp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pulse-bench-incremental-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        warehouse = work / "warehouse.duckdb"
        warehouse.unlink(missing_ok=True)
        a = {
            "events": args.events,
            "seed": args.seed,
            "landing": str(work / "landing"),
            "warehouse": str(warehouse),
            "memory_limit": args.memory_limit,
        }
        results = {}
        events = work / "landing" / "events"
        have_landing = events.is_dir() and len([d for d in events.iterdir() if d.is_dir()]) == DAYS + 1
        for name, fn in [
            *([] if have_landing else [("generate", stage_generate)]),
            ("prepare", stage_prepare),
            ("setup", stage_setup),
            ("day 61", stage_day61),
            ("full", stage_full),
        ]:
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            results[name] = run_stage(fn, a)

    day, full = results["day 61"], results["full"]
    print(
        f"\npulse incremental benchmark: {full['accepted']:,} accepted events over {DAYS} landing days, "
        f"{day['users']:,} users, DuckDB memory_limit {args.memory_limit}"
    )
    print(f"{'step':<8} {'seconds':>8} {'ingest s':>9} {'dbt build s':>12} {'peak RSS MB':>12}")
    for name in ("setup", "day 61", "full"):
        r = results[name]
        print(f"{name:<8} {r['seconds']:>8.2f} {r['ingest_s']:>9.2f} {r['dbt_s']:>12.2f} {r['rss_mb']:>12,.0f}")
    print(
        f"\nday 61: {day['accepted']:,} rows ingested, batch {day['batch']['rows']:,} rows, "
        f"{day['batch']['users_recomputed']:,} of {day['users']:,} users recomputed"
    )
    print(f"day 61 slowest: {day['slowest']}")
    print(f"full slowest:   {full['slowest']}")
    print(f"\nday 61 / full = {day['seconds'] / full['seconds']:.3f}   (target <= 0.10 at 10 M; ingest + dbt build)")
    print(f"dbt only      = {day['dbt_s'] / full['dbt_s']:.3f}   (dbt build, start-up included)")


if __name__ == "__main__":
    main()
