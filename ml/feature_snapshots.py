"""How many feature snapshot dates the history allows and how many `feature_snapshots_max` kept: the dbt
model ``feature_snapshot_dates`` lists every date with ``is_kept``; this reads its figures so that a run can
warn (Dagster log, asset metadata, `pulse materialize` output) instead of dropping older history silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from pulse.core.warehouse import Warehouse, as_warehouse

SNAPSHOT_DATES = "feature_snapshot_dates"


@dataclass(frozen=True)
class SnapshotCoverage:
    kept: int  # snapshot dates computed (user_feature_snapshots)
    dropped: int  # older dates the history allows but feature_snapshots_max left out
    kept_from: date | None  # the oldest kept date
    latest: date | None
    dropped_from: date | None  # the oldest and newest dropped date
    dropped_to: date | None

    def describe(self) -> str:
        kept = f"feature snapshots: {self.kept} kept ({self.kept_from}..{self.latest})"
        if not self.dropped:
            return f"{kept}, none dropped"
        return (
            f"{kept}; {self.dropped} older snapshot dates dropped ({self.dropped_from}..{self.dropped_to}) by "
            f"feature_snapshots_max={self.kept}: the intent model trains without them. Raise feature_snapshots_max "
            f"to {self.kept + self.dropped} (or feature_snapshot_interval_days) to use the whole history"
        )


def snapshot_coverage(warehouse: Warehouse | duckdb.DuckDBPyConnection) -> SnapshotCoverage | None:
    """The figures of ``feature_snapshot_dates``, or None before dbt built it."""
    warehouse = as_warehouse(warehouse)
    if not warehouse.table_exists(SNAPSHOT_DATES):
        return None
    [(kept, dropped, kept_from, latest, dropped_from, dropped_to)] = warehouse.rows(
        f"""select
            count(case when is_kept then 1 end), count(case when not is_kept then 1 end),
            min(case when is_kept then as_of_date end), max(as_of_date),
            min(case when not is_kept then as_of_date end), max(case when not is_kept then as_of_date end)
        from {SNAPSHOT_DATES}"""
    )
    return SnapshotCoverage(
        kept=int(kept),
        dropped=int(dropped),
        kept_from=kept_from,
        latest=latest,
        dropped_from=dropped_from,
        dropped_to=dropped_to,
    )
