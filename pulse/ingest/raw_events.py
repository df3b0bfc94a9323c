"""Landing files -> ``raw.events`` and ``raw.events_quarantine`` in DuckDB, one day at a time.

A day's partition is the folder ``landing/events/<YYYY-MM-DD>/``: the events *received* that day.
An event's ``event_time`` may be earlier (a late arrival); partitioning by the day a file landed is what
makes a re-run exact: re-ingesting a day replaces precisely the rows that day's files contributed.

Every line read ends in exactly one of the two tables, so per partition
``lines_read = accepted + quarantined``. Validation is one SQL pass generated from
:mod:`pulse.core.contract`: it scales with DuckDB, not with a Python loop per line.
"""

from __future__ import annotations

import csv
import gc
import gzip
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from operator import methodcaller
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pulse.core.contract import (
    CSV_ROW_WIDTH,
    EARLIEST_EVENT_TIME,
    FIELDS,
    FUTURE_TOLERANCE,
    INVALID_UTF8,
    MAX_ROW_BYTES,
    REASON_SEPARATOR,
    EventLimits,
    cast_sql,
    event_checks_sql,
    field_check_sql,
    line_checks_sql,
    sql_string,
    typed_sql,
)
from pulse.core.kill_points import INGEST_AFTER_COMMIT, INGEST_BEFORE_COMMIT, kill_point

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


# What one landing file may hold, read whole into memory (decompressed): a larger file, or one with more lines,
# fails the run naming it before it is read any further (a gzip bomb stops at the cap, not at the memory's end).
# Ingesting a file peaks at about 5x its decompressed size (DuckDB's validation included: 1.4 GB for a 255 MB
# JSON Lines file): the defaults keep that under the default memory setting (duckdb_memory, 2GB), and the
# collector's segments and the importers' files (written in parts: pulse.importers.common) under them.
MAX_FILE_BYTES = 256 << 20
MAX_FILE_LINES = 5_000_000


@dataclass(frozen=True)
class IngestOptions:
    max_row_bytes: int = MAX_ROW_BYTES
    # Events before this (UTC) are quarantined: clock resets, epoch-0 defaults, test data.
    earliest_event_time: datetime = EARLIEST_EVENT_TIME
    # An event may be at most this far after the end of the day its file landed.
    future_tolerance: timedelta = FUTURE_TOLERANCE
    # Caps per landing file (decompressed bytes, lines / rows): not part of the fingerprint, as they decide no
    # line's fate (a file over them is not ingested at all, and the run fails naming it).
    max_file_bytes: int = MAX_FILE_BYTES
    max_file_lines: int = MAX_FILE_LINES

    @classmethod
    def from_settings(cls, settings: Any) -> IngestOptions:
        """Options from the settings door's ``earliest_event_time`` (ISO date or datetime, UTC unless it says
        otherwise), ``future_tolerance_hours``, ``max_row_bytes``, ``max_file_bytes`` and ``max_file_lines``
        (pulse.core.settings)."""
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
            max_file_bytes=int(settings.max_file_bytes),
            max_file_lines=int(settings.max_file_lines),
        )

    @property
    def limits(self) -> EventLimits:
        """The contract's limits these options set (the same an event collected under these settings keeps)."""
        return EventLimits(self.earliest_event_time, self.future_tolerance, self.max_row_bytes)

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
    # Entries of the day's folder that are not read, and why (an unsupported name: notes.txt, x.jsonl.bz2).
    unsupported: list[LandingEntry] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.lines_read == self.accepted + self.quarantined


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LandingEntry:
    """An entry of the landing zone that ingestion does not read, and why."""

    name: str  # relative to the events landing zone (``2026-09-01/notes.txt``)
    why: str

    def __str__(self) -> str:
        return f"{self.name}: {self.why}"


# Compressions a name may carry that pulse does not read (gzip is read): said, never skipped silently.
OTHER_COMPRESSIONS = (".bz2", ".xz", ".zst", ".zstd", ".lz4", ".lzma", ".zip", ".7z", ".z", ".br", ".snappy", ".tgz")
SUPPORTED_TEXT = ".jsonl, .ndjson, .json, .csv (each optionally .gz) and .parquet, in any letter case"


