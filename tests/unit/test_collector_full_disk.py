"""Acknowledged means on disk, also when the disk fills (issue 20, point 1).

The collector's durable log runs through the HTTP app on a simulated small file system: :class:`SmallDisk`
replaces ``open`` in pulse/collector/log.py with files whose ``write`` behaves as the kernel's does on a full
disk: it stores what fits and returns that count (a short write), and raises ``ENOSPC`` when nothing fits.
Everything else (fsync, ftruncate, rename) is the real file system's, so a truncate to a size beyond the end
really fills the gap with zero bytes. Clients retry a refused batch with the same ids, as the tracker does,
and the operator frees some space after every refusal.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_collector import CHROME, event, request, run_app

from pulse.collector import log as durable
from pulse.collector.app import Collector
from pulse.collector.log import cut_back, write_all


class SmallDisk:
    """Files under ``root`` share ``capacity`` bytes; a write past it is short, then ``ENOSPC``."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.short_writes = 0
        self.refused_writes = 0

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _ShimFile(self, builtins.open(file, mode, *args, **kwargs))


class _ShimFile:
    def __init__(self, disk: SmallDisk, real: Any) -> None:
        self._disk, self._real = disk, real

    def write(self, data: bytes) -> int:
        free = self._disk.capacity - self._disk.used()
        if free <= 0:
            self._disk.refused_writes += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if len(data) > free:
            self._disk.short_writes += 1
            data = bytes(data)[:free]
        return self._real.write(data)

    def __enter__(self) -> _ShimFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _segment_and_landing_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "landing").rglob("*.jsonl")) + sorted((tmp_path / "collector").rglob("*.jsonl"))


def _assert_whole_lines(files: list[Path]) -> None:
    for path in files:
        data = path.read_bytes()
        assert b"\0" not in data, f"{path.name} holds NUL bytes (a truncate extended it)"
        assert not data or data.endswith(b"\n"), f"{path.name} ends in a torn line: {data[-60:]!r}"
        for line in data.splitlines():
            json.loads(line)  # every line whole JSON


