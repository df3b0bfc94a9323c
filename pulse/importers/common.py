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
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

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
    """One contract event, serialized, with the UTC day of its ``event_time`` (its landing folder)."""

    day: date
    event_type: str
    line: str


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

    @property
    def days(self) -> list[date]:
        return sorted(date.fromisoformat(p.parent.name) for p in self.outputs)


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


_TS = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$"
)


def parse_timestamp(text: str, tz: ZoneInfo | None = None) -> datetime | None:
    """An ISO 8601 / RFC 3339 / SQL timestamp as an aware UTC datetime, or None if it is not one.

    Accepts ``T`` or a space, any number of fraction digits (truncated to microseconds), and a zone
    written ``Z``, ``UTC``, ``+hh:mm`` or ``+hhmm``. A timestamp without a zone is in ``tz`` (default UTC).
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
    sign = 1 if zone[0] == "+" else -1
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return (naive - sign * offset).replace(tzinfo=UTC)


def from_epoch(value: float | int, unit: str = "ms") -> datetime:
    """Epoch seconds / milliseconds / microseconds as an aware UTC datetime (integer arithmetic for ints)."""
    if unit == "s":
        return EPOCH + timedelta(seconds=value)
    if unit == "ms":
        return EPOCH + timedelta(milliseconds=value)
    if unit == "us":
        return EPOCH + timedelta(microseconds=value)
    raise ValueError(f"unknown epoch unit {unit!r}")


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 in UTC with ``Z``: milliseconds when the time has them, microseconds when it needs them."""
    ts = ts.astimezone(UTC) if ts.tzinfo is not None else ts
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond // 1000:03d}" if ts.microsecond % 1000 == 0 else f".{ts.microsecond:06d}"
    return text + "Z"


def to_number(value: Any) -> float | int | None:
    """A JSON number from a number or numeric text; None if absent; raises ValueError if not numeric."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def to_integer(value: Any) -> int | None:
    number = to_number(value)
    if number is None:
        return None
    if isinstance(number, float):
        raise ValueError(f"{value!r} is not an integer")
    return number


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


def text_or_none(value: Any) -> str | None:
    """A string field: None for absent / empty; numbers (ids) become their text."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
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


def make_event(fields: dict[str, Any], when: datetime) -> Event:
    """Serialize a contract event (absent and None values left out) routed by ``when`` (its event_time)."""
    fields = {k: v for k, v in fields.items() if v is not None and v != "" and v != {}}
    line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default)
    return Event(day=when.astimezone(UTC).date(), event_type=str(fields.get("event_type", "")), line=line)


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
        raise RowError("invalid UTF-8") from exc


def parse_json_object(raw: bytes) -> tuple[str, dict]:
    """One line of a JSON Lines file: its text and the object it holds; RowError (the reject reason) otherwise."""
    text = decode_line(raw)
    if not text.strip():
        raise RowError("empty line")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise RowError("malformed JSON") from exc
    if not isinstance(obj, dict):
        raise RowError(f"not a JSON object: {type(obj).__name__}")
    return text, obj


def raw_text(raw: bytes) -> str:
    return clip_raw(raw.decode("utf-8", errors="backslashreplace"))


def json_rows(source: Source, to_result: Callable[[int, str, dict], RowResult]) -> Iterator[RowResult]:
    """One RowResult per line of a JSON Lines source: ``to_result(line number, text, object)`` maps a parsed
    object. A line over the size limit, one that is not a JSON object, and a RowError from ``to_result`` are
    rejected with the line number and the raw text."""
    for number, raw in source.lines():
        if raw is None:
            yield reject(number, "", "row exceeds the line size limit")
            continue
        try:
            text, obj = parse_json_object(raw)
            result = to_result(number, text, obj)
        except RowError as exc:
            yield reject(number, raw_text(raw), str(exc))
            continue
        yield result


def csv_records(
    stream: io.TextIOBase, reader_factory: Callable[[Iterator[str]], Any]
) -> Iterator[tuple[int, list[str], str]]:
    """(first line number, fields, raw text) per CSV record; a record may span lines (quoted newlines)."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in stream:
            consumed.append(line)
            yield line

    reader = reader_factory(lines())
    start = 1
    for row in reader:
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        yield start, row, raw
        start = reader.line_num + 1


RowMapper = Callable[[dict[str, Any], int], tuple[dict[str, Any], datetime]]
PARQUET_BATCH_ROWS = 8192


def csv_rows(
    records: Iterator[tuple[int, list[str], str]], header: list[str], mapper: RowMapper, kind: str = "CSV"
) -> Iterator[RowResult]:
    """One RowResult per CSV record after the header: ``mapper(values by column, line number)`` gives the
    contract fields and event time. Blank lines hold no row; invalid UTF-8, a record that does not fit the
    header and a RowError from the mapper are rejected with the line number and the raw text."""
    for number, row, raw in records:
        if not row:
            continue  # a blank line holds no row
        if has_surrogates(raw):
            text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield reject(number, clip_raw(text), "invalid UTF-8")
            continue
        if len(row) != len(header):
            yield reject(number, clip_raw(raw), f"{kind} row has {len(row)} columns, header has {len(header)}")
            continue
        try:
            fields, when = mapper(dict(zip(header, row, strict=True)), number)
        except RowError as exc:
            yield reject(number, clip_raw(raw), str(exc))
            continue
        yield RowResult(line=number, events=[make_event(fields, when)])


def open_parquet(source: Source) -> Any:
    """The source as a ``pyarrow.parquet.ParquetFile``; SourceError naming the file if it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source.path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot import {source.path}: not a Parquet file ({exc})") from exc