def is_landing_file_name(name: str) -> bool:
    """A name ingestion reads: one of :data:`SUPPORTED_SUFFIXES`, in any letter case (``EXPORT.JSONL`` too)."""
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def _unsupported_why(path: Path) -> str:
    """Why an entry with an unsupported name is not read."""
    name = path.name.lower()
    try:
        is_dir = path.is_dir() and not path.is_symlink()
    except OSError:
        is_dir = False
    if is_dir:
        return "a folder inside a landing day: not read (a day's files sit directly in its folder)"
    for suffix in OTHER_COMPRESSIONS:
        if name.endswith(suffix) and is_landing_file_name(name.removesuffix(suffix) + ".gz"):
            return f"{suffix} compression is not read: recompress it with gzip (.gz) or decompress it"
    return f"not a landing file name: not read (read: {SUPPORTED_TEXT})"


def day_folder(events_landing: Path, day: date) -> Path:
    return events_landing / day.isoformat()


def _day_entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []


def files_for_day(events_landing: Path, day: date) -> list[Path]:
    """The entries of a landing day named like landing files (:func:`is_landing_file_name`), whatever they are:
    a directory, FIFO or symbolic link with such a name is not a file ingestion reads, and reading it fails the
    run naming it (:func:`open_landing_file`) rather than leaving it out silently."""
    return [p for p in _day_entries(day_folder(events_landing, day)) if is_landing_file_name(p.name)]


def unsupported_in_day(events_landing: Path, day: date) -> list[LandingEntry]:
    """The entries of a landing day that ingestion does not read (an unsupported name), and why. Hidden entries
    (a name starting with ``.``) are writes in progress by convention (the collector's ``.<name>.tmp``) and are
    not listed."""
    return [
        LandingEntry(str(p.relative_to(events_landing)), _unsupported_why(p))
        for p in _day_entries(day_folder(events_landing, day))
        if not is_landing_file_name(p.name) and not p.name.startswith(".")
    ]


def unsupported_entries(events_landing: Path) -> list[LandingEntry]:
    """Every entry of the events landing zone that no run reads, and why: entries beside the day folders
    (``events/notes.txt``, ``events/2026-9-1/``: not ``<YYYY-MM-DD>``) and each day's unsupported names
    (:func:`unsupported_in_day`). Hidden entries aside. Reads only the file system."""
    found: list[LandingEntry] = []
    for entry in _day_entries(events_landing):
        if entry.name.startswith("."):
            continue
        day = day_of_folder(entry.name)
        if day is None:
            found.append(LandingEntry(entry.name, "not a day folder (events/<YYYY-MM-DD>/): not read"))
        elif not entry.is_dir():
            found.append(LandingEntry(entry.name, "not a folder: a landing day is a folder of files; not read"))
        else:
            found += unsupported_in_day(events_landing, day)
    return found


def day_of_folder(name: str) -> date | None:
    """The day a folder of the landing zone is named after (``2026-09-01``); None for any other name (``20260901``
    too, which Python's date.fromisoformat would take)."""
    try:
        day = date.fromisoformat(name)
    except ValueError:
        return None
    return day if day.isoformat() == name else None


def landed_days(events_landing: Path) -> list[date]:
    """The days that have a landing folder with at least one entry named like a landing file."""
    days = []
    for folder in _day_entries(events_landing):
        day = day_of_folder(folder.name)
        if day is not None and files_for_day(events_landing, day):
            days.append(day)
    return days


def file_fingerprint(events_landing: Path, path: Path) -> tuple[str, int, int]:
    """(name relative to the landing zone, size in bytes, modification time in ns): what raw.ingested_files
    records of a file when it is read, and what :func:`changed_days` compares with. The entry itself is
    looked at (lstat): a symbolic link is not followed."""
    stat = path.lstat()
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


