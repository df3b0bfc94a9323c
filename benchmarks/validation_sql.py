"""Ingestion's validation statement alone (pulse.ingest.raw_events.validation_sql), timed on one large landing file.

    python benchmarks/validation_sql.py --lines 1000000
    python benchmarks/validation_sql.py --lines 1000000 --code /path/to/another/checkout  # the same, its code

The lines are demo-shaped events, one in twenty broken in some way (a bad number, an unknown type, no identity,
malformed JSON). The statement runs over an Arrow table of the lines (as ingestion registers it) into a temp
table, best of ``--repeat`` runs; the reasons found are counted so two versions can be compared. Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lines(n: int, day: date) -> list[bytes]:
    rng = random.Random(7)
    types = ["page_view", "page_ping", "product_view", "add_to_cart", "purchase", "click", "scroll"]
    out = []
    for i in range(n):
        event = {
            "event_id": f"e-{i}",
            "event_type": rng.choice(types),
            "event_time": f"{day}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z",
            "anonymous_id": f"a-{i % 50_000}",
            "session_id": f"s-{i % 80_000}",
            "page_view_id": f"pv-{i // 5}",
            "page_url": f"https://shop.example/p/{i % 3000}",
            "product_id": f"p-{i % 3000}",
            "price": round(rng.uniform(1, 200), 2),
            "quantity": rng.randint(1, 3),
            "consent_analytics": True,
            "properties": {"variant": i % 4},
        }
        if i % 3 == 0:
            event["user_id"] = f"u-{i % 20_000}"
        broken = i % 20
        if broken == 1:
            event["price"] = "abc"
        elif broken == 2:
            event["event_type"] = "teleport"
        elif broken == 3:
            del event["anonymous_id"]
            event.pop("user_id", None)
        elif broken == 4:
            event["event_time"] = "1999-01-01T00:00:00Z"
        text = json.dumps(event)
        if broken == 5:
            text = text[:-3]
        out.append(text.encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose pulse package is timed")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import duckdb
    import pyarrow as pa

    from pulse.ingest.raw_events import IngestOptions, validation_sql

    day = date(2026, 9, 1)
    raw = lines(args.lines, day)
    table = pa.table(
        {
            "load_date": pa.array([day] * len(raw), pa.date32()),
            "source_file": pa.array(["events.jsonl"] * len(raw)),
            "line_number": pa.array(range(1, len(raw) + 1), pa.int64()),
            "raw": pa.array(raw, pa.large_binary()),
        }
    )
    print(f"{len(raw):,} lines, {sum(map(len, raw)) / 1e6:.0f} MB; code from {args.code}")
    con = duckdb.connect()
    con.register("landing_lines", table)
    sql = validation_sql("landing_lines", IngestOptions())
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        con.execute(f"create or replace temp table checked_lines as {sql}")
        best = min(best, time.perf_counter() - start)
    print(f"validation: best of {args.repeat} {best:.2f} s ({len(raw) / best / 1e6:.2f} M lines/s)")
    for kind, count in con.execute(
        """select split_part(one, ': ', 1) as kind, count(*) from
        (select unnest(string_split(reason, '; ')) as one from checked_lines where reason is not null)
        group by all order by 1"""
    ).fetchall():
        print(f"  {count:>8,}  {kind}")


if __name__ == "__main__":
    main()
