"""What the benchmark scripts share: peak RSS, and the arguments and paths of a generate -> ingest -> dbt
work directory (benchmarks/transform.py and benchmarks/quality.py)."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

# The demo's first day in every benchmark: fixed, so that two runs generate the same events (`pulse demo`'s
# own default ends the history yesterday, whatever the date, and the weekdays shape the traffic).
BENCH_START = date(2026, 9, 1)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or, with RUSAGE_CHILDREN, of its finished children), in MB."""
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def run_stage(fn: Callable[[dict], dict], args: dict) -> dict:
    """Run fn(args) in a fresh process; return its result plus its seconds and its own peak RSS."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_stage_wrapper, (fn, args))


def _stage_wrapper(fn: Callable[[dict], dict], args: dict) -> dict:
    started = time.perf_counter()
    out = fn(args)
    out["seconds"] = time.perf_counter() - started
    out["rss_mb"] = max(peak_rss_mb(), peak_rss_mb(resource.RUSAGE_CHILDREN))
    return out


def add_workdir_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit for every stage")
    parser.add_argument("--workdir", default=None, help="keep data here instead of a temp dir")
    parser.add_argument(
        "--reuse", action="store_true", help="with --workdir: keep its landing files and raw tables, time the rest"
    )


def stage_args(args: argparse.Namespace, work: Path) -> dict:
    """The (picklable) arguments every stage receives: sizes, seed and the work directory's paths."""
    work.mkdir(parents=True, exist_ok=True)
    return {
        "events": args.events,
        "days": args.days,
        "seed": args.seed,
        "landing": str(work / "landing"),
        "warehouse": str(work / "warehouse.duckdb"),
        "home": str(work / "home"),
        "memory_limit": args.memory_limit,
    }