def split_lines(data: bytes | bytearray) -> tuple[np.ndarray, pa.Array]:
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
    del keep
    lengths = ends - starts
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    # py_buffer shares the numpy array's memory (no copy of the file's bytes)
    arr = pa.Array.from_buffers(pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(compact)])
    return np.arange(1, len(lengths) + 1, dtype=np.int64), arr


# Bytes read at a time from a landing file (decompressed): the cap is checked after each.
READ_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _cannot_read(path: Path, why: str) -> IngestError:
    return IngestError(f"cannot read landing file {path}: {why}")


def open_landing_file(path: Path, events_landing: Path) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading, with its status, when it is a regular file inside the landing zone; otherwise
    :class:`IngestError` naming it and why: a symbolic link (never followed, whatever it points to: a link out of
    the landing zone would copy that file into raw.events_quarantine), a directory, a FIFO (opened without
    blocking and never read: a FIFO would block the run until something writes to it), a socket or a device, or a
    day folder that leads out of the landing zone (itself a link)."""
    try:
        inside = path.parent.resolve().is_relative_to(events_landing.resolve())
    except OSError as exc:
        raise _cannot_read(path, exc.strerror or str(exc)) from exc
    if not inside:
        raise _cannot_read(
            path, f"its folder leads out of the landing zone {events_landing} (a symbolic link): not read"
        )
    try:
        entry = os.lstat(path)
    except OSError as exc:
        raise _cannot_read(path, exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(entry.st_mode):
        raise _cannot_read(
            path,
            "a symbolic link: only regular files inside the landing zone are read (move or copy the file there "
            "instead of linking it)",
        )
    if not stat.S_ISREG(entry.st_mode):
        raise _cannot_read(path, f"{_kind(entry.st_mode)}, not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # replaced by a link or a FIFO since lstat: O_NOFOLLOW / O_NONBLOCK still hold
    except OSError as exc:
        raise _cannot_read(path, exc.strerror or str(exc)) from exc
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise _cannot_read(path, f"{_kind(opened.st_mode)}, not a regular file")
    return os.fdopen(fd, "rb"), opened


def _too_large(path: Path, limit: int, compressed: bool) -> IngestError:
    return _cannot_read(
        path,
        f"more than {limit:,} bytes{' once decompressed' if compressed else ''}, the limit per landing file "
        "(setting max_file_bytes, PULSE_MAX_FILE_BYTES): split it into smaller files, or raise the limit if the "
        "memory allows (ingesting a file takes about 5 times its size); nothing of it is ingested",
    )


def _too_many_lines(path: Path, limit: int, what: str = "lines") -> IngestError:
    return _cannot_read(
        path,
        f"more than {limit:,} {what}, the limit per landing file (setting max_file_lines, PULSE_MAX_FILE_LINES): "
        "split it into smaller files, or raise the limit; nothing of it is ingested",
    )


def read_capped(fh: BinaryIO, path: Path, size: int, options: IngestOptions) -> bytes | bytearray:
    """The bytes of a landing file (gzip, by its name, decompressed as a stream), at most
    ``options.max_file_bytes`` of them and ``options.max_file_lines`` lines: more fails naming the file, the limit
    and the setting, without reading further (a gzip bomb stops at the cap). ``size``: the file's size on disk."""
    cap = options.max_file_bytes
    compressed = path.name.lower().endswith(".gz")
    try:
        if not compressed:
            if size > cap:
                raise _too_large(path, cap, compressed=False)
            data: bytes | bytearray = fh.read(cap + 1)
        else:
            data = bytearray()
            with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                while chunk := stream.read(min(READ_CHUNK, cap + 1 - len(data))):
                    data += chunk
                    if len(data) > cap:
                        break
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(path, str(exc)) from exc
    if len(data) > cap:
        raise _too_large(path, cap, compressed)
    lines = data.count(b"\n") + (1 if data and data[-1] != 10 else 0)
    if lines > options.max_file_lines:
        raise _too_many_lines(path, options.max_file_lines)
    return data


