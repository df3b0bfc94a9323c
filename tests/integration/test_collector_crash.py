"""The collector killed with SIGKILL at random moments under load, then restarted: every acknowledged event is in
the landing zone, every landed line is whole, and after de-duplication on event_id each event is there once.

Four client threads send batches of five events with their own ids; a batch that fails (connection refused or
reset, 503) is retried with the SAME ids, as the tracker does, until it is acknowledged. Meanwhile the test
kills the collector five times (SIGKILL: no shutdown code runs) and starts it again on the same port; at the
end it stops it with SIGTERM while the clients are still sending (a graceful shutdown drains and publishes).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from collector_process import RetryingClient, free_port, start_collector

from pulse.ingest.raw_events import ingest_day

pytestmark = pytest.mark.integration


def test_every_acknowledged_event_survives_sigkill(tmp_path: Path) -> None:
    rng = random.Random(8)
    port = free_port()
    stop = threading.Event()
    collector = start_collector(tmp_path, port)
    clients = [RetryingClient(f"c{i}", port, stop) for i in range(4)]
    for client in clients:
        client.start()
    kills = 0
    try:
        for _ in range(5):
            time.sleep(rng.uniform(0.3, 1.2))
            collector.send_signal(signal.SIGKILL)
            collector.wait()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            collector = start_collector(tmp_path, port)
        time.sleep(0.5)
        # Graceful shutdown under load: requests in flight finish, the open segment rolls into the landing zone.
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
        if collector.poll() is None:
            collector.kill()

    acknowledged = set().union(*(c.acknowledged for c in clients))
    sent = set().union(*(c.sent for c in clients))
    assert kills == 5 and len(acknowledged) > 1000, (kills, len(acknowledged))
    assert sum(c.failures for c in clients) > 0  # the kills did hit requests

    landing = tmp_path / "landing" / "events"
    files = sorted(landing.rglob("collector-*.jsonl"))
    lines = [line for f in files for line in f.read_bytes().split(b"\n") if line]
    landed = [json.loads(line)["event_id"] for line in lines]  # every line is whole JSON
    assert not (acknowledged - set(landed)), f"{len(acknowledged - set(landed))} acknowledged events were lost"
    assert set(landed) <= sent
    assert list((tmp_path / "collector" / "spool").iterdir()) == []  # everything published

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    for day in sorted(date.fromisoformat(d.name) for d in landing.iterdir()):
        result = ingest_day(con, landing, day)
        assert result.quarantined == 0 and result.reconciles
    total, distinct = con.execute("select count(*), count(distinct event_id) from raw.events").fetchall()[0]
    assert total == len(landed) and distinct == len(set(landed)) >= len(acknowledged)
    # once per event after de-duplication, as stg_events does it
    [[once]] = con.execute(
        "select count(*) from (select event_id from raw.events qualify row_number() over"
        " (partition by event_id order by received_at) = 1)"
    ).fetchall()
    assert once == len(set(landed))
