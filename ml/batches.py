"""Moving rows between the warehouse and pandas a batch at a time, so that memory holds one batch whatever the
table's size (scoring and segment assignment, docs/purchase-intent.md)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pandas as pd


def stream_frames(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of ``sql`` as non-empty frames of at most ``batch_rows`` rows (Arrow record batches). They are
    read through a second connection to the same database: a statement on ``con`` would end the stream, and
    callers write each batch back through ``con``."""
    reader = con.cursor().execute(sql).to_arrow_reader(batch_rows)
    for batch in reader:
        if batch.num_rows:
            yield batch.to_pandas()


def append_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Insert ``frame``'s rows into ``table`` (its columns in the table's order)."""
    con.register("pulse_appended_frame", frame)
    try:
        con.execute(f"insert into {table} select * from pulse_appended_frame")
    finally:
        con.unregister("pulse_appended_frame")