def json_lines_table(data: bytes | bytearray) -> pa.Table:
    """A JSON Lines file's bytes as (line_number, raw) rows; parsing happens later, in SQL."""
    numbers, raw = split_lines(data)
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


def _rows_as_json(table: pa.Table, numbers: np.ndarray) -> pa.Table:
    """Tabular rows (CSV, Parquet) as JSON objects, so they pass the same validation as JSONL; ``numbers``: each
    row's line (CSV) or row number (Parquet)."""
    table = _timestamps_as_rfc3339(table)
    con = duckdb.connect()
    try:
        con.register("t", table)
        raw = con.sql("select to_json(t)::varchar as raw from t").to_arrow_table().column("raw")
    finally:
        con.close()
    return pa.table({"line_number": pa.array(numbers, pa.int64()), "raw": raw.cast(pa.large_binary())})


BadRow = tuple[int, str, str]  # (line, raw text, reason): a CSV record quarantined before validation


# CSV records turned into Arrow columns at a time (the Python objects of a batch are freed after it).
CSV_BATCH_ROWS = 65536
# Bytes split into lines at a time (cut after a '\n', so a CRLF is never cut in two).
CSV_CHUNK_BYTES = 16 << 20
_DECODE = methodcaller("decode", "utf-8", "surrogateescape")
_SPLIT = methodcaller("splitlines", True)  # bytes: at LF, CRLF or CR only, each line keeping its end


def _chunks(data: bytes | bytearray, size: int) -> Iterator[bytes | bytearray]:
    """``data`` in pieces of about ``size`` bytes, each ending at a line end (LF, CRLF, CR): never a line, nor a
    CRLF, cut in two (a line longer than ``size`` is one piece)."""
    start, n = 0, len(data)
    while start < n:
        if start + size >= n:
            yield data[start:]
            return
        cut = max(data.rfind(b"\n", start, start + size), data.rfind(b"\r", start, start + size))
        if cut < start:  # no line end in the window: up to the end of this long line
            ends = [i for i in (data.find(b"\n", start + size), data.find(b"\r", start + size)) if i >= 0]
            cut = min(ends) if ends else n - 1
        end = cut + 1
        if data[cut : cut + 1] == b"\r" and data[end : end + 1] == b"\n":
            end += 1  # a CRLF stays whole
        yield data[start:end]
        start = end


def _csv_lines(data: bytes | bytearray) -> Iterator[str]:
    """The lines of a CSV file's bytes, each with its end (LF, CRLF or CR; none for a last line without one),
    decoded (invalid bytes as surrogates): what csv.reader is fed, so reader.line_num counts the file's lines
    whatever its line endings. Split and decoded in C."""
    return map(_DECODE, chain.from_iterable(map(_SPLIT, _chunks(data, CSV_CHUNK_BYTES))))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while millions of lists (CSV records) are created and kept: it would
    otherwise scan them all again and again (half the time of reading a CSV)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def csv_table(data: bytes | bytearray, path: Path, options: IngestOptions) -> tuple[pa.Table, list[BadRow]]:
    """:func:`_csv_table` with the garbage collector paused (:func:`_gc_paused`) and no field size limit below the
    file's."""
    limit = csv.field_size_limit()
    try:
        # a field as large as the file is a long row (quarantined as such), not an error
        csv.field_size_limit(max(limit, min(options.max_file_bytes, 2**31 - 1)))
        with _gc_paused():
            return _csv_table(data, path, options)
    finally:
        csv.field_size_limit(limit)  # the process's limit as it was (the importers set their own)


