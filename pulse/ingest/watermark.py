"""The pipeline watermark: which ingestion of the landing files the models and the published snapshot cover.

Ingestion commits each landing day on its own (raw.ingested_files: every file's name, size, modification time,
the validation settings and ``ingested_at``). That a day is ingested does not mean that anything downstream
saw it: a run killed after ingestion, or failing in dbt, leaves the raw tables ahead of the models. So two
copies of raw.ingested_files record how far the rest got, each written when its step finished:

- ``raw.modelled_files``: by the dbt step, once `dbt build` built every model of the batch and committed it
  (:func:`batch_committed`): the ingested files the models now hold;
- ``raw.published_files``: by the publishing step (audience_exports), once the snapshot is published: a copy of
  ``raw.modelled_files``, what the published profiles and audiences were built from.

A landing day is unpublished (:func:`unpublished_days`) when its rows in raw.ingested_files are not exactly those
of raw.published_files (a file added, rewritten, re-ingested: ``ingested_at`` is part of the row). `pulse
materialize` runs again for those days even when their files are all ingested and unchanged; "nothing new"
means landing = ingested = published. Each copy replaces its table in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import duckdb

from pulse.ingest.raw_events import FILES_TABLE, RAW_SCHEMA, create_raw_tables

MODELLED_TABLE = f"{RAW_SCHEMA}.modelled_files"
PUBLISHED_TABLE = f"{RAW_SCHEMA}.published_files"
# What identifies one ingestion of one file (raw.ingested_files' columns).
COLUMNS = ("load_date", "source_file", "lines_read", "file_bytes", "file_mtime_ns", "ingest_options", "ingested_at")
# dbt commits the batch when every model with this tag succeeded (dbt_project/macros/incremental_batches.sql).
BATCH_TAG = "batch"


def _exists(con: duckdb.DuckDBPyConnection, qualified_table: str) -> bool:
    schema, table = qualified_table.split(".")
    return bool(
        con.execute(
            """select count(*) from duckdb_tables()
            where database_name = current_database() and schema_name = ? and table_name = ?""",
            [schema, table],
        ).fetchall()[0][0]
    )


def _copy(con: duckdb.DuckDBPyConnection, source: str, target: str) -> int:
    """Replace ``target`` with the rows of ``source`` (none when it does not exist), in one transaction."""
    columns = ", ".join(COLUMNS)
    con.execute("begin transaction")
    try:
        if _exists(con, source):
            con.execute(f"create or replace table {target} as select {columns} from {source}")
        else:
            con.execute(f"create or replace table {target} as select {columns} from {FILES_TABLE} where false")
        rows = con.execute(f"select count(*) from {target}").fetchall()[0][0]
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(rows)


def record_modelled(con: duckdb.DuckDBPyConnection) -> int:
    """After a `dbt build` that committed its batch: the models hold every ingested file. Returns the rows."""
    create_raw_tables(con)
    return _copy(con, FILES_TABLE, MODELLED_TABLE)


def record_published(con: duckdb.DuckDBPyConnection) -> int:
    """After a snapshot was published: it covers what the models held. Returns the rows."""
    create_raw_tables(con)
    return _copy(con, MODELLED_TABLE, PUBLISHED_TABLE)


def unpublished_days(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The landing days whose ingestion the published snapshot does not cover: their rows in raw.ingested_files
    differ from raw.published_files (every ingested day, before anything was published). Only reads."""
    if not _exists(con, FILES_TABLE):
        return []
    columns = ", ".join(COLUMNS)
    published = (
        PUBLISHED_TABLE if _exists(con, PUBLISHED_TABLE) else f"(select {columns} from {FILES_TABLE} where false)"
    )
    rows = con.execute(
        f"""select distinct load_date from (
            (select {columns} from {FILES_TABLE} except all select {columns} from {published})
            union all
            (select {columns} from {published} except all select {columns} from {FILES_TABLE})
        ) order by 1"""
    ).fetchall()
    return [day for (day,) in rows]


def batch_committed(manifest: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a dbt invocation committed its batch: every model tagged ``batch`` in the manifest succeeded
    (run_results.json's ``results``), as dbt's on-run-end hook `pulse_commit_batch` decides."""
    succeeded = {r.get("unique_id") for r in results if r.get("status") == "success"}
    batch_models = [
        uid
        for uid, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") == "model" and BATCH_TAG in node.get("tags", [])
    ]
    return bool(batch_models) and all(uid in succeeded for uid in batch_models)
