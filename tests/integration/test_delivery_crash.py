"""`pulse deliver` killed with SIGKILL while a POST is in flight, then restarted: every firing reaches the webhook
at least once, only the one in flight twice, and the delivery log says so (at-least-once; receivers dedupe by the
Idempotency-Key)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from live_feed import SECRET_A, SECRET_B, Receiver, create_feed, insert_firings, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PULSE = REPO / ".venv" / "bin" / "pulse"
FIRINGS = 40
KILL_AT = 15  # the request in flight when the deliverer is killed


def _start(home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    env["PULSE_HOME"] = str(home)
    process = subprocess.Popen(
        [str(PULSE), "deliver"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()  # "pulse deliver: following ..." once every webhook has its cursor
    assert "following" in line, (line, process.stderr.read() if process.poll() is not None else "")
    return process


def test_a_killed_deliverer_resumes_from_its_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state_db = home / "live" / "state.sqlite"
    create_feed(state_db)
    in_flight = threading.Event()
    release = threading.Event()

    def answer(n: int, headers: dict) -> tuple[int, dict]:
        if n == KILL_AT:
            in_flight.set()
            release.wait(30)  # answered only after the deliverer is dead
        time.sleep(0.01)
        return 200, {}

    hook = Receiver(SECRET_A, answer)
    other = Receiver(SECRET_B)  # a second webhook, untouched by the first one's trouble
    (home / "settings.toml").write_text(
        f'webhooks = "cms={hook.url},email={other.url}"\n'
        f'webhook_secrets = "cms={SECRET_A},email={SECRET_B}"\n'
        "webhook_backoff_seconds = 0.05\nwebhook_backoff_max_seconds = 0.5\n"
    )
    first = _start(home)
    try:
        keys = insert_firings(state_db, FIRINGS)
        assert in_flight.wait(30), "the deliverer never reached the request to kill it in"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        release.set()
        assert first.returncode == -signal.SIGKILL

        with sqlite3.connect(state_db) as conn:
            killed_in = conn.execute(
                "select webhook, firing_key from webhook_deliveries d where id = (select max(id) from "
                "webhook_deliveries x where x.webhook = d.webhook and x.firing_key = d.firing_key) "
                "and status = 'sending'"
            ).fetchall()
        in_flight_key = keys[KILL_AT - 1]
        # the log shows the POST in flight, without an outcome (the other webhook may have had one in flight too)
        assert [k for w, k in killed_in if w == "cms"] == [in_flight_key]
        other_in_flight = {k for w, k in killed_in if w == "email"}
        assert len(other_in_flight) <= 1
        assert len(set(hook.keys())) < FIRINGS, "everything was delivered before the kill: nothing was tested"

        second = _start(home)
        try:
            wait_for(
                lambda: set(hook.keys()) == set(keys) and set(other.keys()) == set(keys),
                timeout=60,
                what="every firing delivered after the restart",
            )
            with sqlite3.connect(state_db) as conn:
                wait_for(lambda: conn.execute("select count(*) from webhook_outbox").fetchone()[0] == 0, what="empty")
                rows = conn.execute(
                    "select webhook, firing_key, attempt, status from webhook_deliveries order by id"
                ).fetchall()
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
    finally:
        if first.poll() is None:
            first.kill()
        hook.stop()
        other.stop()

    # at least once: every firing reached both webhooks; only the one in flight at the kill twice
    counts = Counter(hook.keys())
    assert {k for k, c in counts.items() if c > 1} == {in_flight_key} and counts[in_flight_key] == 2
    other_counts = Counter(other.keys())
    assert set(other_counts) == set(keys) and {k for k, c in other_counts.items() if c > 1} <= other_in_flight
    assert all(r["signed"] for r in hook.requests + other.requests)
    # the log: per webhook and firing, the last row is delivered; the killed one has two attempts
    last = {(w, k): s for w, k, _, s in rows}
    assert set(last.values()) == {"delivered"} and len(last) == 2 * FIRINGS
    attempts = [(a, s) for w, k, a, s in rows if w == "cms" and k == in_flight_key]
    assert attempts == [(0, "queued"), (1, "sending"), (2, "sending"), (2, "delivered")]