def _csv_table(data: bytes | bytearray, path: Path, options: IngestOptions) -> tuple[pa.Table, list[BadRow]]:
    """A CSV file's records after its header as JSON objects of strings (an empty cell is absent), each numbered
    with the line it starts on (header = line 1; a quoted field may span lines), plus the records quarantined as
    they are (line, raw text, reason): invalid UTF-8 (that record only, as in JSON Lines) or another number of
    fields than the header. Line endings LF, CRLF or CR alike; blank lines hold no record; a file with no header
    (empty, or only blank lines) has no rows. The lines are split, decoded and parsed in C (bytes.splitlines,
    csv): Python only sorts the records."""
    valid = data.isascii() or not _has_invalid_utf8(data)  # else each record with a non-ASCII cell is checked
    reader = csv.reader(_csv_lines(data))
    header: list[str] | None = None
    width = 0
    rows: list[list[str]] = []
    numbers: list[int] = []
    batches: list[pa.RecordBatch] = []
    line_numbers: list[np.ndarray] = []
    bad: list[tuple[int, int, str]] = []  # (first line, last line, reason)
    records = 0
    last = 0  # the last line read so far
    try:
        for record in reader:
            first, last = last + 1, reader.line_num
            if not record:
                continue  # a blank line holds no record
            if header is None:
                header = _csv_header(record, path)
                width = len(header)
                continue
            records += 1
            if records > options.max_file_lines:
                raise _too_many_lines(path, options.max_file_lines, "records")
            if not valid and any(not cell.isascii() and _has_surrogates(cell) for cell in record):
                bad.append((first, last, INVALID_UTF8.text()))
            elif len(record) != width:
                bad.append((first, last, CSV_ROW_WIDTH.text(columns=len(record), header_columns=width)))
            else:
                rows.append(record)
                numbers.append(first)
                if len(rows) >= CSV_BATCH_ROWS:
                    batches.append(_csv_batch(rows, header))
                    line_numbers.append(np.array(numbers, dtype=np.int64))
                    rows, numbers = [], []
    except csv.Error as exc:
        raise _cannot_read(path, f"line {last + 1}: {exc}") from exc
    bad_rows = _csv_raw_texts(data, bad)
    if header is None:
        return pa.table({"line_number": pa.array([], pa.int64()), "raw": pa.array([], pa.large_binary())}), bad_rows
    batches.append(_csv_batch(rows, header))
    line_numbers.append(np.array(numbers, dtype=np.int64))
    return _rows_as_json(pa.Table.from_batches(batches), np.concatenate(line_numbers)), bad_rows


def _csv_raw_texts(data: bytes | bytearray, bad: list[tuple[int, int, str]]) -> list[BadRow]:
    """(line, raw text, reason) of quarantined CSV records from (first line, last line, reason): the lines'
    bytes, cut where :func:`_csv_lines` cuts them, without the last line's end; invalid bytes as ``\\xNN``."""
    if not bad:
        return []
    buf = np.frombuffer(data, dtype=np.uint8)
    lf, cr = buf == 10, buf == 13
    lone_cr = cr & ~np.append(lf[1:], False)
    starts = np.concatenate(([0], np.flatnonzero(lf | lone_cr) + 1, [len(buf)]))
    out = []
    for first, last, why in bad:
        text = bytes(data[starts[first - 1] : starts[min(last, len(starts) - 1)]]).rstrip(b"\r\n")
        out.append((first, text.decode("utf-8", "backslashreplace"), why))
    return out


def _csv_batch(rows: list[list[str]], header: list[str]) -> pa.RecordBatch:
    """Records as Arrow string columns (an empty cell null)."""
    arrays = []
    for values in zip(*rows, strict=True) if rows else [()] * len(header):
        array = pa.array(values, pa.string())
        arrays.append(pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array))
    return pa.RecordBatch.from_arrays(arrays, names=header)


def _has_invalid_utf8(data: bytes | bytearray) -> bool:
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_header(record: list[str], path: Path) -> list[str]:
    """A CSV header's column names; an unnamed column is ``column_<n>``; a name twice fails naming it."""
    record = [record[0].removeprefix("\ufeff"), *record[1:]]
    names = [name if name != "" else f"column_{i + 1}" for i, name in enumerate(record)]
    if any(_has_surrogates(name) for name in names):
        raise _cannot_read(path, "line 1: the header is not valid UTF-8")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _cannot_read(path, f"line 1: the header names column {name[:40]!r} twice")
        seen.add(name)
    return names


