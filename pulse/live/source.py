"""Where the stream reads accepted events: a small interface (:class:`EventSource`) and its first
implementation over the collector's durable log (:class:`CollectorLogSource`). Kafka comes later (issue 23) as a
second implementation of the same interface.

A source hands out events in one fixed order, in batches, each batch with the **position** after it: an opaque
text the store commits in the same transaction as the state the batch produced
(:meth:`pulse.live.store.LiveStateStore.commit`). After a crash the processor asks for the events after the last
committed position, so a batch is either wholly in the state or read again.

The collector's log (pulse/collector/log.py) writes each accepted event as one JSON line to the open segment in
``spool/`` (``<YYYY-MM-DDTHHMMSS>-<pid>-<n>.jsonl``: opened at that second by that process, its n-th) and rolls a
closed segment into ``landing/events/<day>/collector-<host>-<stem>.jsonl`` by an atomic rename (same inode, same
bytes; across file systems a copy renamed into place before the spool file is removed). The segment's stem
names it in both places, so the position is ``<stem>:<byte offset>``: the bytes of that segment read so far,
always at a line end. The order is the segments' (open time, pid, n), then the lines in each.

What is read:

- whole lines only: a segment is read up to its last newline, so a line the collector is writing (or a torn
  line a killed collector left, never acknowledged and cut at its recovery) is never read;
- the current segment until it is finished: it is finished once it has been rolled into the landing zone (it
  never changes again there) and read to its end. While it is in the spool the source waits at its end for
  more lines; it does not move on to a later segment, which keeps the order when a segment rolls while being
  read: the rename changes the file's name, not its bytes, so the offset carries over from spool to landing.
  An empty segment is deleted at its roll instead of published: gone from both places at offset 0, it is
  finished.
- the next segment is the smallest stem after the current one, listing the spool before the landing days (a
  segment renamed between the two listings is then still seen in the landing zone).

Limits: one collector per log is assumed (``pulse live`` runs one): with two collectors writing one spool, a
segment opened in the same second by a lower pid after a later one was finished would be skipped. A segment
left in the spool by a dead collector is read up to its last whole line, and the source moves past it only
once a restarted collector has rolled it. The collector's group commit acknowledges a write after its fsync;
if that fsync fails the collector cuts the lines back, and a reader that read them in between would have read
unacknowledged lines: rare (a failing disk). The source sees it (no newline just before the committed offset
of the open segment: it is shorter, or other bytes are there now), reports it, and reads the segment again from
its start: the events already processed are skipped by their ids, the lines written since the cut are read,
and the cut ones' senders got 503 and send them again with the same ids (skipped: counted a little early, and
once). Not seen: a cut-back after which a new line happens to end exactly at the committed offset; the lines
between the cut and that offset are then missed by the live state (not by the batch). The exact fix is for
the collector to publish its committed size beside the open segment, and the source to read up to it. A rolled
segment shorter than the committed offset is an error (:class:`SourceError`).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pulse.core.contract import FIELDS, ValueRuleError, parse_boolean, parse_rfc3339
from pulse.live.clock import as_utc

LiveEvent = dict[str, Any]
"""A live event: the contract's fields (pulse/core/contract.py) by name; ``event_time`` and ``received_at``
aware UTC datetimes, empty strings as None, absent fields None."""

SEGMENT_STEM = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6})-(\d+)-(\d+)")
LANDING_PREFIX = "collector-"


class SourceError(RuntimeError):
    """The source cannot go on from the committed position (a segment it read is gone or shorter)."""


class LiveEventError(ValueError):
    """A line that is not a contract event (the collector validated it: a file written by something else)."""


@dataclass(frozen=True)
class RejectedLine:
    """A line the source could not turn into a live event: where it is and why."""

    where: str  # file:line
    reason: str


@dataclass
class SourceBatch:
    """Events in the source's order and the position after the last of them (``position`` equals the position
    asked for when nothing was read). ``at_end``: nothing more was there to read when the batch was cut."""

    events: list[LiveEvent]
    position: str
    at_end: bool
    rejected: list[RejectedLine] = field(default_factory=list)


class EventSource(Protocol):
    """Accepted events in one fixed order. ``read(after, max_events)`` returns at most ``max_events`` events
    following the position ``after`` ("" is the beginning), without waiting."""

    name: str

    def read(self, after: str, max_events: int) -> SourceBatch: ...


_FIELD_TYPES = {f.name: f.type for f in FIELDS}
_NO_FIELDS = dict.fromkeys(_FIELD_TYPES)


def live_event(record: object) -> LiveEvent:
    """A decoded JSON line as a live event; :class:`LiveEventError` naming the field and value otherwise.
    Values are typed as ingestion types them: strings (a number in a string field as its JSON text, "" as
    None), doubles, integers, booleans, timestamps (aware UTC); fields outside the contract are left out."""
    if not isinstance(record, dict):
        raise LiveEventError(f"not a JSON object: {type(record).__name__}")
    event: LiveEvent = dict(_NO_FIELDS)
    for name, value in record.items():
        kind = _FIELD_TYPES.get(name)
        if kind is None or value is None or value == "":
            continue
        try:
            if kind == "string":
                event[name] = value if isinstance(value, str) else json.dumps(value)
            elif kind == "timestamp":
                event[name] = as_utc(parse_rfc3339(value))
            elif kind == "double":
                event[name] = float(value)
            elif kind == "bigint":
                event[name] = int(value)
            elif kind == "boolean":
                event[name] = parse_boolean(value)
            else:
                event[name] = value
        except (ValueRuleError, ValueError, TypeError) as error:
            raise LiveEventError(f"{name} = {value!r}: {error}") from None
    for name in ("event_id", "event_type", "event_time"):
        if event[name] is None:
            raise LiveEventError(f"{name} is missing")
    if event["user_id"] is None and event["anonymous_id"] is None:
        raise LiveEventError("neither user_id nor anonymous_id")
    return event


def segment_key(stem: str) -> tuple[str, int, int] | None:
    """The order of a segment: (open time, pid, n); None for a name that is not a segment's."""
    match = SEGMENT_STEM.fullmatch(stem)
    return (match.group(1), int(match.group(2)), int(match.group(3))) if match else None


