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

from pulse.core.warehouse import Warehouse, as_warehouse

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
            text += "; " + late_events_text(self.late_events, self.late_events_from)
        return text


def late_events_text(late_events: int, late_from: date | str | None) -> str:
    """What a run says of the events kept aside (qa_late_events): a warning, never a failure. The blocking gate
    on fct_sessions counts them as kept aside, so everything downstream is still built and published."""
    events = "1 event" if late_events == 1 else f"{late_events:,} events"
    return (
        f"{events} arrived later than the lookback (incremental_lookback_days) and are kept aside, not in the "
        f"sessions yet (qa_late_events, the earliest on {late_from}); everything else is built and published: "
        f"`pulse reprocess --from {late_from}` folds them in"
    )


def late_events(warehouse: Warehouse) -> tuple[int, date | None]:
    """How many events are kept aside (qa_late_events) and the day of the earliest."""
    [(count, earliest)] = warehouse.rows("select count(*), min(cast(event_time as date)) from qa_late_events")
    return count, earliest


def batch_report(warehouse: Warehouse | duckdb.DuckDBPyConnection) -> BatchReport | None:
    """The batch the last dbt run processed, or None before the first run built the batch tables."""
    warehouse = as_warehouse(warehouse)
    if not all(warehouse.table_exists(t) for t in BATCH_TABLES):
        return None
    [(is_full, first_day, last_day, rows)] = warehouse.rows(
        "select is_full, first_load_date, last_load_date, batch_rows from int_batch"
    )
    [[users]] = warehouse.rows("select count(*) from int_batch_users")
    late, late_from = late_events(warehouse)
    return BatchReport(
        is_full=bool(is_full),
        first_load_date=first_day,
        last_load_date=last_day,
        batch_rows=rows,
        users_recomputed=users,
        late_events=late,
        late_events_from=late_from,
    )
