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

from pulse.warehouse import Warehouse, as_warehouse

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


def batch_report(warehouse: Warehouse | duckdb.DuckDBPyConnection) -> BatchReport | None:
    """The batch the last dbt run processed, or None before the first run built the batch tables."""
    warehouse = as_warehouse(warehouse)
    if not all(warehouse.table_exists(t) for t in BATCH_TABLES):
        return None
    [(is_full, first_day, last_day, rows)] = warehouse.rows(
        "select is_full, first_load_date, last_load_date, batch_rows from int_batch"
    )
    [[users]] = warehouse.rows("select count(*) from int_batch_users")
    [(late, late_from)] = warehouse.rows("select count(*), min(cast(event_time as date)) from qa_late_events")
    return BatchReport(
        is_full=bool(is_full),
        first_load_date=first_day,
        last_load_date=last_day,
        batch_rows=rows,
        users_recomputed=users,
        late_events=late,
        late_events_from=late_from,
    )
