"""What the last dbt run's batch was (docs/incremental.md): plain functions over the warehouse, used by the
Dagster dbt asset's metadata and by `pulse reprocess`.

A batch is the raw rows ingested since the last committed dbt run. `int_batch` (one row) describes it,
`int_batch_users` lists the users it recomputed, and `qa_late_events` lists the events that arrived later
than `incremental_lookback_days` allows and are not in the sessions yet (kept in raw.events, never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

BATCH_TABLES = ("int_batch", "int_batch_users", "qa_late_events")


@dataclass(frozen=True)
class BatchReport:
    is_full: bool  # no committed run before it, or --full-refresh: every model rebuilt
    first_load_date: date | None  # the batch's landing days (None: nothing new)
    last_load_date: date | None
    batch_rows: int  # raw rows ingested (or retracted) since the last committed run
    users_recomputed: int  # users whose sessions the run recomputed (0 in a full build: all of them)
    late_events: int  # events later than the lookback, not yet in the sessions (qa_late_events)
    late_events_from: date | None  # the earliest such event's date: `pulse reprocess --from` it folds them in

    def describe(self) -> str:
        days = f"{self.first_load_date}..{self.last_load_date}" if self.first_load_date else "no new landing day"
        what = "full build" if self.is_full else f"incremental, {self.users_recomputed:,} users recomputed"
        text = f"batch: {self.batch_rows:,} raw rows ({days}), {what}"
        if self.late_events:
            text += (
                f"; {self.late_events:,} events arrived later than the lookback and are not in the sessions yet "
                f"(qa_late_events): `pulse reprocess --from {self.late_events_from}` folds them in"
            )
        return text


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'main' and table_name = ?", [table]
    ).fetchall()[0][0]
    return found > 0


def batch_report(con: duckdb.DuckDBPyConnection) -> BatchReport | None:
    """The batch the last dbt run processed, or None before the first run built the batch tables."""
    if not all(_exists(con, t) for t in BATCH_TABLES):
        return None
    is_full, first_day, last_day, rows = con.execute(
        "select is_full, first_load_date, last_load_date, batch_rows from main.int_batch"
    ).fetchall()[0]
    users = con.execute("select count(*) from main.int_batch_users").fetchall()[0][0]
    late_sql = "select count(*), min(cast(event_time as date)) from main.qa_late_events"
    late, late_from = con.execute(late_sql).fetchall()[0]
    return BatchReport(
        is_full=bool(is_full),
        first_load_date=first_day,
        last_load_date=last_day,
        batch_rows=rows,
        users_recomputed=users,
        late_events=late,
        late_events_from=late_from,
    )
