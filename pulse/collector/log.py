"""The collector's durable log: accepted events are on disk (written and fsynced) before they are acknowledged.

Requests hand their lines to :meth:`DurableLog.append` and wait. One writer (a thread, so the event loop keeps
parsing requests meanwhile) takes everything pending, writes it with one ``write`` per file and ONE ``fsync``
per file, then wakes every request it covered: a group commit. Under load a single fsync covers many
requests, so the cost of durability is shared.

Events go to a segment file in ``spool/`` (JSONL, one event per line). A segment rolls into the landing zone,
``landing/events/<day>/collector-*.jsonl`` (the day it was received, UTC: the layout ingestion reads), when it
is ``roll_seconds`` old, ``roll_bytes`` big, at UTC midnight, and at shutdown. Rolling is atomic: the segment
is already fsynced; it is renamed into the landing day (or, across file systems, copied to a dot-file there,
fsynced, renamed) and the directory fsynced, so ingestion never sees half a file.

A crash (even SIGKILL) loses nothing acknowledged: at start the log rolls every segment left in ``spool/``
by a dead process, first cutting a torn last line (written, never acknowledged). Segments of a live process
are locked (``flock``) and left alone.

Back-pressure instead of unbounded buffering: :class:`Unavailable` (answered 503 with Retry-After) when the
bytes waiting for the disk exceed ``max_pending_bytes``, when free disk space falls below
``min_free_bytes``, or when a write fails (the segment is cut back to its last committed byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"


class Unavailable(RuntimeError):
    """The log cannot take more now; ``retry_after`` seconds is a fair wait."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class LogStats:
    """Counters the metrics endpoint reads."""

    commits: int = 0
    commit_seconds: list[float] = field(default_factory=list)  # recent group-commit durations (bounded)
    lines_written: int = 0
    bytes_written: int = 0
    dead_letters: int = 0
    segments_rolled: int = 0
    recovered_segments: int = 0
    write_errors: int = 0
    rejected_overload: int = 0
    rejected_disk: int = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_day(path: Path) -> date:
    """A segment's name starts with the UTC day it was opened: ``<YYYY-MM-DD>T<HHMMSS>-<pid>-<n>.jsonl``."""
    return date.fromisoformat(path.name[:10])


def cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline (a torn line was never acknowledged); its new size."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        keep = size
        block = 1 << 16
        while keep > 0:
            start = max(0, keep - block)
            f.seek(start)
            chunk = f.read(keep - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        if keep != size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return keep


def publish_segment(segment: Path, events_landing: Path, instance: str) -> Path | None:
    """Move a closed, fsynced segment into ``events_landing/<day>/`` atomically; None if it was empty."""
    if segment.stat().st_size == 0:
        segment.unlink()
        return None
    day_dir = events_landing / _segment_day(segment).isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    target = day_dir / f"collector-{instance}-{segment.stem}{SEGMENT_SUFFIX}"
    try:
        os.rename(segment, target)
    except OSError as error:
        if error.errno != 18:  # EXDEV: landing on another file system
            raise
        temporary = day_dir / f".{target.name}.tmp"
        with open(segment, "rb") as source, open(temporary, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
            sink.flush()
            os.fsync(sink.fileno())
        os.rename(temporary, target)
        _fsync_dir(day_dir)
        segment.unlink()
        _fsync_dir(segment.parent)
        return target
    _fsync_dir(day_dir)
    _fsync_dir(segment.parent)
    return target


class _Segment:
    """The open segment: its file, its lock, its committed size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = _segment_day(path)
        self.opened = time.monotonic()
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the segment
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self.file.fileno())
        self.file.close()


class DurableLog:
    """See the module docstring. Create, ``await start()``, ``await append(...)`` from requests, ``await close()``."""

    def __init__(
        self,
        spool: Path,
        events_landing: Path,
        dead_letter: Path,
        *,
        roll_seconds: float = 60.0,
        roll_bytes: int = 64 << 20,
        max_pending_bytes: int = 32 << 20,
        min_free_bytes: int = 256 << 20,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spool = spool
        self.events_landing = events_landing
        self.dead_letter = dead_letter
        self.roll_seconds = roll_seconds
        self.roll_bytes = roll_bytes
        self.max_pending_bytes = max_pending_bytes
        self.min_free_bytes = min_free_bytes
        self.clock = clock
        self.instance = socket.gethostname().replace("-", "_")[:40] or "collector"
        self.stats = LogStats()
        self._pending: list[tuple[bytes, bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._roller: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-log")
        self._segment: _Segment | None = None
        self._sequence = 0
        self._closing = False
        self._free_bytes = shutil.disk_usage(spool).free if spool.exists() else 0
        self._free_checked = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[Path]:
        """Create the folders, roll what a dead process left in the spool, start the writer."""
        for folder in (self.spool, self.events_landing, self.dead_letter):
            folder.mkdir(parents=True, exist_ok=True)
        recovered = await asyncio.get_running_loop().run_in_executor(self._executor, self._recover)
        self._writer = asyncio.create_task(self._write_loop(), name="pulse-log-writer")
        self._roller = asyncio.create_task(self._roll_loop(), name="pulse-log-roller")
        return recovered

    async def close(self) -> None:
        """Commit what is pending, roll the open segment into the landing zone, stop."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        if self._roller is not None:
            self._roller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._roller
        await asyncio.get_running_loop().run_in_executor(self._executor, self._roll)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ requests

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def free_bytes(self) -> int:
        return self._free_bytes

    def availability(self) -> Unavailable | None:
        """Why the log would refuse an append now (None: it would take it)."""
        if self._closing:
            return Unavailable("shutting down", 5)
        now = time.monotonic()
        if now - self._free_checked > 1.0:
            self._free_checked = now
            with contextlib.suppress(OSError):
                self._free_bytes = shutil.disk_usage(self.spool).free
        if self._free_bytes < self.min_free_bytes:
            return Unavailable(f"low disk space: {self._free_bytes} bytes free", 30)
        if self._pending_bytes > self.max_pending_bytes:
            return Unavailable("overloaded: the disk is behind", 1)
        return None

    async def append(self, events: bytes, dead_letters: bytes = b"") -> None:
        """Return once ``events`` (JSONL) and ``dead_letters`` (JSONL) are written and fsynced.
        Raises :class:`Unavailable` instead of queueing beyond the limits, or when the write failed."""
        refused = self.availability()
        if refused is not None:
            if refused.retry_after == 30:
                self.stats.rejected_disk += 1
            else:
                self.stats.rejected_overload += 1
            raise refused
        if not events and not dead_letters:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, dead_letters, future))
        self._pending_bytes += len(events) + len(dead_letters)
        self._wake.set()
        await future

    # ------------------------------------------------------------------ writer

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            size = sum(len(e) + len(d) for e, d, _ in batch)
            try:
                await loop.run_in_executor(
                    self._executor, self._commit, b"".join(e for e, _, _ in batch), b"".join(d for _, d, _ in batch)
                )
            except OSError as error:
                self.stats.write_errors += 1
                log.error("collector log write failed: %s", error)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(Unavailable(f"log write failed: {error.strerror or error}", 5))
            else:
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
            finally:
                self._pending_bytes -= size
            if self._pending:
                self._wake.set()

    def _commit(self, events: bytes, dead_letters: bytes) -> None:
        """In the writer thread: append, fsync, roll when due. On failure the segment is cut back."""
        started = time.perf_counter()
        now = self.clock()
        if events:
            segment = self._segment
            if segment is not None and self._roll_due(segment, now.date()):
                self._roll()
                segment = None
            if segment is None:
                segment = self._segment = self._open_segment(now)
            try:
                segment.file.write(events)
                os.fsync(segment.file.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.file.fileno(), segment.size)
                raise
            segment.size += len(events)
            self.stats.lines_written += events.count(b"\n")
            self.stats.bytes_written += len(events)
        if dead_letters:
            path = self.dead_letter / f"{now.date().isoformat()}.jsonl"
            with open(path, "ab") as f:
                f.write(dead_letters)
                f.flush()
                os.fsync(f.fileno())
            self.stats.dead_letters += dead_letters.count(b"\n")
        elapsed = time.perf_counter() - started
        self.stats.commits += 1
        self.stats.commit_seconds.append(elapsed)
        if len(self.stats.commit_seconds) > 4096:
            del self.stats.commit_seconds[:2048]

    def _roll_due(self, segment: _Segment, today: date) -> bool:
        return (
            segment.day != today
            or segment.size >= self.roll_bytes
            or time.monotonic() - segment.opened >= self.roll_seconds
        )

    def _open_segment(self, now: datetime) -> _Segment:
        self._sequence += 1
        name = f"{now.strftime('%Y-%m-%dT%H%M%S')}-{os.getpid()}-{self._sequence}{SEGMENT_SUFFIX}"
        segment = _Segment(self.spool / name)
        _fsync_dir(self.spool)
        return segment

    def _roll(self) -> None:
        """In the writer thread: close the open segment and publish it into the landing zone."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.close()
        if publish_segment(segment.path, self.events_landing, self.instance) is not None:
            self.stats.segments_rolled += 1

    async def _roll_loop(self) -> None:
        """Roll an idle segment on time (an append rolls a busy one itself)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, max(0.05, self.roll_seconds / 4)))
            segment = self._segment
            if segment is not None and self._roll_due(segment, self.clock().date()) and not self._pending:
                await loop.run_in_executor(self._executor, self._roll_if_due)

    def _roll_if_due(self) -> None:
        segment = self._segment
        if segment is not None and self._roll_due(segment, self.clock().date()):
            self._roll()

    def _recover(self) -> list[Path]:
        """Publish the segments of dead processes (unlocked), cutting torn tails first."""
        published = []
        for path in sorted(self.spool.glob(f"*{SEGMENT_SUFFIX}")):
            try:
                with open(path, "r+b") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live collector's open segment
                    cut_torn_tail(path)
                    target = publish_segment(path, self.events_landing, self.instance)
            except FileNotFoundError:
                continue
            if target is not None:
                published.append(target)
                self.stats.recovered_segments += 1
                log.warning("collector: recovered segment %s -> %s", path.name, target)
        return published
