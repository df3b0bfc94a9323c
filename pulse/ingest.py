"""Landing files -> ``raw.events`` and ``raw.events_quarantine`` in DuckDB, one day at a time.

A day's partition is the folder ``landing/events/<YYYY-MM-DD>/``: the events *received* that day.
An event's ``event_time`` may be earlier (a late arrival); partitioning by the day a file landed is what
makes a re-run exact: re-ingesting a day replaces precisely the rows that day's files contributed.

Every line read ends in exactly one of the two tables, so per partition
``lines_read = accepted + quarantined``. Validation is one SQL pass generated from
:mod:`pulse.contract`: it scales with DuckDB, not with a Python loop per line.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pulse.contract import EARLIEST_EVENT_TIME, EVENT_TYPES, FIELDS, FUTURE_TOLERANCE, RFC3339_PATTERN, Field

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED_SUFFIXES = JSON_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES

RAW_SCHEMA = "raw"
EVENTS_TABLE = f"{RAW_SCHEMA}.events"
FILES_TABLE = f"{RAW_SCHEMA}.ingested_files"
QUARANTINE_TABLE = f"{RAW_SCHEMA}.events_quarantine"
# What re-ingesting a day removed (its previous rows' keys), so dbt's next incremental run revisits those
# users even when the new files no longer hold their events; dbt prunes it once a run has committed.
RETRACTED_TABLE = f"{RAW_SCHEMA}.events_retracted"
# What raw.ingested_files records of each landing file besides its name: size and mtime when it was read.
FINGERPRINT_COLUMNS = ("file_bytes", "file_mtime_ns")
# ... and the validation settings it was read under (IngestOptions.fingerprint): a day ingested under another
# floor, future tolerance or row size limit is ingested again, so raising the floor admits what it quarantined.
OPTIONS_COLUMN = "ingest_options"

_SQL_TYPES = {
    "string": "varchar",
    "timestamp": "timestamp",
    "double": "double",
    "bigint": "bigint",
    "boolean": "boolean",
    "json": "varchar",
}


class IngestError(RuntimeError):
    """A landing file that cannot be read at all. The message names the file."""


@dataclass(frozen=True)
class IngestOptions:
    max_row_bytes: int = 64 * 1024
    # Events before this (UTC) are quarantined: clock resets, epoch-0 defaults, test data.
    earliest_event_time: datetime = EARLIEST_EVENT_TIME
    # An event may be at most this far after the end of the day its file landed.
    future_tolerance: timedelta = FUTURE_TOLERANCE

    @classmethod
    def from_settings(cls, settings: Any) -> IngestOptions:
        """Options from the settings door's ``earliest_event_time`` (ISO date or datetime, UTC unless it says
        otherwise), ``future_tolerance_hours`` and ``max_row_bytes`` (pulse.settings)."""
        text = settings.earliest_event_time
        try:
            floor = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"earliest_event_time={text!r}: not a date or a date and time") from None
        if floor.tzinfo is not None:
            floor = floor.astimezone(UTC).replace(tzinfo=None)
        return cls(
            max_row_bytes=int(settings.max_row_bytes),
            earliest_event_time=floor,
            future_tolerance=timedelta(hours=float(settings.future_tolerance_hours)),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestOptions:
        """:meth:`from_settings` with only these three settings read through the door (settings.toml, then
        PULSE_EARLIEST_EVENT_TIME, PULSE_FUTURE_TOLERANCE_HOURS, PULSE_MAX_ROW_BYTES of ``environ``). A value that
        does not parse raises ValueError (SettingsError) naming where it was set and the value."""
        from pulse.settings import group_settings

        return cls.from_settings(
            group_settings(("earliest_event_time", "future_tolerance_hours", "max_row_bytes"), environ)
        )

    @property
    def fingerprint(self) -> str:
        """The settings that decide what is accepted, as recorded in raw.ingested_files."""
        return (
            f"earliest_event_time={self.earliest_event_time.isoformat()};"
            f"future_tolerance_s={self.future_tolerance.total_seconds():g};max_row_bytes={self.max_row_bytes}"
        )


@dataclass
class DayResult:
    day: date
    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    late_events: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # Files with no lines at all: nothing to accept or quarantine, but worth a look (a broken export?).
    empty_files: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.lines_read == self.accepted + self.quarantined


# ---------------------------------------------------------------------------------------------- reading


def day_folder(events_landing: Path, day: date) -> Path:
    return events_landing / day.isoformat()


def files_for_day(events_landing: Path, day: date) -> list[Path]:
    folder = day_folder(events_landing, day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUPPORTED_SUFFIXES))


def landed_days(events_landing: Path) -> list[date]:
    """The days that have a landing folder with at least one supported file."""
    days = []
    if events_landing.is_dir():
        for folder in sorted(events_landing.iterdir()):
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if files_for_day(events_landing, day):
                days.append(day)
    return days


def file_fingerprint(events_landing: Path, path: Path) -> tuple[str, int, int]:
    """(name relative to the landing zone, size in bytes, modification time in ns): what raw.ingested_files
    records of a file when it is read, and what :func:`changed_days` compares with."""
    stat = path.stat()
    return str(path.relative_to(events_landing)), stat.st_size, stat.st_mtime_ns


def changed_days(
    con: duckdb.DuckDBPyConnection, events_landing: Path, options: IngestOptions | None = None
) -> list[date]:
    """The landing days whose files are not the ones raw.ingested_files recorded when the day was last
    ingested: a day never ingested, a file added, removed or rewritten (another size or modification time),
    or a day ingested before the warehouse recorded fingerprints; with ``options``, also a day ingested under
    other validation settings (:func:`days_ingested_under_other_options`). A day without landing files is never
    changed: files gone from the landing zone do not take back what was ingested from them (re-ingest the day
    explicitly for that). Only reads: a read-only connection will do, and a warehouse without raw tables
    (every landed day is changed)."""
    days = landed_days(events_landing)
    recorded = _recorded_fingerprints(con)

    def current(day: date) -> set[tuple[str, int, int]]:
        try:
            return {file_fingerprint(events_landing, path) for path in files_for_day(events_landing, day)}
        except OSError:  # a file removed or replaced while listing: changed, whatever it was
            return set()

    other_options = set(days_ingested_under_other_options(con, options)) if options is not None else set()
    return [day for day in days if day not in recorded or current(day) != recorded[day] or day in other_options]


def days_ingested_under_other_options(con: duckdb.DuckDBPyConnection, options: IngestOptions) -> list[date]:
    """The ingested days whose files were validated under other settings than ``options`` (another
    PULSE_EARLIEST_EVENT_TIME, PULSE_FUTURE_TOLERANCE_HOURS or PULSE_MAX_ROW_BYTES). A file recorded without
    them (ingested by an older version) counts as ingested under ``options``: nothing says otherwise."""
    if OPTIONS_COLUMN not in _columns(con, FILES_TABLE):
        return []
    rows = con.execute(
        f"""select distinct load_date from {FILES_TABLE}
        where {OPTIONS_COLUMN} is not null and {OPTIONS_COLUMN} <> ? order by 1""",
        [options.fingerprint],
    ).fetchall()
    return [day for (day,) in rows]


def _columns(con: duckdb.DuckDBPyConnection, qualified_table: str) -> set[str]:
    schema, table = qualified_table.split(".")
    return {
        name
        for (name,) in con.execute(
            """select column_name from duckdb_columns()
            where database_name = current_database() and schema_name = ? and table_name = ?""",
            [schema, table],
        ).fetchall()
    }


def _recorded_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[date, set[tuple[str, int, int]]]:
    """Per ingested day, its files' fingerprints; {} when the warehouse has no table with them yet."""
    if not set(FINGERPRINT_COLUMNS) <= _columns(con, FILES_TABLE):
        return {}
    recorded: dict[date, set[tuple[str, int, int]]] = {}
    rows = con.execute(f"select load_date, source_file, file_bytes, file_mtime_ns from {FILES_TABLE}").fetchall()
    for day, name, size, mtime_ns in rows:
        # A file recorded without a fingerprint (ingested by an older version) matches no file on disk.
        recorded.setdefault(day, set()).add((name, size, mtime_ns))
    return recorded


