"""What every importer shares: reading a source file as a stream, timestamps, the per-day writer, the
rejects file, the progress bar and the summary.

An importer (one module per format) is a function ``convert(source) -> Iterator[RowResult]``: one
:class:`RowResult` per source row (a line, a CSV record, a Parquet row), holding the contract events the
row became and the reasons any part of it could not be mapped. :func:`run_import` drives it: it writes the
events into one gzip JSON Lines file per UTC day of ``event_time`` and the rejects into one JSON Lines
file, first in a staging folder, then renamed into place under a name derived from the source's bytes, so
importing the same file twice leaves the same files.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import uuid
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from pulse.core.contract import (
    EMPTY_LINE,
    INVALID_UTF8,
    MALFORMED_JSON,
    MAX_UTC_OFFSET,
    NOT_AN_EVENT_OBJECT,
    OFFSET_TOO_WIDE,
    REASON_SEPARATOR,
    ValueRuleError,
    event_violations,
    json_type_name,
    loads_as_written,
    parse_integer,
    parse_number,
)
from pulse.core.gzip_members import gzip_member
from pulse.core.progress import ProgressBar
from pulse.importers.consent import ConsentDeclaration, ConsentTally, apply_declaration

GZIP_LEVEL = 6
BUFFER_BYTES = 32 << 20  # buffered output lines (all days together) before they are compressed to disk
MAX_LINE_BYTES = 16 << 20  # a longer line is rejected, not loaded whole
MAX_RAW_CHARS = 65536  # raw text kept per rejected row
READ_CHUNK = 1 << 20
HASH_CHARS = 12
FIRST_REJECTS = 20  # rejects kept in the summary (the rejects file has them all)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(RuntimeError):
    """A source file that cannot be imported at all. The message names the file."""


class MappingError(ValueError):
    """A mapping file (``--format mapped``) that is not valid. The message names the file and the problem."""


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Event:
    """One contract event, serialized, with the UTC day of its ``event_time`` (its landing folder).
    ``content_id``: its event_id when made from the row's content (a source without ids, whose identical rows
    share it): the import numbers the later copies within the file (:class:`RepeatedContentIds`)."""

    day: date
    event_type: str
    line: str
    content_id: str | None = None


@dataclass
class RowResult:
    """What one source row became: events (possibly several), and rejects ``(raw text, reason)``."""

    line: int
    events: list[Event] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)


def reject(line: int, raw: str, reason: str) -> RowResult:
    return RowResult(line=line, rejects=[(raw, reason)])


class RowError(ValueError):
    """Raised inside a converter for a row it cannot map; the message is the reject reason."""


# What converting one row may raise besides RowError on a value nobody foresaw (a type the mapping did not
# expect, a number or date beyond range, nesting deeper than Python's recursion limit): that row is rejected with
# the error as its reason and the rest of the file is imported. Anything else (a bug, the disk) stops the import.
CONVERSION_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    ArithmeticError,
    AttributeError,
    LookupError,
    RecursionError,
)


def conversion_reason(exc: BaseException) -> str:
    """The reject reason for an error raised while converting a row: a RowError's own message, else what was
    raised (its type and message, cut at 160 characters)."""
    if isinstance(exc, RowError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"cannot convert: {type(exc).__name__}: {str(exc)[:160]}"


@dataclass
class FileResult:
    source: Path
    stem: str
    rows_read: int = 0
    events_written: int = 0
    rejected: int = 0
    outputs: list[Path] = field(default_factory=list)
    rejected_file: Path | None = None
    event_types: dict[str, int] = field(default_factory=dict)
    day_counts: dict[date, int] = field(default_factory=dict)  # events written per UTC day (landing folder)
    consent: ConsentTally = field(default_factory=ConsentTally)
    sha256: str = ""
    record_file: Path | None = None  # <landing>/imports/<stem>.json: what this import did
    identical_rows: int = 0  # events that repeat an identical earlier row of the file: kept, their ids numbered

    @property
    def days(self) -> list[date]:
        return sorted({date.fromisoformat(p.parent.name) for p in self.outputs})  # a day may be in parts


@dataclass
class ImportSummary:
    format: str
    files: list[FileResult] = field(default_factory=list)
    first_rejects: list[str] = field(default_factory=list)  # "file:line: reason", the first few
    seconds: float = 0.0
    declaration: ConsentDeclaration = field(default_factory=ConsentDeclaration)

    @property
    def consent(self) -> ConsentTally:
        total = ConsentTally()
        for f in self.files:
            total.add(f.consent)
        return total

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def events_written(self) -> int:
        return sum(f.events_written for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def identical_rows(self) -> int:
        return sum(f.identical_rows for f in self.files)

    @property
    def outputs(self) -> list[Path]:
        return [p for f in self.files for p in f.outputs]

    @property
    def days(self) -> list[date]:
        return sorted({d for f in self.files for d in f.days})

    @property
    def event_types(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.event_types)
        return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------------------------------------- values


# ASCII digits only ([0-9], not \d: Python's \d also matches full-width and other scripts' digits).
_TS = re.compile(
    r"^\s*([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?"
    r"\s*(Z|z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)?\s*$"
)


def _offset(zone: str) -> timedelta:
    digits = zone[1:].replace(":", "")
    return timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))


def parse_timestamp(text: str, tz: ZoneInfo | None = None) -> datetime | None:
    """An ISO 8601 / RFC 3339 / SQL timestamp as an aware UTC datetime, or None if it is not one.

    Accepts ``T`` or a space, any number of fraction digits (truncated to microseconds), and a zone
    written ``Z``, ``UTC``, ``+hh:mm`` or ``+hhmm``. A timestamp without a zone is in ``tz`` (default UTC).
    An offset's minutes must be 00-59 and the offset within the contract's ±18:00 (see
    :func:`timestamp_reason`).
    """
    m = _TS.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        naive = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
    except ValueError:
        return None
    if zone is None or zone in ("Z", "z", "UTC", "GMT"):
        if zone is None and tz is not None:
            return naive.replace(tzinfo=tz).astimezone(UTC)
        return naive.replace(tzinfo=UTC)
    offset = _offset(zone)
    if int(zone[1:].replace(":", "")[2:4] or 0) > 59 or offset > MAX_UTC_OFFSET:
        return None
    sign = 1 if zone[0] == "+" else -1
    try:
        return (naive - sign * offset).replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00
        return None


def timestamp_reason(what: str, text: str) -> str:
    """Why :func:`parse_timestamp` refused ``text``, naming ``what`` (the source's field)."""
    m = _TS.match(text)
    if m and m.group(8) and m.group(8)[0] in "+-" and _offset(m.group(8)) > MAX_UTC_OFFSET:
        return OFFSET_TOO_WIDE.text(field=what, value=text)
    return f"{what} is not a timestamp: {text[:40]}"


def from_epoch(value: float | int, unit: str = "ms") -> datetime:
    """Epoch seconds / milliseconds / microseconds as an aware UTC datetime (integer arithmetic for ints).
    A value outside the years 1-9999 (or not finite) raises :class:`RowError` (a ValueError) saying so."""
    if unit not in ("s", "ms", "us"):
        raise ValueError(f"unknown epoch unit {unit!r}")
    try:
        if unit == "s":
            return EPOCH + timedelta(seconds=value)
        if unit == "ms":
            return EPOCH + timedelta(milliseconds=value)
        return EPOCH + timedelta(microseconds=value)
    except (OverflowError, ValueError) as exc:  # timedelta / datetime beyond their range, NaN, infinity
        raise RowError(f"epoch timestamp out of range: {str(value)[:40]} ({unit})") from exc


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 in UTC with ``Z``: milliseconds when the time has them, microseconds when it needs them."""
    ts = ts.astimezone(UTC) if ts.tzinfo is not None else ts
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond // 1000:03d}" if ts.microsecond % 1000 == 0 else f".{ts.microsecond:06d}"
    return text + "Z"


def to_number(value: Any) -> float | int | None:
    """A JSON number from a number or numeric text; None if absent; raises :class:`ValueRuleError` (a ValueError)
    if not a finite number by the contract's rule (ASCII digits, no NaN or infinity: :func:`parse_number`)."""
    if value is None or value == "":
        return None
    number = parse_number(value)
    if isinstance(number, int):
        return number
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def to_integer(value: Any) -> int | None:
    """An integer within the warehouse's 64-bit range from a number or numeric text; None if absent; raises
    :class:`ValueRuleError` otherwise: :func:`pulse.core.contract.parse_integer`."""
    if value is None or value == "":
        return None
    return parse_integer(value)


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def to_boolean(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def text_or_none(value: Any) -> Any:
    """A string field: None for absent / empty; finite numbers (ids) become their text. Anything else (an
    object, an array, a boolean, NaN) is returned as it is, for :func:`make_event` to refuse by the contract's
    rule (a string field holds text or a number, never an object)."""
    if value is None:
        return None
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        if value.is_integer():
            value = int(value)
    text = value if isinstance(value, str) else str(value)
    return text if text != "" else None


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def snake_case(name: str) -> str:
    """``Product Added`` -> ``product_added``; ``videoPlaybackStarted`` -> ``video_playback_started``."""
    return _NON_WORD.sub("_", _CAMEL.sub("_", name.strip()).lower()).strip("_")


def custom_type(name: str | None, fallback: str = "unknown") -> str:
    return "custom." + (snake_case(name or "") or fallback)


_JSON_TYPES = (str, int, float, bool, dict, list)


def contract_problem(fields: dict[str, Any]) -> str | None:
    """Why the contract event ``fields`` breaks the contract, as the collector and ingestion word it (every
    reason, joined by "; ": :func:`pulse.core.contract.event_violations`), or None. Values that are not JSON types
    (a Decimal, a datetime from Parquet) are checked as they will be written. The time window is left to
    ingestion, which applies the settings in force when the day is ingested (the import counts what falls
    outside it: :mod:`pulse.importers.window`)."""
    event = {k: v if v is None or isinstance(v, _JSON_TYPES) else _json_default(v) for k, v in fields.items()}
    reasons = event_violations(event)
    return REASON_SEPARATOR.join(reasons) if reasons else None


def make_event(fields: dict[str, Any], when: datetime, content_id: bool = False) -> Event:
    """Serialize a contract event (absent and None values left out) routed by ``when`` (its event_time). A value
    that breaks the contract's value rules raises :class:`RowError` naming the field. ``content_id``: its
    event_id was made from its content (see :class:`Event`)."""
    fields = {k: v for k, v in fields.items() if v is not None and v != "" and v != {}}
    reason = contract_problem(fields)
    if reason is not None:
        raise RowError(reason)
    line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default)
    if not line.isascii() and has_surrogates(line):  # JSON's "\ud800" escape parses into a lone surrogate
        raise RowError("a string holds a lone UTF-16 surrogate (an escape \\ud800-\\udfff): not valid Unicode")
    return Event(
        day=when.astimezone(UTC).date(),
        event_type=str(fields.get("event_type", "")),
        line=line,
        content_id=fields.get("event_id") if content_id else None,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    try:
        return float(value)  # Decimal and numpy numbers
    except (TypeError, ValueError):
        return str(value)


def clip_raw(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "…"


def parse_json(text: str | None, what: str) -> Any:
    """JSON text, or None when empty; a RowError naming ``what`` when it does not parse."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RowError(f"malformed JSON in {what}") from exc
    except RecursionError as exc:
        raise RowError(f"malformed JSON in {what}: nested too deeply") from exc


# ---------------------------------------------------------------------------------------------- reading


class _CountingReader(io.RawIOBase):
    """Wraps a binary file: counts the bytes read (for the progress bar) and hashes them (for the name)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.sha256.update(view)
            self.bytes_read += n
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class Source:
    """A source file read once as a stream (gzip detected by its magic bytes), counted and hashed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.size = path.stat().st_size
            if not path.is_file():
                raise SourceError(f"cannot import {path}: not a file")
            with open(path, "rb") as fh:
                self.magic = fh.read(4)
        except OSError as exc:
            raise SourceError(f"cannot import {path}: {exc.strerror or exc}") from exc
        self.is_gzip = self.magic[:2] == b"\x1f\x8b"
        if path.name.endswith(".gz") and not self.is_gzip:
            raise SourceError(f"cannot import {path}: not a gzip file")
        self._counter: _CountingReader | None = None
        self._digest: str | None = None
        self._position: int | None = None

    @property
    def bytes_read(self) -> int:
        if self._position is not None:
            return self._position
        return self._counter.bytes_read if self._counter else 0

    def report_position(self, position: int) -> None:
        """For readers that do not stream through :meth:`open_binary` (Parquet): the progress so far."""
        self._position = position

    def open_binary(self) -> BinaryIO:
        """The (decompressed) bytes as a buffered stream. Read it to the end: that completes the hash."""
        self._counter = _CountingReader(open(self.path, "rb"))  # noqa: SIM115 - closed by the caller
        buffered = io.BufferedReader(self._counter, buffer_size=READ_CHUNK)
        if self.is_gzip:
            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        return buffered  # type: ignore[return-value]

    def lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(1-based line number, line without its end of line) for each line; None for a line longer than
        :data:`MAX_LINE_BYTES` (its bytes are skipped, not loaded). Wraps decompression errors."""
        with self.open_binary() as fh:
            number = 0
            try:
                while True:
                    line = fh.readline(MAX_LINE_BYTES + 1)
                    if not line:
                        break
                    number += 1
                    if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                        while line and not line.endswith(b"\n"):
                            line = fh.readline(READ_CHUNK)
                        yield number, None
                        continue
                    yield number, line.rstrip(b"\n").removesuffix(b"\r")
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"cannot import {self.path}: {exc}") from exc
            self.finish()

    def text_stream(self) -> io.TextIOWrapper:
        """The decoded text (UTF-8, invalid bytes kept as surrogates so the row can be rejected), for csv."""
        return io.TextIOWrapper(self.open_binary(), encoding="utf-8", errors="surrogateescape", newline="")

    def finish(self) -> None:
        """Read whatever is left (so the hash covers the whole file)."""
        if self._counter is not None:
            while self._counter.read(READ_CHUNK):
                pass

    def digest(self) -> str:
        """sha256 of the file's bytes as stored: from the streaming read if complete, else a read now."""
        if self._digest is None:
            if self._counter is not None and self._counter.bytes_read == self.size:
                self._digest = self._counter.sha256.hexdigest()
            else:
                h = hashlib.sha256()
                with open(self.path, "rb") as fh:
                    while chunk := fh.read(READ_CHUNK):
                        h.update(chunk)
                self._digest = h.hexdigest()
        return self._digest


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_line(raw: bytes) -> str:
    """UTF-8 text of a line; RowError('invalid UTF-8') when it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError(INVALID_UTF8.text()) from exc


def parse_json_object(raw: bytes) -> tuple[str, dict]:
    """One line of a JSON Lines file: its text and the object it holds; RowError (the reject reason) otherwise."""
    text = decode_line(raw)
    if not text.strip():
        raise RowError(EMPTY_LINE.text())
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise RowError(MALFORMED_JSON.text()) from exc
    except RecursionError as exc:
        raise RowError(MALFORMED_JSON.text() + ": nested too deeply") from exc
    if not isinstance(obj, dict):
        raise RowError(NOT_AN_EVENT_OBJECT.text(json_type=json_type_name(obj)))
    return text, obj


def _reason_as_written(
    error: BaseException, number: int, text: str | None, to_result: Callable[[int, str, dict], RowResult]
) -> str:
    """The reason a parsed line was refused, its numbers shown as written (the line read again with
    :func:`pulse.core.contract.loads_as_written` and mapped again: ``1.2e21``, not Python's ``1.2e+21``), as ingestion
    shows them. Only refused lines pay for the second reading."""
    reason = conversion_reason(error)
    if text is None or isinstance(error, RecursionError):
        return reason
    try:
        obj = loads_as_written(text)
        if isinstance(obj, dict):
            to_result(number, text, obj)
    except CONVERSION_ERRORS as again:
        return conversion_reason(again)
    return reason


def raw_text(raw: bytes) -> str:
    return clip_raw(raw.decode("utf-8", errors="backslashreplace"))


def json_rows(source: Source, to_result: Callable[[int, str, dict], RowResult]) -> Iterator[RowResult]:
    """One RowResult per line of a JSON Lines source: ``to_result(line number, text, object)`` maps a parsed
    object. A line over the size limit, one that is not a JSON object, and a RowError (or another
    :data:`CONVERSION_ERRORS`) from ``to_result`` are rejected with the line number and the raw text."""
    for number, raw in source.lines():
        if raw is None:
            yield reject(number, "", "row exceeds the line size limit")
            continue
        text = None
        try:
            text, obj = parse_json_object(raw)
            result = to_result(number, text, obj)
        except CONVERSION_ERRORS as exc:
            yield reject(number, raw_text(raw), _reason_as_written(exc, number, text, to_result))
            continue
        yield result


def csv_records(
    stream: io.TextIOBase, reader_factory: Callable[[Iterator[str]], Any]
) -> Iterator[tuple[int, list[str] | csv.Error, str]]:
    """(first line number, fields, raw text) per CSV record; a record may span lines (quoted newlines). A record
    the csv module cannot parse (a field over its size limit) comes as (line, the csv.Error, raw text): that
    record is rejected, the next line starts the next one."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in stream:
            consumed.append(line)
            yield line

    reader = reader_factory(lines())
    start = 1
    while True:
        row: list[str] | csv.Error
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if start == 1:
                raise  # the header: the file cannot be read
            row = exc
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        yield start, row, raw
        start = reader.line_num + 1


RowMapper = Callable[[dict[str, Any], int], tuple[dict[str, Any], datetime]]
PARQUET_BATCH_ROWS = 8192


def csv_rows(
    records: Iterator[tuple[int, list[str] | csv.Error, str]],
    header: list[str],
    mapper: RowMapper,
    kind: str = "CSV",
    content_ids: bool = False,
) -> Iterator[RowResult]:
    """One RowResult per CSV record after the header: ``mapper(values by column, line number)`` gives the
    contract fields and event time. Blank lines hold no row; invalid UTF-8, a record that does not fit the
    header and a RowError (or another :data:`CONVERSION_ERRORS`) from the mapper are rejected with the line
    number and the raw text. ``content_ids``: the mapper makes event ids from the rows' content (:class:`Event`)."""
    for number, row, raw in records:
        if isinstance(row, csv.Error):
            yield reject(number, clip_raw(raw), f"{kind} record cannot be parsed: {row}")
            continue
        if not row:
            continue  # a blank line holds no row
        if has_surrogates(raw):
            text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield reject(number, clip_raw(text), INVALID_UTF8.text())
            continue
        if len(row) != len(header):
            yield reject(number, clip_raw(raw), f"{kind} row has {len(row)} columns, header has {len(header)}")
            continue
        try:
            fields, when = mapper(dict(zip(header, row, strict=True)), number)
            event = make_event(fields, when, content_ids)
        except CONVERSION_ERRORS as exc:
            yield reject(number, clip_raw(raw), conversion_reason(exc))
            continue
        yield RowResult(line=number, events=[event])


def open_parquet(source: Source) -> Any:
    """The source as a ``pyarrow.parquet.ParquetFile``; SourceError naming the file if it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source.path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot import {source.path}: not a Parquet file ({exc})") from exc


def parquet_rows(
    source: Source, parquet: Any, mapper: RowMapper, columns: list[str] | None = None, content_ids: bool = False
) -> Iterator[RowResult]:
    """One RowResult per Parquet row (numbered from 1, as ingestion does), read in batches; a RowError (or another
    :data:`CONVERSION_ERRORS`) from ``mapper(values by column, row number)`` rejects the row, kept as JSON, and so
    does a row whose values Python cannot hold (a timestamp beyond the year 9999). ``content_ids``: as for
    :func:`csv_rows`."""
    import pyarrow as pa

    number = 0
    total_rows = max(parquet.metadata.num_rows, 1)
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            source.report_position(source.size * (number + batch.num_rows) // total_rows)
            try:
                rows: list[Any] = batch.to_pylist()
            except CONVERSION_ERRORS:
                rows = [None] * batch.num_rows  # some value cannot be converted: row by row, to find which
            for i, values in enumerate(rows):
                number += 1
                try:
                    if values is None:
                        values = batch.slice(i, 1).to_pylist()[0]
                except CONVERSION_ERRORS as exc:
                    yield reject(number, clip_raw(_row_text(batch, i)), f"cannot read the row: {str(exc)[:160]}")
                    continue
                try:
                    fields, when = mapper(values, number)
                    event = make_event(fields, when, content_ids)
                except CONVERSION_ERRORS as exc:
                    yield reject(number, clip_raw(json.dumps(values, default=str)), conversion_reason(exc))
                    continue
                yield RowResult(line=number, events=[event])
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot import {source.path}: {exc}") from exc


def _row_text(batch: Any, i: int) -> str:
    """A Parquet row Python cannot convert as a whole, as JSON: each value that converts, the others as Arrow
    prints them."""
    values: dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            values[name] = column[i].as_py()
        except CONVERSION_ERRORS:
            try:  # a timestamp beyond Python's datetime: its number in the column's unit
                values[name] = f"{column.type}: {column.slice(i, 1).cast('int64').to_pylist()[0]}"
            except Exception:  # noqa: BLE001 - only for the reject's text
                values[name] = f"{column.type}: (cannot be shown)"
    return json.dumps(values, default=str)


def number_field(value: Any, what: str) -> float | int | None:
    """:func:`to_number`, with a RowError naming the field (``price is not a finite number: NaN``)."""
    try:
        return to_number(value)
    except ValueRuleError as exc:
        raise RowError(exc.reason(what)) from exc


def integer_field(value: Any, what: str) -> int | None:
    """:func:`to_integer`, with a RowError naming the field (``quantity is outside the 64-bit integer range``)."""
    try:
        return to_integer(value)
    except ValueRuleError as exc:
        raise RowError(exc.reason(what)) from exc


def raise_csv_limit() -> None:
    """Snowplow JSON columns can exceed the csv module's default 128 KiB field limit."""
    if csv.field_size_limit() < MAX_LINE_BYTES:
        csv.field_size_limit(MAX_LINE_BYTES)


# ---------------------------------------------------------------------------------------------- writing


# A day's events go into parts of at most this many events and bytes (uncompressed): no file an import writes
# is over ingestion's per-file limits (max_file_lines, max_file_bytes; 5,000,000 and 256 MiB by default), so a
# month of 40 million events imports and ingests without a setting changed. Limits set lower make the parts
# smaller (`pulse import`: pulse.importers.part_limits).
PART_EVENTS = 1_000_000
PART_BYTES = 128 << 20


def part_name(stem: str, part: int) -> str:
    """The landing file name of part ``part`` (from 1) of a day: ``<stem>.jsonl.gz``, then ``<stem>.part2.jsonl.gz``."""
    return f"{stem}.jsonl.gz" if part == 1 else f"{stem}.part{part}.jsonl.gz"


class _DayWriter:
    """Buffers lines per day; past :data:`BUFFER_BYTES` in all, each day's buffer is appended to its staged
    file as one more gzip member (readers see one stream). Memory stays bounded whatever the input size. A day
    past ``part_events`` events or ``part_bytes`` bytes (uncompressed) in its current file goes on in a new part."""

    def __init__(
        self, staging: Path, limit: int = BUFFER_BYTES, part_events: int = PART_EVENTS, part_bytes: int = PART_BYTES
    ) -> None:
        self.staging = staging
        self.limit = limit
        self.part_events, self.part_bytes = part_events, part_bytes
        self.buffers: dict[date, list[bytes]] = {}
        self.buffered = 0
        self.counts: Counter[date] = Counter()
        self.parts: dict[date, int] = {}  # the day's current part
        self.in_part: dict[date, tuple[int, int]] = {}  # (events, bytes) of the day's current part

    def _path(self, day: date, part: int) -> Path:
        return self.staging / f"{day.isoformat()}.{part}.jsonl.gz"

    def add(self, day: date, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        events, size = self.in_part.get(day, (0, 0))
        if events and (events >= self.part_events or size + len(data) > self.part_bytes):
            self._flush_day(day)
            self.parts[day] = self.parts.get(day, 1) + 1
            events, size = 0, 0
        self.in_part[day] = (events + 1, size + len(data))
        self.buffers.setdefault(day, []).append(data)
        self.buffered += len(data)
        self.counts[day] += 1
        if self.buffered >= self.limit:
            self.flush()

    def _flush_day(self, day: date) -> None:
        lines = self.buffers.pop(day, None)
        if lines:
            with open(self._path(day, self.parts.get(day, 1)), "ab") as fh:
                fh.write(gzip_member(b"".join(lines), GZIP_LEVEL))
            self.buffered -= sum(len(line) for line in lines)

    def flush(self) -> None:
        for day in sorted(self.buffers):
            self._flush_day(day)
        self.buffered = 0

    def staged(self) -> dict[tuple[date, int], Path]:
        """The staged files by (day, part)."""
        self.flush()
        return {
            (day, part): self._path(day, part)
            for day in sorted(self.counts)
            for part in range(1, self.parts.get(day, 1) + 1)
        }


class RepeatedContentIds:
    """Numbers the later copies of identical rows in one file, for ids made from a row's content (a mapped source
    without ids: pulse.importers.mapped.content_id). Identical rows share that id; the first keeps it, the second
    becomes ``<id>-2``, the third ``<id>-3`` (in file order), so two genuinely identical events (two cart adds of
    the same product in the same second) stay two, and a re-export of the file, in any order and with rows added,
    gives every row the id it had. Across files the same row counts once: a row that is n times in one file and m
    times in another is in the warehouse max(n, m) times (docs/importers.md).

    Memory stays bounded by the rows, not their size: 8 bytes per event (a 64-bit hash of its id, per day; ~0.3
    GB for REES46's 42 M-row month). Copies of one row share its event_time, hence its day: after the file, only
    the staged days that hold a repeated hash are read again and rewritten."""

    def __init__(self) -> None:
        self.hashes: dict[date, array] = {}

    def add(self, day: date, content_id: str) -> None:
        hashes = self.hashes.get(day)
        if hashes is None:
            hashes = self.hashes[day] = array("q")
        hashes.append(hash(content_id))

    def repeated(self) -> dict[date, set[int]]:
        """The hashes seen more than once, per day."""
        import numpy as np

        out: dict[date, set[int]] = {}
        for day, hashes in self.hashes.items():
            if len(hashes) < 2:
                continue
            ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
            twice = ordered[1:][ordered[1:] == ordered[:-1]]
            if twice.size:
                out[day] = set(twice.tolist())
        return out

    def number(self, staged: dict[tuple[date, int], Path], buffer_bytes: int = BUFFER_BYTES) -> int:
        """Rename the later copies in the staged day files (every part of a day, in order, counting copies across
        its parts); returns how many events were renamed."""
        renamed = 0
        for day, hashes in self.repeated().items():
            copies: Counter[str] = Counter()
            for key in sorted(k for k in staged if k[0] == day):
                renamed += _number_copies(staged[key], hashes, buffer_bytes, copies)
        return renamed


_ID_KEY = '{"event_id":'


def _number_copies(path: Path, hashes: set[int], buffer_bytes: int, copies: Counter[str]) -> int:
    """Rewrite one staged day file (gzip JSON Lines), giving the n-th copy (n >= 2) of an id whose hash is in
    ``hashes`` the id ``<id>-n`` (``copies`` counts them, across the parts of a day); other lines are copied as
    they are."""
    decoder = json.JSONDecoder()
    renamed = 0
    rewritten = path.with_name(path.name + ".numbered")
    with gzip.open(path, "rb") as src, open(rewritten, "wb") as out:
        chunk: list[bytes] = []
        size = 0
        for raw in src:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith(_ID_KEY):  # make_event writes event_id first
                event_id, end = decoder.raw_decode(line, len(_ID_KEY))
                rest = line[end:]
            else:  # not as make_event wrote it: parse it whole
                event = json.loads(line)
                event_id, rest = event.get("event_id"), None
            if isinstance(event_id, str) and hash(event_id) in hashes:
                copies[event_id] += 1
                if copies[event_id] > 1:
                    renamed += 1
                    new_id = f"{event_id}-{copies[event_id]}"
                    if rest is None:
                        event["event_id"] = new_id
                        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                    else:
                        line = _ID_KEY + json.dumps(new_id, ensure_ascii=False) + rest
                    raw = line.encode("utf-8") + b"\n"
            chunk.append(raw)
            size += len(raw)
            if size >= buffer_bytes:
                out.write(gzip_member(b"".join(chunk), GZIP_LEVEL))
                chunk, size = [], 0
        if chunk:
            out.write(gzip_member(b"".join(chunk), GZIP_LEVEL))
    os.replace(rewritten, path)
    return renamed


def output_stem(fmt: str, digest: str) -> str:
    return f"import-{fmt}-{digest[:HASH_CHARS]}"


def import_file(
    fmt: str,
    source: Source,
    convert: Callable[[Source], Iterator[RowResult]],
    landing: Path,
    progress: bool = False,
    first_rejects: list[str] | None = None,
    buffer_bytes: int = BUFFER_BYTES,
    declaration: ConsentDeclaration | None = None,
    part_events: int = PART_EVENTS,
    part_bytes: int = PART_BYTES,
) -> FileResult:
    """Convert one source file and put its daily files and rejects in place (see the module docstring).
    ``declaration``: the consent the import declares, applied to every event (pulse/importers/consent.py)."""
    declaration = declaration or ConsentDeclaration()
    events_dir = landing / "events"
    rejected_dir = landing / "rejected"
    staging_root = landing / ".import-staging"
    staging = staging_root / uuid.uuid4().hex
    staging.mkdir(parents=True)
    bar = ProgressBar(
        f"pulse import {source.path.name}", source.size, progress, unit="B", unit_scale=True, unit_divisor=1000
    )
    try:
        writer = _DayWriter(staging, buffer_bytes, part_events=part_events, part_bytes=part_bytes)
        repeats = RepeatedContentIds()
        result = FileResult(source=source.path, stem="")
        types: Counter[str] = Counter()
        rejects_path = staging / "rejected.jsonl"
        rejects_fh = None
        try:
            for row in convert(source):
                result.rows_read += 1
                for event in row.events:
                    writer.add(event.day, apply_declaration(event.line, declaration, result.consent))
                    types[event.event_type] += 1
                    if event.content_id is not None:
                        repeats.add(event.day, event.content_id)
                for raw, reason in row.rejects:
                    if rejects_fh is None:
                        # a raw text holding a lone surrogate is written with it escaped, never a crash
                        rejects_fh = open(rejects_path, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
                    record = {"source_file": str(source.path), "line": row.line, "reason": reason, "raw": raw}
                    rejects_fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    result.rejected += 1
                    if first_rejects is not None and len(first_rejects) < FIRST_REJECTS:
                        first_rejects.append(f"{source.path}:{row.line}: {reason}")
                result.events_written += len(row.events)
                bar.advance_to(source.bytes_read, rows=result.rows_read, events=result.events_written)
        finally:
            if rejects_fh is not None:
                rejects_fh.close()
        bar.advance_to(source.size, rows=result.rows_read, events=result.events_written)
        staged = writer.staged()
        result.identical_rows = repeats.number(staged, buffer_bytes)
        result.day_counts = dict(sorted(writer.counts.items()))
        result.sha256 = source.digest()
        result.stem = output_stem(fmt, result.sha256)
        result.event_types = dict(sorted(types.items()))
        for (day, part), path in staged.items():
            target = events_dir / day.isoformat() / part_name(result.stem, part)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)  # readers never see a half-written file
            result.outputs.append(target)
        # What an earlier import of the same bytes wrote on days (or in parts) this one did not: not ours any more.
        earlier = [
            *events_dir.glob(f"*/{part_name(result.stem, 1)}"),
            *events_dir.glob(f"*/{result.stem}.part*.jsonl.gz"),
        ]
        for old in earlier:
            if old not in result.outputs:
                old.unlink()
        rejected_target = rejected_dir / f"{result.stem}.jsonl"
        if result.rejected:
            rejected_dir.mkdir(parents=True, exist_ok=True)
            os.replace(rejects_path, rejected_target)
            result.rejected_file = rejected_target
        else:
            rejected_target.unlink(missing_ok=True)
        return result
    finally:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging_root.rmdir()  # only when no other import is staging


RECORDS_DIR = "imports"


def write_import_record(
    landing: Path,
    fmt: str,
    result: FileResult,
    declaration: ConsentDeclaration,
    mapping: Path | None = None,
) -> Path:
    """``<landing>/imports/<stem>.json``: what importing one source did (the file, its rows, the files written,
    the consent declared and on what basis, how many events it covered). Replaced by a re-import of the same
    bytes, like the event files, and as deterministic (no time in it: the same import writes the same bytes);
    outside ``events/``, so ingestion never reads it."""
    records = landing / RECORDS_DIR
    records.mkdir(parents=True, exist_ok=True)
    days = result.days
    record = {
        "source_file": str(result.source.resolve()),
        "sha256": result.sha256,
        "format": fmt,
        "mapping": str(mapping) if mapping is not None else None,
        "rows_read": result.rows_read,
        "events_written": result.events_written,
        "rejected": result.rejected,
        "first_day": days[0].isoformat() if days else None,
        "last_day": days[-1].isoformat() if days else None,
        "event_files": [str(p.relative_to(landing)) for p in result.outputs],
        "rejected_file": str(result.rejected_file.relative_to(landing)) if result.rejected_file else None,
        "consent": declaration.as_record() | result.consent.as_record(),
    }
    target = records / f"{result.stem}.json"
    tmp = records / f".{result.stem}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target
