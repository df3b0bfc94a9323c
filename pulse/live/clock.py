"""Time for the stream: an injectable clock and one text form for every timestamp of the live state.

Everything in ``pulse.live`` that waits or asks what time it is takes a :data:`Clock` (a function returning an
aware UTC datetime), so tests and the browser test can move time forward (:class:`ManualClock`). Timestamps in
the store are ISO-8601 UTC text with microseconds (``2026-12-08T01:02:03.456000+00:00``): one fixed width, so
text order is time order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told (tests): ``clock()``, ``clock.set(t)``, ``clock.advance(minutes=30)``."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = as_utc(now)

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken as UTC (the warehouse's convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The store's text form of a timestamp: UTC, microseconds, ``+00:00``."""
    return as_utc(moment).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """A timestamp in the store's text form (or any ISO-8601 with an offset) as an aware UTC datetime."""
    return as_utc(datetime.fromisoformat(text))


class OffsetFileClock:
    """The wall clock plus an offset in seconds read from a file (absent or empty: 0), so a test in another
    process can move a running processor's time forward (``echo 1800 > FILE``: 30 minutes ahead). The file is
    read again when it changes; a value that is not a number is an error naming the file."""

    def __init__(self, path: Path, base: Clock = system_clock) -> None:
        self.path = path
        self.base = base
        self._stamp: tuple[int, int] | None = None
        self._offset = timedelta()

    def offset(self) -> timedelta:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._offset = None, timedelta()
            return self._offset
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            text = self.path.read_text().strip()
            try:
                seconds = float(text) if text else 0.0
            except ValueError:
                raise ValueError(
                    f"{self.path}: expected a number of seconds to add to the clock, got {text!r}"
                ) from None
            self._stamp, self._offset = stamp, timedelta(seconds=seconds)
        return self._offset

    def __call__(self) -> datetime:
        return self.base() + self.offset()