def parquet_table(fh: BinaryIO, path: Path, options: IngestOptions) -> pa.Table:
    """A Parquet file's rows as JSON objects, numbered from 1; its size once decompressed (the row groups'
    uncompressed sizes) and its rows are checked against the caps before it is read."""
    try:
        parquet = pq.ParquetFile(fh)
        metadata = parquet.metadata
        uncompressed = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        if uncompressed > options.max_file_bytes:
            raise _too_large(path, options.max_file_bytes, compressed=True)
        if metadata.num_rows > options.max_file_lines:
            raise _too_many_lines(path, options.max_file_lines, "rows")
        table = parquet.read()
        return _rows_as_json(table, np.arange(1, table.num_rows + 1, dtype=np.int64))
    except (OSError, pa.ArrowException, duckdb.Error) as exc:
        raise _cannot_read(path, str(exc)) from exc


def read_landing_file(
    path: Path, events_landing: Path, options: IngestOptions | None = None
) -> tuple[pa.Table, list[BadRow], os.stat_result]:
    """A landing file's (line_number, raw) rows, its CSV records quarantined as they are, and its status when it
    was opened (size and mtime before it was read: a file rewritten while it is read is recorded as it was, so
    :func:`changed_days` sees it changed afterwards). :class:`IngestError` names the file when it cannot be read:
    not a regular file inside the landing zone (:func:`open_landing_file`), over a cap (:func:`read_capped`),
    a broken gzip stream, not Parquet."""
    options = options or IngestOptions()
    name = path.name.lower()
    fh, status = open_landing_file(path, events_landing)
    with fh:
        if name.endswith(PARQUET_SUFFIXES):
            return parquet_table(fh, path, options), [], status
        data = read_capped(fh, path, status.st_size, options)
    if name.endswith(CSV_SUFFIXES):
        table, bad = csv_table(data, path, options)
        return table, bad, status
    if name.endswith(JSON_SUFFIXES):
        return json_lines_table(data), [], status
    raise _cannot_read(path, f"unsupported file type (read: {SUPPORTED_TEXT})")


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


# A string field's text does not tell a string from a number, a boolean, an object or an array: their JSON types
# are read too (a second pass over the parsed line, on every line: a pre-filter on the line's text, or on the
# fields' texts, costs as much as the pass it would save, measured on 300k lines).
_STRING_FIELDS = [f for f in FIELDS if f.type == "string"]