@pytest.mark.parametrize("capacity", [3_000, 7_500])  # the disk fills at different points of a batch
def test_every_acknowledged_event_is_on_disk_once_when_the_disk_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capacity: int
) -> None:
    disk = SmallDisk(tmp_path, capacity)
    monkeypatch.setattr(durable, "open", disk.open, raising=False)
    acknowledged: list[str] = []
    rejected: list[str] = []
    refusals: list[dict] = []

    async def scenario(app: Collector) -> None:
        for n in range(40):
            ids = [f"b{n}-{i}" for i in range(3)]
            events = [event(0, event_id=i, properties={"n": n, "pad": "x" * (37 * k)}) for k, i in enumerate(ids)]
            if n % 4 == 0:  # an invalid event as well: its dead letter takes space too
                events.append(event(0, event_id=f"b{n}-bad", event_type="nope"))
            body = json.dumps({"events": events}).encode()
            while True:  # the tracker retries the same ids until it gets an answer other than 503
                response = await request(app, "POST", "/collect", body, {"user-agent": CHROME})
                if response.status == 200:
                    acknowledged.extend(ids)
                    rejected.extend(e["event_id"] for e in response.json()["errors"])
                    break
                assert response.status == 503 and response.headers["retry-after"] == "5", response.body
                refusals.append(response.json())
                assert len(refusals) < 400, "the log never recovers from the full disk"
                disk.capacity += 400  # the operator frees a little space

    run_app(tmp_path, scenario)

    assert disk.short_writes > 0 and len(refusals) > 0, "the disk never filled: the test proves nothing"
    assert all(r["error"].startswith("log write failed") for r in refusals)
    files = _segment_and_landing_files(tmp_path)
    _assert_whole_lines(files)
    landed = [
        json.loads(line)["event_id"]
        for path in sorted((tmp_path / "landing" / "events").rglob("collector-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    assert sorted(landed) == sorted(acknowledged)  # every acknowledged event, each once, nothing else
    dead = [
        item["payload"]["event_id"]
        for path in sorted((tmp_path / "collector" / "dead-letter").glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        for item in json.loads(line)["rejected"]
    ]
    assert sorted(dead) == sorted(rejected) and len(rejected) == 10


def test_a_commit_whose_dead_letters_fail_keeps_none_of_its_events(tmp_path: Path, monkeypatch) -> None:
    """The events of a batch are written first; when its dead letters then fail, the events are cut back too:
    the batch gets 503 and nothing of it stays (its retry would otherwise add a second copy)."""
    disk = SmallDisk(tmp_path, 10**9)
    monkeypatch.setattr(durable, "open", disk.open, raising=False)
    statuses: list[int] = []

    async def scenario(app: Collector) -> None:
        statuses.append((await request(app, "POST", "/collect", _batch(event(1)))).status)
        disk.capacity = disk.used() + 700  # room for the next events, not for their dead letter as well
        mixed = _batch(event(2, properties={"p": "y" * 300}), event(3, event_type="nope", page_title="t" * 500))
        statuses.append((await request(app, "POST", "/collect", mixed)).status)
        disk.capacity = 10**9
        statuses.append((await request(app, "POST", "/collect", mixed)).status)

    run_app(tmp_path, scenario)
    assert statuses == [200, 503, 200]
    assert disk.short_writes + disk.refused_writes > 0
    _assert_whole_lines(_segment_and_landing_files(tmp_path))
    landed = [
        json.loads(line)["event_id"]
        for path in (tmp_path / "landing" / "events").rglob("collector-*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert sorted(landed) == ["e1", "e2"]


def _batch(*events: Any) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_write_all_continues_short_writes_and_fails_when_nothing_is_stored(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path, 10)
    with disk.open(tmp_path / "f", "ab", buffering=0) as f, pytest.raises(OSError) as error:
        write_all(f, b"0123456789abcdef")
    assert error.value.errno == errno.ENOSPC
    assert (tmp_path / "f").read_bytes() == b"0123456789"  # what fitted; the caller cuts it back

    class Stalled:
        def write(self, data: bytes) -> int:
            return 0

    with pytest.raises(OSError, match="short write: 0 of 3 bytes"):
        write_all(Stalled(), b"abc")


def test_cut_back_never_extends_a_file(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')
    fd = os.open(path, os.O_RDWR)
    try:
        cut_back(fd, 8)
        assert path.read_bytes() == b'{"a":1}\n'
        cut_back(fd, 8)  # already there: left alone
        with pytest.raises(OSError, match="shorter than its committed 20"):
            cut_back(fd, 20)
    finally:
        os.close(fd)
    assert path.read_bytes() == b'{"a":1}\n'  # no zero fill


def test_dead_letter_appends_cut_a_torn_tail_left_by_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "2026-11-27.jsonl"
    path.write_bytes(b'{"rejected": []}\n{"rejec')
    durable.append_dead_letters(path, b'{"rejected": [1]}\n')
    assert path.read_bytes() == b'{"rejected": []}\n{"rejected": [1]}\n'


@pytest.fixture
def landing_full(monkeypatch) -> dict:
    """The landing zone refuses every segment (ENOSPC) while ``landing_full["on"]``; set it False to free it."""
    real_publish = durable.publish_segment
    state = {"on": True}

    def publish(segment: Path, events_landing: Path, instance: str) -> Path | None:
        if state["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_publish(segment, events_landing, instance)

    monkeypatch.setattr(durable, "publish_segment", publish)
    return state


def test_a_segment_the_landing_zone_refuses_is_kept_and_published_later(tmp_path: Path, landing_full: dict) -> None:
    """A roll whose publication fails (a full landing file system) fails no request: the closed segment stays in
    the spool, complete, and a later roll publishes it."""

    async def main() -> tuple[int, int]:
        log = durable.DurableLog(tmp_path / "spool", tmp_path / "landing", tmp_path / "dead", min_free_bytes=0)
        log.roll_seconds = 0.0  # every commit rolls the segment before it
        await log.start()
        await log.append(b'{"n":1}\n')
        await log.append(b'{"n":2}\n')  # rolls segment 1: refused by the landing zone
        waiting = log.unpublished_segments
        landing_full["on"] = False
        await log.append(b'{"n":3}\n')  # rolls again: segments 1 and 2 published
        await log.close()
        return waiting, log.stats.segments_rolled

    waiting, rolled = asyncio.run(main())
    assert waiting == 1 and rolled == 3
    assert sorted(
        json.loads(line)["n"] for f in (tmp_path / "landing").rglob("*.jsonl") for line in f.read_bytes().splitlines()
    ) == [1, 2, 3]
    assert list((tmp_path / "spool").iterdir()) == []


def test_retrying_an_unpublished_segment_does_not_roll_the_open_one(tmp_path: Path, landing_full: dict) -> None:
    """While the landing zone refuses, the roller retries the closed segment every tick without closing the open
    one (not due): the spool keeps two segments, not one more per tick. Once the landing zone takes files again,
    the retry publishes the closed one and the open one stays open."""
    spool = tmp_path / "spool"

    async def main() -> tuple[list[int], list[int], int]:
        log = durable.DurableLog(spool, tmp_path / "landing", tmp_path / "dead", min_free_bytes=0)
        log.roll_seconds = 0.0
        await log.start()
        log._roller.cancel()  # the test ticks the roller itself
        await log.append(b'{"n":1}\n')
        await log.append(b'{"n":2}\n')  # rolls segment 1: refused by the landing zone
        log.roll_seconds = 3600.0  # the open segment (n=2) is not due again
        loop = asyncio.get_running_loop()
        spooled = []
        for _ in range(5):  # five roller ticks while the landing zone is full
            await loop.run_in_executor(log._executor, log._roll_if_due)
            spooled.append(len(list(spool.glob(f"*{durable.SEGMENT_SUFFIX}"))))
        landing_full["on"] = False
        await loop.run_in_executor(log._executor, log._roll_if_due)
        after = [len(list(spool.glob(f"*{durable.SEGMENT_SUFFIX}"))), log.unpublished_segments]
        rolled_before_close = log.stats.segments_rolled
        await log.close()
        return spooled, after, rolled_before_close

    spooled, after, rolled = asyncio.run(main())
    assert spooled == [2] * 5
    assert after == [1, 0] and rolled == 1  # segment 1 published; the open one still open
    landed = [
        json.loads(line)["n"] for f in (tmp_path / "landing").rglob("*.jsonl") for line in f.read_bytes().splitlines()
    ]
    assert sorted(landed) == [1, 2]