def landing_stem(name: str) -> str | None:
    """The segment stem of a landing file ``collector-<host>-<stem>.jsonl`` (the host has no ``-``)."""
    if not (name.startswith(LANDING_PREFIX) and name.endswith(".jsonl")):
        return None
    _, sep, stem = name[len(LANDING_PREFIX) : -len(".jsonl")].partition("-")
    return stem if sep and segment_key(stem) else None


def parse_position(position: str) -> tuple[str, int]:
    """``<stem>:<offset>`` as (stem, offset); ("", 0) for the beginning."""
    if not position:
        return "", 0
    stem, sep, offset = position.rpartition(":")
    if not sep or segment_key(stem) is None or not offset.isdigit():
        raise SourceError(f"not a collector log position: {position!r} (expected <segment stem>:<byte offset>)")
    return stem, int(offset)


class CollectorLogSource:
    """The collector's durable log: ``spool`` (open segments) and ``events_landing`` (rolled ones). See the
    module docstring for the order and the guarantees. ``read_bytes``: at most this much is read at once."""

    name = "collector"

    def __init__(self, spool: Path, events_landing: Path, *, read_bytes: int = 4 << 20, landing_every: float = 1.0):
        self.spool = spool
        self.events_landing = events_landing
        self.read_bytes = read_bytes
        self.landing_every = landing_every  # seconds between landing listings while waiting for a new segment
        self._landed: dict[str, Path] = {}  # stem -> its landing file (immutable once there)
        self._landing_listed = float("-inf")

    # ------------------------------------------------------------------ finding segments

    def _landing_path(self, stem: str) -> Path | None:
        if stem in self._landed:
            return self._landed[stem]
        for path in (self.events_landing / stem[:10]).glob(f"{LANDING_PREFIX}*-{stem}.jsonl"):
            if landing_stem(path.name) == stem:
                self._landed[stem] = path
                return path
        return None

    def _locate(self, stem: str) -> tuple[Path | None, bool]:
        """(the segment's file, whether it is final: rolled into the landing zone). The spool is looked at
        first: a file gone from it has been renamed into the landing zone (or, empty, deleted)."""
        if stem not in self._landed:
            spooled = self.spool / f"{stem}.jsonl"
            if spooled.exists():
                return spooled, False
        landed = self._landing_path(stem)
        return landed, landed is not None

    def _next_stem(self, after: str, *, force_landing: bool) -> str | None:
        """The first segment after ``after`` ("": the first of all), listing the spool, then the landing days
        from ``after``'s on. While the spool shows nothing newer, the landing days are listed at most every
        ``landing_every`` seconds (a segment opened and rolled between two looks is found then)."""
        key = segment_key(after) if after else None
        newer = []
        for path in self.spool.glob("*.jsonl") if self.spool.is_dir() else ():
            k = segment_key(path.stem)
            if k is not None and (key is None or k > key):
                newer.append((k, path.stem))
        now = time.monotonic()
        if not (newer or force_landing or now - self._landing_listed >= self.landing_every):
            return None
        self._landing_listed = now
        first_day = after[:10] if after else ""
        days = (
            sorted(d for d in os.listdir(self.events_landing) if d >= first_day) if self.events_landing.is_dir() else []
        )
        for day in days:
            folder = self.events_landing / day
            if not folder.is_dir():
                continue
            for name in os.listdir(folder):
                stem = landing_stem(name)
                k = segment_key(stem) if stem else None
                if stem and k is not None and (key is None or k > key):
                    self._landed[stem] = folder / name
                    newer.append((k, stem))
        return min(newer)[1] if newer else None

    # ------------------------------------------------------------------ reading

    def read(self, after: str, max_events: int) -> SourceBatch:
        stem, offset = parse_position(after)
        events: list[LiveEvent] = []
        rejected: list[RejectedLine] = []
        while True:
            if not stem:
                first = self._next_stem("", force_landing=True)
                if first is None:
                    return SourceBatch(events, "", True, rejected)
                stem, offset = first, 0
            path, final = self._locate(stem)
            if path is None:
                if offset:
                    raise SourceError(
                        f"collector log segment {stem} is gone from {self.spool} and {self.events_landing} "
                        f"after {offset} bytes of it were read"
                    )
                size, consumed, final = 0, 0, True  # an empty segment, deleted at its roll
            else:
                if offset and not final and not _line_ends_at(path, offset):
                    # the collector cut lines back after a failed write (never acknowledged: their senders got
                    # 503 and send them again, same ids) and may have written new ones since: read the segment
                    # again from its start; the events already processed are skipped by their ids
                    rejected.append(
                        RejectedLine(
                            f"{path} at byte {offset}",
                            "cut back by the collector after it was read (a failed write, never acknowledged): "
                            "reading the segment again from its start",
                        )
                    )
                    offset = 0
                try:
                    size, consumed = self._read_lines(path, offset, max_events, events, rejected)
                except FileNotFoundError:
                    continue  # renamed between the look and the open: look again
                if size < offset:
                    raise SourceError(f"collector log segment {path} is {size} bytes, shorter than the {offset} read")
            position = after_position(stem, consumed)
            if len(events) >= max_events:
                return SourceBatch(events, position, False, rejected)
            if not final:  # at the end of the open segment: wait for more lines or its roll
                return SourceBatch(events, position, True, rejected)
            if consumed < size:  # a landed segment never ends in a torn line (the collector cuts it first)
                rejected.append(RejectedLine(f"{path} at byte {consumed}", "a last line without its newline"))
                position = after_position(stem, size)  # passed once, not reported again at every look
            following = self._next_stem(stem, force_landing=False)
            if following is None:
                return SourceBatch(events, position, True, rejected)
            stem, offset = following, 0

    def _read_lines(
        self, path: Path, offset: int, limit: int, events: list[LiveEvent], rejected: list[RejectedLine]
    ) -> tuple[int, int]:
        """Read the whole lines of ``path`` from ``offset`` into ``events`` until it holds ``limit``; returns
        (the file's size when opened, the offset after the last line taken)."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            consumed = offset
            while len(events) < limit and consumed < size:
                f.seek(consumed)
                data = f.read(min(size - consumed, self.read_bytes))
                end = data.rfind(b"\n") + 1
                if end == 0 and consumed + len(data) < size:  # one line longer than a read: read the rest
                    f.seek(consumed)
                    data = f.read(size - consumed)
                    end = data.rfind(b"\n") + 1
                if end == 0:
                    break  # a line still being written (or a torn one): not read
                start = 0
                while start < end and len(events) < limit:
                    newline = data.index(b"\n", start)
                    text = data[start:newline].strip()
                    if text:
                        try:
                            events.append(live_event(json.loads(text)))
                        except (LiveEventError, ValueError) as error:
                            rejected.append(RejectedLine(f"{path} at byte {consumed + start}", str(error)))
                    start = newline + 1
                consumed += start
        return size, consumed


def _line_ends_at(path: Path, offset: int) -> bool:
    """Whether ``path`` holds a newline just before ``offset`` (where a committed read ended). A missing file
    counts as yes: it was renamed, and the caller looks again."""
    try:
        with open(path, "rb") as f:
            return os.pread(f.fileno(), 1, offset - 1) == b"\n"
    except FileNotFoundError:
        return True


def after_position(stem: str, offset: int) -> str:
    return f"{stem}:{offset}" if stem else ""
