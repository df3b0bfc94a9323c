"""The same dbt transform on DuckDB and on Apache Spark (local, one machine), side by side.

    python benchmarks/engines.py --events 1000000
    python benchmarks/engines.py --events 10000000 --workdir /tmp/engines10 [--reuse]

Generates ~N demo events and ingests them (DuckDB: ingestion is DuckDB's on both engines), exports the raw
tables to Parquet for Spark (pulse.ingest.spark_raw), then times `dbt run --full-refresh --select +fct_sessions
+fct_user_daily` (the transform of benchmarks/transform.py) with PULSE_ENGINE=duckdb and with
PULSE_ENGINE=spark (dbt-spark's session method: pyspark in the dbt process, local[2], its JVM a child).
Peak memory is the peak of the whole process tree's RSS (dbt, and Spark's JVM), sampled every 0.2 s, so both
engines are measured the same way. Both must find the same number of sessions.

DuckDB is expected to win on one machine: Spark pays a JVM, a metastore, a planner per statement and
shuffles between local tasks. The point is the figures, for docs/deployment.md's sizing table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import add_workdir_arguments, run_stage, stage_args  # noqa: E402
from transform import stage_count, stage_generate, stage_ingest  # noqa: E402 - benchmarks/transform.py


def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def _run_sampled(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Run ``cmd``; (seconds, peak RSS of its process tree in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = proc.wait()
    done.set()
    sampler.join()
    if returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {returncode}")
    return time.perf_counter() - started, peak


def _env(a: dict, engine: str) -> dict[str, str]:
    return {
        **os.environ,
        "PULSE_ENGINE": engine,
        "PULSE_HOME": a["home"],
        "PULSE_WAREHOUSE": a["warehouse"],
        "PULSE_DUCKDB_MEMORY": a["memory_limit"],
        "PULSE_SPARK_DRIVER_MEMORY": a["spark_memory"],
        "TZ": "UTC",
    }


def stage_export(a: dict) -> dict:
    from pulse.ingest.spark_raw import export_raw_to_parquet

    root = Path(a["home"]) / "spark" / "raw"
    exported = export_raw_to_parquet(Path(a["warehouse"]), root)
    return {"rows": sum(t.rows for t in exported)}


def transform(a: dict, engine: str) -> dict:
    """`dbt parse` (not timed), then the timed `dbt run --full-refresh` of the transform on ``engine``."""
    dbt = str(Path(sys.executable).parent / "dbt")
    target = Path(a["home"]) / f"dbt_target_{engine}"
    env = _env(a, engine)
    cwd = REPO / "dbt_project"
    subprocess.run(
        [dbt, "parse", "--quiet", "--target-path", str(target), "--log-path", str(target)], cwd=cwd, env=env, check=True
    )
    cmd = [dbt, "run", "--quiet", "--full-refresh", "--target-path", str(target), "--log-path", str(target)]
    cmd += ["--select", "+fct_sessions", "+fct_user_daily"]
    seconds, peak = _run_sampled(cmd, env, cwd)
    return {"seconds": seconds, "tree_rss_mb": peak, "sessions": sessions(a, engine)}


def sessions(a: dict, engine: str) -> int:
    import duckdb

    if engine == "duckdb":
        with duckdb.connect(a["warehouse"], read_only=True) as con:
            return con.execute("select count(*) from fct_sessions").fetchall()[0][0]
    files = Path(a["home"]) / "spark" / "warehouse" / "pulse.db" / "fct_sessions" / "*.parquet"
    return duckdb.connect().execute(f"select count(*) from read_parquet('{files}')").fetchall()[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workdir_arguments(parser)
    parser.add_argument("--spark-memory", default="4g", help="Spark driver memory (local mode: the whole engine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulse-engines-") as tmp:
        work = Path(args.workdir or tmp)
        a = {**stage_args(args, work), "spark_memory": args.spark_memory}
        Path(a["home"]).mkdir(parents=True, exist_ok=True)
        reuse = args.reuse and (work / "warehouse.duckdb").exists()
        results: dict[str, dict] = {}
        if reuse:
            results["ingest"] = run_stage(stage_count, a)
        else:
            print("-- generate ...", file=sys.stderr, flush=True)
            results["generate"] = run_stage(stage_generate, a)
            print("-- ingest ...", file=sys.stderr, flush=True)
            results["ingest"] = run_stage(stage_ingest, a)
        print("-- export raw to Parquet ...", file=sys.stderr, flush=True)
        results["export"] = run_stage(stage_export, a)
        for engine in ("duckdb", "spark"):
            print(f"-- transform on {engine} ...", file=sys.stderr, flush=True)
            results[engine] = transform(a, engine)

    events = results["ingest"]["events"]
    print(
        f"\npulse engines benchmark: {events:,} events, {os.cpu_count()} cores, DuckDB memory_limit "
        f"{args.memory_limit}, Spark local[2] driver memory {args.spark_memory}"
    )
    print(f"{'engine':<8} {'seconds':>9} {'events/s':>12} {'peak RSS MB':>12} {'sessions':>10}")
    for engine in ("duckdb", "spark"):
        r = results[engine]
        print(
            f"{engine:<8} {r['seconds']:>9.1f} {events / r['seconds']:>12,.0f} {r['tree_rss_mb']:>12,.0f}"
            f" {r['sessions']:>10,}"
        )
    print(f"export of the raw tables to Parquet (Spark only): {results['export']['seconds']:.1f} s")
    print(
        f"spark/duckdb = {results['spark']['seconds'] / results['duckdb']['seconds']:.1f}x the time, "
        f"{results['spark']['tree_rss_mb'] / results['duckdb']['tree_rss_mb']:.1f}x the memory"
    )
    if results["spark"]["sessions"] != results["duckdb"]["sessions"]:
        print("WARNING: the engines found different numbers of sessions")


if __name__ == "__main__":
    main()
