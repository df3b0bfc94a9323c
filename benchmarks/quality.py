"""The Great Expectations gates against the transform they guard.

    python benchmarks/quality.py --events 1000000

Generates ~N demo events and ingests them (the stages of benchmarks/transform.py), then measures, each
stage in its own process:
  dbt_run      `dbt run` of every model, dbt's start-up included
  dbt_build    `dbt build`: every model and dbt test, what the daily_pipeline job's dbt step runs
  quality      ONE process, like the Dagster check steps: the GX import, the GX context, then every suite
               (metrics SQL, GX validation, one Data Docs build), each timed; evaluated over all landing
               days (a backfill), then once more for the latest day only (a daily run, warm)
  pandas_full  the alternative design: stg_events read whole into pandas and validated by GX there
Prints seconds and peak RSS, and the cost of the checks relative to the transform (target <= 20 %).
Figures, not assertions: machines here are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import transform as tb  # noqa: E402 - benchmarks/transform.py: generate, ingest, prepare and the stage runner
from bench_common import add_workdir_arguments, stage_args  # noqa: E402 - benchmarks/bench_common.py


def _dbt(a: dict, command: str) -> dict:
    """Run dbt; a failing `dbt run` stops the benchmark, failing tests of `dbt build` are only reported."""
    target = tb._dbt_target(a)
    cmd = [str(Path(sys.executable).parent / "dbt"), command, "--quiet", "--target-path", str(target)]
    cmd += ["--log-path", str(target)]
    proc = subprocess.run(cmd, cwd=REPO / "dbt_project", env=tb._dbt_env(a), capture_output=True, text=True)
    if proc.returncode != 0 and command == "run":
        raise RuntimeError(f"dbt {command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        "nodes": len(results),
        "nodes_s": round(sum(r["execution_time"] for r in results), 2),
        "not_passed": sorted(r["unique_id"] for r in results if r["status"] not in ("success", "pass")),
    }


def stage_dbt_run(a: dict) -> dict:
    return _dbt(a, "run")


def stage_dbt_build(a: dict) -> dict:
    return _dbt(a, "build")


def stage_quality(a: dict) -> dict:
    started = time.perf_counter()
    import dagster  # noqa: F401 - already imported in a Dagster step: not part of the checks' cost
    import duckdb
    import pandas  # noqa: F401

    base_import = time.perf_counter() - started
    started = time.perf_counter()
    import great_expectations  # noqa: F401

    gx_import = time.perf_counter() - started

    from expectations import runner

    home = Path(a["home"])
    context = runner.prepare(home)["context"]
    con = duckdb.connect(a["warehouse"], read_only=True, config={"memory_limit": a["memory_limit"]})
    first_day = con.execute("select min(load_date) from raw.ingested_files").fetchall()[0][0]
    started = time.perf_counter()
    backfill = runner.run_suites(con, since=first_day, home=home, run_name="benchmark-backfill")
    backfill_s = time.perf_counter() - started
    started = time.perf_counter()
    daily = runner.run_suites(con, home=home, run_name="benchmark-daily")
    daily_s = time.perf_counter() - started
    con.close()

    def parts(results: list) -> dict:
        return {k: round(sum(r.seconds.get(k, 0.0) for r in results), 3) for k in ("sql", "validate", "docs")}

    return {
        "base_import_s": round(base_import, 2),
        "gx_import_s": round(gx_import, 2),
        "context_s": round(context, 3),
        "backfill_s": round(backfill_s, 3),
        "backfill_parts": parts(backfill),
        "daily_s": round(daily_s, 3),
        "daily_parts": parts(daily),
        "suites": {
            r.suite: {k: round(v, 3) for k, v in r.seconds.items()} | {"passed": r.passed, "rows": len(r.metrics)}
            for r in backfill
        },
        "failed": [r.summary() for r in backfill + daily if not r.passed],
    }


def stage_pandas_full(a: dict) -> dict:
    """The stg_events gate on the whole table in pandas: what GX's pandas path costs without the SQL step."""
    import duckdb
    import great_expectations as gx

    con = duckdb.connect(a["warehouse"], read_only=True, config={"memory_limit": a["memory_limit"]})
    started = time.perf_counter()
    df = con.execute("select * from stg_events").df()
    read_s = time.perf_counter() - started
    con.close()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(), progress_bars=ProgressBarsConfig(globally=False)
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    suite = gx.ExpectationSuite(
        name="stg_events_full",
        expectations=[
            gx.expectations.ExpectColumnValuesToBeUnique(column="event_id"),
            *(gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in ("event_id", "user_key", "event_time")),
        ],
    )
    started = time.perf_counter()
    result = batch.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    return {
        "rows": len(df),
        "frame_mb": round(df.memory_usage(deep=True).sum() / 2**20),
        "read_s": round(read_s, 2),
        "validate_s": round(time.perf_counter() - started, 2),
        "passed": bool(result.success),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workdir_arguments(parser)
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas_full stage")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pulse-bench-quality-") as tmp:
        work = Path(args.workdir or tmp)
        a = stage_args(args, work)
        results: dict[str, dict] = {}
        reuse = args.reuse and (work / "warehouse.duckdb").exists()
        if reuse:
            results["ingest"] = tb._run_stage(tb.stage_count, a)
        for name, fn in [
            *([] if reuse else [("generate", tb.stage_generate), ("ingest", tb.stage_ingest)]),
            ("prepare", tb.stage_prepare),
            ("dbt_run", stage_dbt_run),
            ("dbt_build", stage_dbt_build),
            ("quality", stage_quality),
            *([] if args.no_pandas else [("pandas_full", stage_pandas_full)]),
        ]:
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            results[name] = tb._run_stage(fn, a)

    events = results["ingest"]["events"]
    q = results["quality"]
    print(
        f"\npulse quality benchmark: {events:,} accepted events, {args.days} days, "
        f"DuckDB memory_limit {args.memory_limit}"
    )
    print(f"{'stage':<12} {'seconds':>9} {'peak RSS MB':>12}  result")
    for name, r in results.items():
        if name in ("prepare", "quality"):
            continue
        extra = {k: v for k, v in r.items() if k not in ("seconds", "rss_mb")}
        print(f"{name:<12} {r['seconds']:>9.2f} {r['rss_mb']:>12,.0f}  {extra}")
    print(f"{'quality':<12} {q['seconds']:>9.2f} {q['rss_mb']:>12,.0f}  (whole process, imports included)")

    print("\nquality, one process:")
    print(f"  dagster+duckdb+pandas import {q['base_import_s']:>7.2f} s  (already paid by a Dagster step)")
    print(f"  GX import                    {q['gx_import_s']:>7.2f} s  (once per process)")
    print(f"  GX context + 6 suites        {q['context_s']:>7.3f} s  (once per process)")
    for label, key in (("all days (backfill)", "backfill"), ("latest day (daily) ", "daily")):
        p = q[f"{key}_parts"]
        print(
            f"  checks, {label}  {q[f'{key}_s']:>7.3f} s  = SQL {p['sql']:.3f} + GX validation {p['validate']:.3f}"
            f" + Data Docs {p['docs']:.3f}"
        )
    print("  per suite (backfill):")
    for suite, s in q["suites"].items():
        print(
            f"    {suite:<22} SQL {s['sql']:.3f}  validate {s['validate']:.3f}  docs {s.get('docs', 0):.3f}"
            f"  rows {s['rows']}  {'passed' if s['passed'] else 'FAILED'}"
        )
    for line in q["failed"]:
        print(f"  ! {line}")

    run_s, build_s = results["dbt_run"]["seconds"], results["dbt_build"]["seconds"]
    checks = q["backfill_s"]
    startup = q["gx_import_s"] + q["context_s"]
    print("\ncost of all checks relative to the transform (target <= 20 %):")
    print(f"  checks / dbt run                     = {checks / run_s:6.1%}")
    print(f"  checks / dbt build                   = {checks / build_s:6.1%}")
    print(f"  (checks + GX import, context) / dbt run   = {(checks + startup) / run_s:6.1%}")
    print(f"  (checks + GX import, context) / dbt build = {(checks + startup) / build_s:6.1%}")
    if "pandas_full" in results:
        pf = results["pandas_full"]
        print(
            f"\npandas_full: stg_events ({pf['rows']:,} rows) as a {pf['frame_mb']:,} MB DataFrame, "
            f"read {pf['read_s']} s + GX {pf['validate_s']} s, peak RSS {pf['rss_mb']:,.0f} MB; "
            f"the metrics query does the same gate in {q['suites']['stg_events']['sql']:.3f} s"
        )


if __name__ == "__main__":
    main()