def split_lines(data: bytes) -> tuple[np.ndarray, pa.Array]:
    """Split a buffer on '\\n' without a Python loop: (1-based line numbers, binary array of lines).

    A final line without a newline counts; the empty string after a final newline does not. A trailing
    '\\r' (CRLF files) is dropped from each line.
    """
    if not data:
        return np.zeros(0, dtype=np.int64), pa.array([], type=pa.large_binary())
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if starts[-1] == len(buf):  # the file ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    ends = ends - has_cr
    # Drop the separators ('\n' and the stripped '\r') so the lines sit back to back in one buffer.
    keep = np.ones(len(buf), dtype=bool)
    keep[newlines] = False
    keep[ends[has_cr]] = False
    compact = buf[keep]
    lengths = ends - starts
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    arr = pa.Array.from_buffers(
        pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(compact.tobytes())]
    )
    return np.arange(1, len(lengths) + 1, dtype=np.int64), arr


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"cannot read landing file {path}: {exc}") from exc


def read_json_lines(path: Path) -> pa.Table:
    """A JSONL file as (line_number, raw) rows; parsing happens later, in SQL."""
    numbers, raw = split_lines(_read_bytes(path))
    return pa.table({"line_number": pa.array(numbers), "raw": raw})


def _timestamps_as_rfc3339(table: pa.Table) -> pa.Table:
    """Typed timestamp columns (Parquet) as RFC 3339 strings in UTC; a timestamp without a zone is UTC."""
    for i, column_type in enumerate(table.schema):
        if pa.types.is_timestamp(column_type.type):
            column = table.column(i)
            if column_type.type.tz is not None:
                column = column.cast(pa.timestamp(column_type.type.unit, "UTC"))
            text = pc.binary_join_element_wise(pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"), "Z", "")
            table = table.set_column(i, column_type.name, text)
    return table


def _rows_as_json(table: pa.Table, first_line: int) -> pa.Table:
    """Tabular rows (CSV, Parquet) as JSON objects, so they pass the same validation as JSONL."""
    table = _timestamps_as_rfc3339(table)
    con = duckdb.connect()
    con.register("t", table)
    rel = con.sql("select to_json(t)::varchar as raw from t")
    raw = rel.to_arrow_table().column("raw").cast(pa.large_binary())
    numbers = np.arange(first_line, first_line + len(raw), dtype=np.int64)
    con.close()
    return pa.table({"line_number": pa.array(numbers), "raw": raw})


def read_csv_rows(path: Path) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """CSV rows as JSON objects with all values as strings, plus rows that do not parse (line, text, why)."""
    bad: list[tuple[int, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        why = f"CSV row has {row.actual_columns} columns, header has {row.expected_columns}"
        bad.append((int(row.number or 0), row.text, why))
        return "skip"

    try:
        data = _read_bytes(path)
        first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        header = next(csv.reader([first_line]), [])
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        if not data:
            return pa.table({"line_number": pa.array([], pa.int64()), "raw": pa.array([], pa.large_binary())}), []
        raise IngestError(f"cannot read landing file {path}: {exc}") from exc
    if bad:
        # Rows are numbered from the header (line 1); skipped rows shift the later ones.
        return _number_csv_rows(table, bad), bad
    return _rows_as_json(table, first_line=2), bad


def _number_csv_rows(table: pa.Table, bad: list[tuple[int, str, str]]) -> pa.Table:
    rows = _rows_as_json(table, first_line=0)
    bad_lines = sorted(n for n, _, _ in bad)
    numbers = []
    line, b = 2, 0
    for _ in range(len(rows)):
        while b < len(bad_lines) and bad_lines[b] == line:
            line += 1
            b += 1
        numbers.append(line)
        line += 1
    return pa.table({"line_number": pa.array(numbers, pa.int64()), "raw": rows.column("raw")})


def read_parquet_rows(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise IngestError(f"cannot read landing file {path}: {exc}") from exc
    return _rows_as_json(table, first_line=1)


# ---------------------------------------------------------------------------------------------- schema


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    columns = ",\n  ".join(f"{f.name} {_SQL_TYPES[f.type]}" for f in FIELDS)
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    con.execute(
        f"""
        create table if not exists {EVENTS_TABLE} (
          {columns},
          load_date date not null,
          source_file varchar not null,
          source_line bigint not null,
          ingested_at timestamp not null
        )"""
    )
    # A warehouse created under an older contract gets the fields added since (they are all optional).
    existing = {row[0] for row in con.execute(f"select column_name from (describe {EVENTS_TABLE})").fetchall()}
    for f in FIELDS:
        if f.name not in existing:
            con.execute(f"alter table {EVENTS_TABLE} add column {f.name} {_SQL_TYPES[f.type]}")
    con.execute(
        f"""
        create table if not exists {FILES_TABLE} (
          load_date date not null,
          source_file varchar not null,
          lines_read bigint not null,
          ingested_at timestamp not null,
          file_bytes bigint,
          file_mtime_ns bigint,
          ingest_options varchar
        )"""
    )
    # The file's size and modification time when it was read (see changed_days); an older warehouse gets the
    # columns empty, so its days count as changed until they are ingested again.
    existing = {row[0] for row in con.execute(f"select column_name from (describe {FILES_TABLE})").fetchall()}
    for name in FINGERPRINT_COLUMNS:
        if name not in existing:
            con.execute(f"alter table {FILES_TABLE} add column {name} bigint")
    if OPTIONS_COLUMN not in existing:
        con.execute(f"alter table {FILES_TABLE} add column {OPTIONS_COLUMN} varchar")
    con.execute(
        f"""
        create table if not exists {RETRACTED_TABLE} (
          event_id varchar,
          event_type varchar,
          event_time timestamp,
          user_id varchar,
          anonymous_id varchar,
          page_view_id varchar,
          load_date date not null,
          retracted_at timestamp not null
        )"""
    )
    con.execute(
        f"""
        create table if not exists {QUARANTINE_TABLE} (
          load_date date not null,
          source_file varchar not null,
          line_number bigint not null,
          raw_line varchar,
          reason varchar not null,
          quarantined_at timestamp not null
        )"""
    )


# ---------------------------------------------------------------------------------------------- validation


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cast(f: Field, v: str) -> str | None:
    """The one cast of a field's extracted text (computed once, used by checks and output)."""
    if f.type == "timestamp":
        return f"try_cast({v} as timestamptz)"
    if f.type in ("double", "bigint"):
        return f"try_cast({v} as double)"
    if f.type == "boolean":
        return f"try_cast({v} as boolean)"
    return None


def _field_checks(f: Field, v: str, t: str) -> list[str]:
    """SQL expressions that are a reason string when ``f`` breaks the contract. ``v`` is the extracted
    text, ``t`` the column holding its cast (see :func:`_cast`)."""
    checks: list[str] = []
    if f.required:
        checks.append(f"case when coalesce({v}, '') = '' then 'missing required field {f.name}' end")
    if f.type == "timestamp":
        checks.append(
            f"case when {v} is not null and ({t} is null or not regexp_matches({v}, {_sql_str(RFC3339_PATTERN)}))"
            f" then '{f.name} is not an RFC 3339 timestamp: ' || left({v}, 40) end"
        )
    elif f.type in ("double", "bigint"):
        kind = "a number" if f.type == "double" else "an integer"
        broken = f"{t} is null" if f.type == "double" else f"try_cast({t} as bigint) is null or {t} <> floor({t})"
        checks.append(f"case when {v} is not null and ({broken}) then '{f.name} is not {kind}' end")
        if f.min_value is not None:
            checks.append(f"case when {t} < {f.min_value} then '{f.name} is below {f.min_value:g}' end")
        if f.max_value is not None:
            checks.append(f"case when {t} > {f.max_value} then '{f.name} is above {f.max_value:g}' end")
    elif f.type == "boolean":
        checks.append(f"case when {v} is not null and {t} is null then '{f.name} is not a boolean' end")
    elif f.type == "json":
        checks.append(
            f"case when {v} is not null and coalesce(try(json_type({v})), '') <> 'OBJECT'"
            f" then '{f.name} is not a JSON object' end"
        )
    return checks


def _typed(f: Field, v: str, t: str) -> str:
    if f.type == "timestamp":
        return f"({t} at time zone 'UTC')"
    if f.type == "bigint":
        return f"try_cast({t} as bigint)"
    if f.type in ("double", "boolean"):
        return t
    return f"nullif({v}, '')" if f.type == "string" else v


def validation_sql(lines_view: str, options: IngestOptions) -> str:
    """One SELECT over ``lines_view(load_date date, source_file, line_number, raw blob)`` adding ``reason``
    (null = valid) and one typed column per contract field. Each line is parsed once (one json_extract_string
    with every field's path) and each field cast once. The future limit is per row (its landing day's), so one
    statement validates the files of many landing days: DuckDB spends ~0.1 s planning this statement, which a
    history of small days (a shop's orders over years) would otherwise pay once per file."""
    paths = ", ".join(_sql_str(f"$.{f.name}") for f in FIELDS)
    values = {f.name: f"v[{i + 1}]" for i, f in enumerate(FIELDS)}
    casts = {f.name: f"cast_{f.name}" for f in FIELDS if _cast(f, values[f.name])}
    cast_cols = "".join(f",\n        {_cast(f, values[f.name])} as {casts[f.name]}" for f in FIELDS if f.name in casts)
    field_checks = [c for f in FIELDS for c in _field_checks(f, values[f.name], casts.get(f.name, ""))]
    known = ", ".join(_sql_str(t) for t in EVENT_TYPES)
    et = values["event_type"]
    field_checks.append(
        f"case when {et} is not null and {et} not in ({known})"
        f" and not ({et} like 'custom.%' and length({et}) > 7)"
        f" then 'unknown event_type: ' || left({et}, 40) end"
    )
    field_checks.append(
        f"case when coalesce({values['user_id']}, '') = '' and coalesce({values['anonymous_id']}, '') = ''"
        " then 'missing identity: neither user_id nor anonymous_id' end"
    )
    floor = options.earliest_event_time.isoformat(sep=" ")
    tolerance_us = int(options.future_tolerance / timedelta(microseconds=1))
    ceiling = f"(cast(load_date as timestamp) + interval 1 day + to_microseconds({tolerance_us}))"
    event_time = _typed(FIELDS[2], values["event_time"], casts["event_time"])
    field_checks.append(f"case when {event_time} < timestamp '{floor}' then 'event_time before {floor}' end")
    field_checks.append(
        f"case when {event_time} > {ceiling}"
        f" then 'event_time in the future: after ' || strftime({ceiling}, '%Y-%m-%d %H:%M:%S') end"
    )
    typed_cols = ",\n      ".join(f"{_typed(f, values[f.name], casts.get(f.name, ''))} as {f.name}" for f in FIELDS)
    return f"""
    with decoded as (
      select load_date, source_file, line_number, raw, try(decode(raw)) as txt, octet_length(raw) as nbytes
      from {lines_view}
    ),
    extracted as (
      select *,
        case when txt is not null and nbytes <= {options.max_row_bytes}
          then try(json_extract_string(txt, [{paths}])) end as v
      from decoded
    ),
    typed as (
      select *{cast_cols}
      from extracted
    ),
    checked as (
      select *,
        case
          when txt is null then 'invalid UTF-8'
          when nbytes > {options.max_row_bytes} then 'row exceeds {options.max_row_bytes} bytes'
          when trim(txt) = '' then 'empty line'
          when v is null then 'malformed JSON'
          when left(ltrim(txt), 1) <> '{{' then 'not a JSON object: ' || lower(coalesce(try(json_type(txt)), '?'))
          else nullif(concat_ws('; ', {", ".join(field_checks)}), '')
        end as reason
      from typed
    )
    select load_date, source_file, line_number, coalesce(txt, raw::varchar) as raw_line, reason,
      {typed_cols}
    from checked
    """


# ---------------------------------------------------------------------------------------------- loading

# Landing days are ingested in batches of about this many bytes of lines (one transaction and a few statements
# per batch; a day larger than this is a batch of its own): memory stays bounded by the batch or the largest
# day, and a history of thousands of small days costs a few statements, not a few per day.
BATCH_BYTES = 64 << 20


def _read_file(path: Path) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    name = path.name
    if name.endswith(JSON_SUFFIXES):
        return read_json_lines(path), []
    if name.endswith(CSV_SUFFIXES):
        return read_csv_rows(path)
    if name.endswith(PARQUET_SUFFIXES):
        return read_parquet_rows(path), []
    raise IngestError(f"cannot read landing file {path}: unsupported file type")


@dataclass
class _LandedFile:
    day: date
    rel_name: str
    stat: tuple[int, int]  # size and mtime (ns) before it was read
    lines: pa.Table  # (load_date, source_file, line_number, raw)
    bad_csv: list[tuple[int, str, str]]

    @property
    def lines_read(self) -> int:
        return len(self.lines) + len(self.bad_csv)


def _read_day(events_landing: Path, day: date, result: DayResult) -> list[_LandedFile]:
    files = []
    for path in files_for_day(events_landing, day):
        # Size and mtime before reading: a file rewritten while it is read is recorded as it was before, so
        # changed_days sees it as changed afterwards.
        try:
            rel_name, size, mtime_ns = file_fingerprint(events_landing, path)
        except OSError as exc:
            raise IngestError(f"cannot read landing file {path}: {exc}") from exc
        table, bad_csv = _read_file(path)
        n = len(table)
        lines = pa.table(
            {
                "load_date": pa.array([day] * n, pa.date32()),
                "source_file": pa.array([rel_name] * n, pa.string()),
                "line_number": table.column("line_number"),
                "raw": table.column("raw"),
            }
        )
        landed = _LandedFile(day, rel_name, (size, mtime_ns), lines, bad_csv)
        files.append(landed)
        result.files.append(rel_name)
        result.lines_read += landed.lines_read
        if landed.lines_read == 0:
            result.empty_files.append(rel_name)
    return files


def ingest_day(
    con: duckdb.DuckDBPyConnection,
    events_landing: Path,
    day: date,
    options: IngestOptions | None = None,
    ingested_at: datetime | None = None,
) -> DayResult:
    """Replace the partition ``day`` of the raw tables with what its landing files hold.

    Runs in one transaction: a file that cannot be read raises :class:`IngestError` and leaves the
    partition as it was.
    """
    return ingest_days(con, events_landing, [day], options, ingested_at)[0]


def ingest_days(
    con: duckdb.DuckDBPyConnection,
    events_landing: Path,
    days: Sequence[date],
    options: IngestOptions | None = None,
    ingested_at: datetime | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> list[DayResult]:
    """Replace the partitions ``days`` of the raw tables with what their landing files hold; one result per
    day, in order. Consecutive days are read and written in batches (:data:`BATCH_BYTES`), each in one
    transaction: a file that cannot be read raises :class:`IngestError` before its batch writes anything (the
    batches before it stay ingested)."""
    options = options or IngestOptions()
    create_raw_tables(con)
    results: list[DayResult] = []
    batch: list[tuple[DayResult, list[_LandedFile]]] = []
    size = 0
    for day in days:
        result = DayResult(day=day)
        files = _read_day(events_landing, day, result)
        batch.append((result, files))
        size += sum(f.lines.nbytes for f in files)
        if size >= batch_bytes:
            results += _write_batch(con, batch, options, ingested_at, batch_bytes)
            batch, size = [], 0
    if batch:
        results += _write_batch(con, batch, options, ingested_at, batch_bytes)
    return results


def _write_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[tuple[DayResult, list[_LandedFile]]],
    options: IngestOptions,
    ingested_at: datetime | None,
    chunk_bytes: int,
) -> list[DayResult]:
    days = [result.day for result, _ in batch]
    files = [f for _, day_files in batch for f in day_files]
    ingested_at = ingested_at or _next_ingested_at(con)
    in_batch = "list_contains($days, load_date)"
    con.execute("begin transaction")
    try:
        con.execute(
            f"""insert into {RETRACTED_TABLE}
            select event_id, event_type, event_time, user_id, anonymous_id, page_view_id, load_date, $at
            from {EVENTS_TABLE} where {in_batch}""",
            {"days": days, "at": ingested_at},
        )
        for table in (EVENTS_TABLE, QUARANTINE_TABLE, FILES_TABLE):
            con.execute(f"delete from {table} where {in_batch}", {"days": days})
        # The lines go through validation in chunks of about chunk_bytes (a file is never split).
        chunk: list[pa.Table] = []
        chunk_size = 0
        for f in files:
            chunk.append(f.lines)
            chunk_size += f.lines.nbytes
            if chunk_size >= chunk_bytes:
                _load_lines(con, chunk, options, ingested_at)
                chunk, chunk_size = [], 0
        if chunk:
            _load_lines(con, chunk, options, ingested_at)
        bad_csv = [(f.day, f.rel_name, n, text, why) for f in files for n, text, why in f.bad_csv]
        if bad_csv:
            days_, names, numbers, texts, whys = zip(*bad_csv, strict=True)
            rows = pa.table(
                {
                    "load_date": pa.array(days_, pa.date32()),
                    "source_file": pa.array(names, pa.string()),
                    "line_number": pa.array(numbers, pa.int64()),
                    "raw_line": pa.array(texts, pa.string()),
                    "reason": pa.array(whys, pa.string()),
                }
            )
            con.register("bad_csv_rows", rows)
            try:
                con.execute(
                    f"""insert into {QUARANTINE_TABLE}
                    select load_date, source_file, line_number, raw_line, reason, $at from bad_csv_rows""",
                    {"at": ingested_at},
                )
            finally:
                con.unregister("bad_csv_rows")
        if files:
            rows = pa.table(
                {
                    "load_date": pa.array([f.day for f in files], pa.date32()),
                    "source_file": pa.array([f.rel_name for f in files], pa.string()),
                    "lines_read": pa.array([f.lines_read for f in files], pa.int64()),
                    "file_bytes": pa.array([f.stat[0] for f in files], pa.int64()),
                    "file_mtime_ns": pa.array([f.stat[1] for f in files], pa.int64()),
                }
            )
            con.register("ingested_files_rows", rows)
            try:
                con.execute(
                    f"""insert into {FILES_TABLE}
                    (load_date, source_file, lines_read, ingested_at, file_bytes, file_mtime_ns, {OPTIONS_COLUMN})
                    select load_date, source_file, lines_read, $at, file_bytes, file_mtime_ns, $options
                    from ingested_files_rows""",
                    {"at": ingested_at, "options": options.fingerprint},
                )
            finally:
                con.unregister("ingested_files_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    results = [result for result, _ in batch]
    _summarize(con, results)
    return results


def _next_ingested_at(con: duckdb.DuckDBPyConnection) -> datetime:
    """Now, but always after every ingested_at already in the table: dbt's incremental runs take the rows
    ingested after their watermark (a clock that steps back, or two loads in one microsecond, would hide
    rows from them otherwise)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    latest = con.execute(f"select max(ingested_at) from {EVENTS_TABLE}").fetchall()[0][0]
    return max(now, latest + timedelta(microseconds=1)) if latest is not None else now


def _load_lines(con: duckdb.DuckDBPyConnection, chunk: list[pa.Table], options: IngestOptions, at: datetime) -> None:
    """Validate lines of landing files (of any days) in one statement; write each to raw.events or quarantine."""
    # One contiguous table: DuckDB scans an Arrow table chunk by chunk, and thousands of tiny chunks (a file
    # each) cost far more than their rows.
    lines = pa.concat_tables(chunk).combine_chunks()
    con.register("landing_lines", lines)
    try:
        con.execute(f"create or replace temp table checked_lines as {validation_sql('landing_lines', options)}")
    finally:
        con.unregister("landing_lines")
    names = ", ".join(f.name for f in FIELDS)
    con.execute(
        f"""insert into {EVENTS_TABLE} ({names}, load_date, source_file, source_line, ingested_at)
        select {names}, load_date, source_file, line_number, ? from checked_lines where reason is null""",
        [at],
    )
    con.execute(
        f"""insert into {QUARANTINE_TABLE}
        select load_date, source_file, line_number, raw_line, reason, ? from checked_lines where reason is not null""",
        [at],
    )
    con.execute("drop table checked_lines")


def _summarize(con: duckdb.DuckDBPyConnection, results: list[DayResult]) -> None:
    """Each day's accepted, late and quarantined lines and its quarantine reasons, from the tables (a few
    statements for the batch). A reason carrying a value ("unknown event_type: foo") counts under its text
    before ': '."""
    by_day = {r.day: r for r in results}
    params = {"days": list(by_day)}
    for day, accepted, late in con.execute(
        f"""select load_date, count(*), count_if(cast(event_time as date) < load_date)
        from {EVENTS_TABLE} where list_contains($days, load_date) group by all""",
        params,
    ).fetchall():
        by_day[day].accepted, by_day[day].late_events = int(accepted), int(late)
    for day, quarantined in con.execute(
        f"select load_date, count(*) from {QUARANTINE_TABLE} where list_contains($days, load_date) group by all",
        params,
    ).fetchall():
        by_day[day].quarantined = int(quarantined)
    for day, kind, n in con.execute(
        f"""select load_date, split_part(one_reason, ': ', 1) as kind, count(*) as n
        from (select load_date, unnest(string_split(reason, '; ')) as one_reason
              from {QUARANTINE_TABLE} where list_contains($days, load_date))
        group by all order by load_date, n desc, kind""",
        params,
    ).fetchall():
        by_day[day].reasons[str(kind)] = int(n)


def reconciliation(con: duckdb.DuckDBPyConnection) -> list[tuple[date, int, int, int]]:
    """Per landing day: (day, lines read from files, rows in raw.events, rows in quarantine).

    Lines read are counted by the reader when the file is loaded; the other two are counted in the
    tables now, so a row lost or written twice since shows up as a mismatch.
    """
    rows = con.execute(
        f"""
        with files as (select load_date, sum(lines_read) as lines_read from {FILES_TABLE} group by all),
        accepted as (select load_date, count(*) as n from {EVENTS_TABLE} group by all),
        quarantined as (select load_date, count(*) as n from {QUARANTINE_TABLE} group by all)
        select files.load_date, files.lines_read, coalesce(accepted.n, 0), coalesce(quarantined.n, 0)
        from files
        left join accepted using (load_date)
        left join quarantined using (load_date)
        order by 1"""
    ).fetchall()
    return [(d, int(a), int(b), int(c)) for d, a, b, c in rows]