def parquet_rows(
    source: Source, parquet: Any, mapper: RowMapper, columns: list[str] | None = None
) -> Iterator[RowResult]:
    """One RowResult per Parquet row (numbered from 1, as ingestion does), read in batches; a RowError from
    ``mapper(values by column, row number)`` rejects the row, kept as JSON."""
    import pyarrow as pa

    number = 0
    total_rows = max(parquet.metadata.num_rows, 1)
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            source.report_position(source.size * (number + batch.num_rows) // total_rows)
            for values in batch.to_pylist():
                number += 1
                try:
                    fields, when = mapper(values, number)
                except RowError as exc:
                    yield reject(number, clip_raw(json.dumps(values, default=str)), str(exc))
                    continue
                yield RowResult(line=number, events=[make_event(fields, when)])
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot import {source.path}: {exc}") from exc


def number_field(value: Any, what: str) -> float | int | None:
    """:func:`to_number`, with a RowError naming the field."""
    try:
        return to_number(value)
    except (ValueError, TypeError) as exc:
        raise RowError(f"{what} is not a number: {str(value)[:40]}") from exc


def integer_field(value: Any, what: str) -> int | None:
    """:func:`to_integer`, with a RowError naming the field."""
    try:
        return to_integer(value)
    except (ValueError, TypeError) as exc:
        raise RowError(f"{what} is not an integer: {str(value)[:40]}") from exc


def raise_csv_limit() -> None:
    """Snowplow JSON columns can exceed the csv module's default 128 KiB field limit."""
    import csv

    if csv.field_size_limit() < MAX_LINE_BYTES:
        csv.field_size_limit(MAX_LINE_BYTES)


# ---------------------------------------------------------------------------------------------- writing


def _gzip_member(data: bytes) -> bytes:
    """One gzip member; zlib's header has mtime 0, so the same lines give the same bytes."""
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


class _DayWriter:
    """Buffers lines per day; past :data:`BUFFER_BYTES` in all, each day's buffer is appended to its staged
    file as one more gzip member (readers see one stream). Memory stays bounded whatever the input size."""

    def __init__(self, staging: Path, limit: int = BUFFER_BYTES) -> None:
        self.staging = staging
        self.limit = limit
        self.buffers: dict[date, list[bytes]] = {}
        self.buffered = 0
        self.counts: Counter[date] = Counter()

    def add(self, day: date, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        self.buffers.setdefault(day, []).append(data)
        self.buffered += len(data)
        self.counts[day] += 1
        if self.buffered >= self.limit:
            self.flush()

    def flush(self) -> None:
        for day in sorted(self.buffers):
            with open(self.staging / f"{day.isoformat()}.jsonl.gz", "ab") as fh:
                fh.write(_gzip_member(b"".join(self.buffers[day])))
        self.buffers.clear()
        self.buffered = 0

    def staged(self) -> dict[date, Path]:
        self.flush()
        return {day: self.staging / f"{day.isoformat()}.jsonl.gz" for day in sorted(self.counts)}


class Progress:
    """A one-line progress bar on stderr (bytes read of the source), redrawn at most every 0.2 s."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.t0 = self.last = time.perf_counter()
        self.drawn = False

    def update(self, done: int, rows: int, events: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        width = 30
        filled = width * min(done, self.total) // self.total
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(
            f"\r{self.label} [{bar}] {done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB  "
            f"{rows:,} rows  {events:,} events  {now - self.t0:.1f}s"
        )
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled and self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


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
) -> FileResult:
    """Convert one source file and put its daily files and rejects in place (see the module docstring).
    ``declaration``: the consent the import declares, applied to every event (pulse/importers/consent.py)."""
    declaration = declaration or ConsentDeclaration()
    events_dir = landing / "events"
    rejected_dir = landing / "rejected"
    staging_root = landing / ".import-staging"
    staging = staging_root / uuid.uuid4().hex
    staging.mkdir(parents=True)
    bar = Progress(f"pulse import {source.path.name}", source.size, progress)
    try:
        writer = _DayWriter(staging, buffer_bytes)
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
                for raw, reason in row.rejects:
                    if rejects_fh is None:
                        rejects_fh = open(rejects_path, "w", encoding="utf-8")  # noqa: SIM115
                    record = {"source_file": str(source.path), "line": row.line, "reason": reason, "raw": raw}
                    rejects_fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    result.rejected += 1
                    if first_rejects is not None and len(first_rejects) < FIRST_REJECTS:
                        first_rejects.append(f"{source.path}:{row.line}: {reason}")
                result.events_written += len(row.events)
                bar.update(source.bytes_read, result.rows_read, result.events_written)
        finally:
            if rejects_fh is not None:
                rejects_fh.close()
        bar.update(source.size, result.rows_read, result.events_written, force=True)
        staged = writer.staged()
        result.day_counts = dict(sorted(writer.counts.items()))
        result.sha256 = source.digest()
        result.stem = output_stem(fmt, result.sha256)
        result.event_types = dict(sorted(types.items()))
        name = f"{result.stem}.jsonl.gz"
        for day, path in staged.items():
            target = events_dir / day.isoformat() / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)  # readers never see a half-written file
            result.outputs.append(target)
        # What an earlier import of the same bytes wrote on days this one did not: not ours any more.
        for old in events_dir.glob(f"*/{name}"):
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
