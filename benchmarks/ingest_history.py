"""Ingesting a long history of small landing days: one day at a time against batches of days.

    python benchmarks/ingest_history.py --days 546 --events-per-day 15

A shop's own history (an orders export over years) lands as hundreds or thousands of days of a few dozen events.
DuckDB spends ~0.1-0.3 s planning ingestion's validation statement whatever its input, so validating one file at
a time costs that per day; `pulse.ingest.raw_events.ingest_days` validates many days' files in one statement and writes
them in one transaction per batch. Both are timed here on the same landing files (a fresh warehouse each), and
the tables they write are compared. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_history(events: Path, days: int, per_day: int) -> list[date]:
    first = date(1997, 1, 1)
    landed = []
    for d in range(days):
        day = first + timedelta(days=d)
        folder = events / day.isoformat()
        folder.mkdir(parents=True)
        lines = [
            json.dumps(
                {
                    "event_id": f"order-{d}-{i}",
                    "event_type": "purchase",
                    "event_time": f"{day}T{i % 24:02d}:{i % 60:02d}:00Z",
                    "user_id": f"c-{(d * per_day + i) % 2357}",
                    "order_id": f"{d}-{i}",
                    "revenue": 10 + i,
                }
            )
            for i in range(per_day)
        ]
        (folder / "orders.jsonl").write_text("\n".join(lines) + "\n")
        landed.append(day)
    return landed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=546)
    parser.add_argument("--events-per-day", type=int, default=15)
    args = parser.parse_args()

    import duckdb

    from pulse.ingest.raw_events import IngestOptions, ingest_day, ingest_days

    options = IngestOptions(earliest_event_time=IngestOptions().earliest_event_time.replace(year=1990))
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events"
        days = write_history(events, args.days, args.events_per_day)
        tables = {}
        for name in ("one day at a time", "batched"):
            con = duckdb.connect(str(Path(tmp) / f"{name[:3]}.duckdb"))
            started = time.perf_counter()
            if name == "batched":
                results = ingest_days(con, events, days, options)
            else:
                results = [ingest_day(con, events, day, options) for day in days]
            seconds = time.perf_counter() - started
            accepted = sum(r.accepted for r in results)
            tables[name] = con.execute(
                "select load_date, source_file, source_line, event_id from raw.events order by all"
            ).fetchall()
            con.close()
            per_day = seconds / len(days) * 1000
            print(f"{name:18} {len(days):,} days, {accepted:,} events: {seconds:6.1f} s ({per_day:.0f} ms/day)")
        print(f"same rows: {'yes' if tables['batched'] == tables['one day at a time'] else 'NO'}")


if __name__ == "__main__":
    main()
