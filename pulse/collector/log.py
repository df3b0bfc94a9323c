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
``min_free_bytes``, or when a write fails.

A full disk: every write is checked for completeness (:func:`write_all`: a short write is continued, and a
write that makes no progress or raises fails the whole group commit). A failed commit answers 503 to every
request it covered and cuts each file it touched back to its last committed size (:func:`cut_back`): only
ever shorter, never longer (a truncate to a size beyond the end would fill the gap with zero bytes), verified
by ``fstat``. The free-space check (at most once a second) only refuses early; it is the checked write that
makes "acknowledged" mean "on disk". Dead-letter files may be shared by several collector processes: each
append holds an ``flock`` on the file, so a cut-back never removes another process's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
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
from typing import Any

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


class ShortWrite(OSError):
    """A write that stored fewer bytes than asked and could not be continued (a full disk, a file size limit)."""


def write_all(file: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered binary ``file`` (``os.write`` semantics: a write may store fewer
    bytes than asked). Continues a short write; raises :class:`ShortWrite` when a write stores nothing, and
    whatever ``OSError`` the write raises (``ENOSPC``, ``EFBIG``, ``EIO``). What was written before a failure
    stays in the file: the caller cuts it back (:func:`cut_back`)."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        count = file.write(view[written:])
        if not count:  # 0 or None: no progress, so no retry (a full disk answers 0 or ENOSPC)
            raise ShortWrite(errno.ENOSPC, f"short write: {written} of {len(view)} bytes stored")
        written += count


def cut_back(fd: int, size: int) -> None:
    """Cut the file open as ``fd`` back to ``size`` bytes (its last committed size), fsync, and verify.

    Never extends: a file already at ``size`` is left alone, and one shorter than ``size`` (its committed bytes
    gone: nothing this process did) raises instead of being padded with zero bytes. Raises ``OSError`` when the
    file is not ``size`` bytes long afterwards."""
    actual = os.fstat(fd).st_size
    if actual < size:
        raise OSError(errno.EIO, f"file is {actual} bytes, shorter than its committed {size}: not extended")
    if actual > size:
        os.ftruncate(fd, size)
        os.fsync(fd)
        actual = os.fstat(fd).st_size
        if actual != size:
            raise OSError(errno.EIO, f"cut back to {size} bytes left {actual}")


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
        if error.errno != errno.EXDEV:  # landing on another file system: copy
            raise
        _copy_durably(segment, day_dir / f".{target.name}.tmp", target)
        _fsync_dir(day_dir)
        segment.unlink()
        _fsync_dir(segment.parent)
        return target
    _fsync_dir(day_dir)
    _fsync_dir(segment.parent)
    return target


def _copy_durably(source: Path, temporary: Path, target: Path) -> None:
    """Copy ``source`` to ``temporary`` (every write checked, fsynced), then rename it to ``target``. A failed copy
    (a full landing disk) removes the temporary file and raises: the source stays where it is."""
    try:
        with open(source, "rb", buffering=0) as reader, open(temporary, "wb", buffering=0) as sink:
            while chunk := reader.read(1 << 20):
                write_all(sink, chunk)
            os.fsync(sink.fileno())
        os.rename(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


class _Segment:
    """The open segment: its file, its lock, its committed size (every byte of it acknowledged or about to be)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = _segment_day(path)
        self.opened = time.monotonic()
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the segment
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0
        self.damaged = False  # a failed write could not be cut back: roll it (cut again first), write no more

    def cut_back(self) -> None:
        """Back to the committed size after a failed write; marks the segment damaged when that fails."""
        try:
            cut_back(self.file.fileno(), self.size)
        except OSError as error:
            self.damaged = True
            log.error("collector: could not cut segment %s back to %d bytes: %s", self.path.name, self.size, error)

    def close(self) -> None:
        if self.damaged:  # one more try; a torn tail left anyway is cut when it is published
            with contextlib.suppress(OSError):
                cut_back(self.file.fileno(), self.size)
        with contextlib.suppress(OSError):
            os.fsync(self.file.fileno())
        self.file.close()
        if self.damaged:
            with contextlib.suppress(OSError):
                cut_torn_tail(self.path)


def append_dead_letters(path: Path, records: bytes) -> None:
    """Append JSONL ``records`` to the dead-letter file ``path`` and fsync, all or nothing.

    Several collector processes may append to the same day's file: the append holds an exclusive ``flock`` on
    it, so the size read before writing is this append's own start. A torn tail found there (a process killed
    mid-append) is cut first; a failed append is cut back to where it started (never extended)."""
    with open(path, "a+b", buffering=0) as f:
        fd = f.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.fstat(fd).st_size
        if start and os.pread(fd, 1, start - 1) != b"\n":
            start = cut_torn_tail(path)
        try:
            write_all(f, records)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                cut_back(fd, start)
            raise


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
        self._unpublished: list[Path] = []  # closed segments of this process a roll could not publish yet
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

    @property
    def unpublished_segments(self) -> int:
        return len(self._unpublished)

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
            except Exception as error:  # noqa: BLE001 - every waiting request gets its 503, none hangs
                self.stats.write_errors += 1
                self._free_checked = 0.0  # look at the free space again before the next request
                if isinstance(error, OSError):
                    log.error("collector log write failed: %s", error)
                    reason = f"log write failed: {error.strerror or error}"
                else:
                    log.exception("collector log write failed")
                    reason = f"log write failed: {type(error).__name__}"
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(Unavailable(reason, 5))
            else:
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
            finally:
                self._pending_bytes -= size
            if self._pending:
                self._wake.set()

    def _commit(self, events: bytes, dead_letters: bytes) -> None:
        """In the writer thread: append, fsync, roll when due. All or nothing: when any write is short or fails,
        every file is cut back to its last committed size and the error is raised (the requests get 503)."""
        started = time.perf_counter()
        now = self.clock()
        segment = None
        if events:
            segment = self._segment
            if segment is not None and (segment.damaged or self._roll_due(segment, now.date())):
                self._roll()
                segment = None
            if segment is None:
                segment = self._segment = self._open_segment(now)
            try:
                write_all(segment.file, events)
                os.fsync(segment.file.fileno())
            except OSError:
                segment.cut_back()
                raise
        if dead_letters:
            try:
                append_dead_letters(self.dead_letter / f"{now.date().isoformat()}.jsonl", dead_letters)
            except OSError:
                if segment is not None:  # the events of this commit are fsynced, but not acknowledged: remove
                    segment.cut_back()
                raise
            self.stats.dead_letters += dead_letters.count(b"\n")
        if segment is not None:
            segment.size += len(events)
            self.stats.lines_written += events.count(b"\n")
            self.stats.bytes_written += len(events)
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
        """In the writer thread: close the open segment and publish it into the landing zone. A segment that
        cannot be published now (the landing disk is full) stays in the spool, closed and complete, and is
        published by a later roll (or by the next start's recovery)."""
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.close()
            self._unpublished.append(segment.path)
        self._publish_unpublished()

    def _publish_unpublished(self) -> None:
        """Publish the closed segments still in the spool, oldest first, until one cannot be published."""
        while self._unpublished:
            path = self._unpublished[0]
            try:
                cut_torn_tail(path)  # a no-op for a segment closed here; a recovered one may still be torn
                published = publish_segment(path, self.events_landing, self.instance)
            except FileNotFoundError:
                published = None  # another collector's recovery published it
            except OSError as error:
                log.error("collector: segment %s not published yet (kept in the spool): %s", path.name, error)
                return
            self._unpublished.pop(0)
            if published is not None:
                self.stats.segments_rolled += 1

    async def _roll_loop(self) -> None:
        """Roll an idle segment on time (an append rolls a busy one itself); retry unpublished segments."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, max(0.05, self.roll_seconds / 4)))
            segment = self._segment
            due = segment is not None and self._roll_due(segment, self.clock().date())
            if (due or self._unpublished) and not self._pending:
                try:
                    await loop.run_in_executor(self._executor, self._roll_if_due)
                except Exception:  # noqa: BLE001 - the roller keeps running; the next tick tries again
                    log.exception("collector: rolling the log segment failed")

    def _roll_if_due(self) -> None:
        """Roll the open segment when it is due; otherwise only retry the unpublished ones (while the landing
        disk stays full, the open segment is not closed every tick into a spool of tiny segments)."""
        segment = self._segment
        if segment is not None and self._roll_due(segment, self.clock().date()):
            self._roll()
        elif self._unpublished:
            self._publish_unpublished()

    def _recover(self) -> list[Path]:
        """Publish the segments of dead processes (unlocked), cutting torn tails first. One that cannot be
        published now (a full disk) is left to the roller, which retries; the collector starts anyway."""
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
            except OSError as error:
                log.error("collector: segment %s not recovered yet (kept in the spool): %s", path.name, error)
                self._unpublished.append(path)
                continue
            if target is not None:
                published.append(target)
                self.stats.recovered_segments += 1
                log.warning("collector: recovered segment %s -> %s", path.name, target)
        return published