def validation_sql(lines_view: str, options: IngestOptions) -> str:
    """One SELECT over ``lines_view(load_date date, source_file, line_number, raw blob)`` adding ``reason``
    (null = valid) and one typed column per contract field. Each line is parsed once (one json_extract_string
    with every field's path, one json_type with the string fields' paths) and each field cast once. The future
    limit is per row (its landing day's), so one statement validates the files of many landing days: DuckDB
    spends ~0.1 s planning this statement, which a history of small days (a shop's orders over years) would
    otherwise pay once per file."""
    paths = ", ".join(sql_string(f"$.{f.name}") for f in FIELDS)
    string_paths = ", ".join(sql_string(f"$.{f.name}") for f in _STRING_FIELDS)
    # Per field, columns computed once (the checks refer to them several times): its text (null when absent,
    # JSON null or "": an empty value is a missing one, as in the collector), its cast and its value in the
    # warehouse type; a string field's JSON type.
    values = {f.name: f"text_{f.name}" for f in FIELDS}
    json_types = {f.name: f"j[{i + 1}]" for i, f in enumerate(_STRING_FIELDS)}
    casts = {f.name: f"cast_{f.name}" for f in FIELDS if cast_sql(f, values[f.name])}
    typed = {f.name: f"value_{f.name}" for f in FIELDS}
    field_cols = "".join(f",\n        nullif(v[{i + 1}], '') as {values[f.name]}" for i, f in enumerate(FIELDS))
    cast_cols = "".join(
        f",\n        {cast_sql(f, values[f.name])} as {casts[f.name]}" for f in FIELDS if f.name in casts
    )
    typed_cols = "".join(
        f",\n        {typed_sql(f, values[f.name], casts.get(f.name, ''))} as {typed[f.name]}" for f in FIELDS
    )
    # Per field, its reason (null when it keeps the contract), computed once: the event rules read event_time's.
    reasons = {f.name: f"reason_{f.name}" for f in FIELDS}
    reason_cols = "".join(
        f",\n        {field_check_sql(f, values[f.name], casts.get(f.name, ''), typed[f.name], json_types.get(f.name))}"
        f" as {reasons[f.name]}"
        for f in FIELDS
    )
    tolerance_us = int(options.future_tolerance / timedelta(microseconds=1))
    ceiling = f"(cast(load_date as timestamp) + interval 1 day + to_microseconds({tolerance_us}))"
    event_checks = event_checks_sql(
        values, typed["event_time"], reasons["event_time"], options.earliest_event_time, ceiling
    )
    all_checks = ", ".join([*reasons.values(), *event_checks])
    line_checks = "".join(
        f"\n          when {condition} then {reason}"
        for condition, reason in line_checks_sql("txt", "nbytes", "v", options.limits)
    )
    output_cols = ",\n      ".join(f"{typed[f.name]} as {f.name}" for f in FIELDS)
    return f"""
    with decoded as (
      select load_date, source_file, line_number, raw, try(decode(raw)) as txt, octet_length(raw) as nbytes
      from {lines_view}
    ),
    extracted as (
      select *,
        case when txt is not null and nbytes <= {options.max_row_bytes}
          then try(json_extract_string(txt, [{paths}])) end as v,
        case when txt is not null and nbytes <= {options.max_row_bytes}
          then try(json_type(txt, [{string_paths}])) end as j
      from decoded
    ),
    fields as (
      select *{field_cols}
      from extracted
    ),
    casted as (
      select *{cast_cols}
      from fields
    ),
    typed as (
      select *{typed_cols}
      from casted
    ),
    field_reasons as (
      select *{reason_cols}
      from typed
    ),
    checked as (
      select *,
        case{line_checks}
          else nullif(concat_ws({sql_string(REASON_SEPARATOR)}, {all_checks}), '')
        end as reason
      from field_reasons
    )
    select load_date, source_file, line_number, coalesce(txt, raw::varchar) as raw_line, reason,
      {output_cols}
    from checked
    """


# ---------------------------------------------------------------------------------------------- loading

# Landing days are ingested in batches of about this many bytes of lines (one transaction and a few statements
# per batch; a day larger than this is a batch of its own): memory stays bounded by the batch or the largest
# day, and a history of thousands of small days costs a few statements, not a few per day.
BATCH_BYTES = 64 << 20


@dataclass
class _LandedFile:
    day: date
    rel_name: str
    stat: tuple[int, int]  # size and mtime (ns) before it was read
    lines: pa.Table  # (load_date, source_file, line_number, raw)
    bad_csv: list[BadRow]

    @property
    def lines_read(self) -> int:
        return len(self.lines) + len(self.bad_csv)


def _read_day(events_landing: Path, day: date, result: DayResult, options: IngestOptions) -> list[_LandedFile]:
    files = []
    result.unsupported += unsupported_in_day(events_landing, day)
    for path in files_for_day(events_landing, day):
        table, bad_csv, status = read_landing_file(path, events_landing, options)
        rel_name = str(path.relative_to(events_landing))
        n = len(table)
        lines = pa.table(
            {
                "load_date": pa.repeat(pa.scalar(day, pa.date32()), n),
                "source_file": pa.repeat(pa.scalar(rel_name, pa.string()), n),
                "line_number": table.column("line_number"),
                "raw": table.column("raw"),
            }
        )
        landed = _LandedFile(day, rel_name, (status.st_size, status.st_mtime_ns), lines, bad_csv)
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
        files = _read_day(events_landing, day, result, options)
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
        kill_point(INGEST_BEFORE_COMMIT)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    kill_point(INGEST_AFTER_COMMIT)
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
