"""Benchmark the demo generator: ``python benchmarks/demo.py --events 10000000``.

Sizes the run with :func:`pulse.demo.generator.users_for_target_events`, generates into a temporary directory (deleted
afterwards unless ``--keep``), and prints events, seconds, events/s and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:
    import pulse.demo.generator as demo
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pulse.demo.generator as demo

from bench_common import BENCH_START, peak_rss_mb  # noqa: E402 - benchmarks/bench_common.py (this folder is on sys.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="target number of events")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the generated files and print where")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    users = demo.users_for_target_events(args.events, days=args.days, seed=args.seed)
    sizing = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="pulse-demo-bench-"))
    try:
        summary = demo.generate_demo(
            tmp / "landing",
            users=users,
            days=args.days,
            seed=args.seed,
            start=BENCH_START,
            progress=not args.no_progress,
        )
        size = sum(f.stat().st_size for f in summary.files)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    rate = summary.events_written / summary.seconds
    print(f"target events     {args.events:,}")
    print(f"users             {users:,}  (sized in {sizing:.2f}s)")
    print(f"days              {args.days}")
    print(f"events written    {summary.events_written:,}")
    print(f"seconds           {summary.seconds:.2f}")
    print(f"events/s          {rate:,.0f}")
    print(f"peak RSS          {peak_rss_mb():,.0f} MB")
    print(f"files             {len(summary.files)}  ({size / 2**20:,.0f} MB gzip)")
    print(f"duplicates        {summary.duplicates_injected:,}")
    print(f"late              {summary.late_injected:,}")
    print(f"malformed         {sum(summary.malformed_injected.values()):,}  {summary.malformed_injected}")
    if args.keep:
        print(f"kept in           {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
