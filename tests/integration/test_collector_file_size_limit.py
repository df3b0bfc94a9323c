"""The real `pulse collect` on a file system that fills (issue 20, point 1): every acknowledged event is on disk,
whole, once; no segment or landing file holds a torn line or a NUL byte, also after a SIGKILL and the restart's
recovery.

The collector runs under a file size limit (RLIMIT_FSIZE, no root needed): to the kernel each segment is a disk
of that size. A write crossing it stores what fits and returns that count, the next write fails with EFBIG:
the short write then error of a full disk. Segments roll every 0.5 s, so the "disk" frees up again and the
clients, which retry a refused batch with the same ids as the tracker does, get through. Three client threads
send batches of five events while the log keeps hitting the limit; the collector is SIGKILLed once and
restarted, then stopped with SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from collector_process import RetryingClient, free_port, start_collector

pytestmark = pytest.mark.integration

FILE_SIZE_LIMIT = 12 << 10  # about 10 batches of five events per segment


def test_acknowledged_events_survive_a_full_disk_and_a_kill(tmp_path: Path) -> None:
    port = free_port()
    stop = threading.Event()
    with open(tmp_path / "collector.log", "wb") as errors:
        collector = start_collector(tmp_path, port, file_size_limit=FILE_SIZE_LIMIT, stderr=errors)
        clients = [RetryingClient(f"c{i}", port, stop) for i in range(3)]
        for client in clients:
            client.start()
        try:
            time.sleep(2.5)
            collector.send_signal(signal.SIGKILL)
            collector.wait()
            collector = start_collector(tmp_path, port, file_size_limit=FILE_SIZE_LIMIT, stderr=errors)
            time.sleep(2.5)
            stop.set()
            for client in clients:
                client.join(timeout=30)
            collector.send_signal(signal.SIGTERM)
            assert collector.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            stop.set()
            if collector.poll() is None:
                collector.kill()

    acknowledged = set().union(*(c.acknowledged for c in clients))
    uncertain = set().union(*(c.uncertain for c in clients))
    refusals = [refusal for c in clients for refusal in c.refusals]
    assert {status for status, _ in refusals} <= {503}, refusals[:5]
    refused_full = sum(answer["error"].startswith("log write failed") for _, answer in refusals)  # the limit hit
    assert len(acknowledged) > 200 and refused_full > 0, (len(acknowledged), refused_full)

    collector_dir, landing = tmp_path / "collector", tmp_path / "landing" / "events"
    assert list((collector_dir / "spool").iterdir()) == []  # everything published, the killed run's too
    files = sorted(landing.rglob("*.jsonl"))
    assert files and all(f.stat().st_size <= FILE_SIZE_LIMIT for f in files)
    landed: Counter[str] = Counter()
    for path in files:
        data = path.read_bytes()
        assert b"\0" not in data, f"{path.name} holds NUL bytes"
        assert data.endswith(b"\n"), f"{path.name} ends in a torn line: {data[-80:]!r}"
        for line in data.splitlines():
            landed[json.loads(line)["event_id"]] += 1
    missing = acknowledged - set(landed)
    assert not missing, f"{len(missing)} acknowledged events are not on disk"
    # A 503 keeps nothing, so an event is there twice only when a kill cut its request after the write.
    twice = {event_id for event_id, count in landed.items() if count > 1}
    assert twice <= uncertain, sorted(twice - uncertain)[:5]
    assert set(landed) <= acknowledged | uncertain  # nothing landed that was refused
