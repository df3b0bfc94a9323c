"""End to end: events a browser sends from the demo shop reach `fct_sessions` after the landing sensor's run.

A small demo shop history (60 users, 3 days) is materialized first, as a running installation would have.
Then `pulse collect` serves the demo shop, headless Chromium (tests/browser/drive_demo.mjs, Playwright) accepts
consent and shops, the collector's log segment rolls into today's landing folder, the landing sensor requests
a `daily_pipeline` run for today, and that run (executed here in process) ingests and models the events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from collector_process import free_port, start_collector

from pulse.cli import commands as cli
from pulse.demo.generator import generate_demo

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BROWSER = REPO / "tests" / "browser"


def _require_browser_tooling() -> None:
    missing = [p for p in (BROWSER / "node_modules" / "playwright-core", Path("/usr/bin/chromium")) if not p.exists()]
    assert not missing, f"missing {', '.join(map(str, missing))}: run `make browser-deps`"


def test_events_from_the_demo_page_reach_fct_sessions(pulse_home, tmp_path: Path, capsys, monkeypatch) -> None:
    _require_browser_tooling()
    monkeypatch.setattr(cli, "MATERIALIZE_JOB", "daily_pipeline")
    generate_demo(tmp_path / "demo", users=60, days=3, seed=11, start=date(2026, 9, 1), progress=False)
    shutil.copytree(tmp_path / "demo" / "events", pulse_home.events_landing, dirs_exist_ok=True)
    (pulse_home.dagster_home / "dagster.yaml").write_text(cli.DAGSTER_YAML)
    assert cli.main(["materialize", "--quiet"]) == 0, capsys.readouterr()

    port = free_port()
    collector = start_collector(pulse_home.home, port)
    try:
        driven = subprocess.run(
            ["node", str(BROWSER / "drive_demo.mjs")],
            env={**os.environ, "BASE_URL": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert driven.returncode == 0, driven.stdout + driven.stderr
    finally:
        collector.send_signal(signal.SIGTERM)  # graceful: the open segment rolls into the landing zone
        collector.wait(timeout=30)
    today = datetime.now(UTC).date().isoformat()
    landed = sorted((pulse_home.events_landing / today).glob("collector-*.jsonl"))
    events = [json.loads(line) for f in landed for line in f.read_text().splitlines()]
    assert events, "nothing landed"
    anonymous_ids = {e["anonymous_id"] for e in events}
    assert len(anonymous_ids) == 1 and {"page_view", "product_view", "add_to_cart"} <= {e["event_type"] for e in events}

    from orchestration.automation.sensors import landing_files_sensor
    from orchestration.definitions import build_definitions
    from orchestration.resources import PulseStorage

    instance = dg.DagsterInstance.get()
    with dg.build_sensor_context(instance=instance, resources={"storage": PulseStorage()}) as context:
        requests = landing_files_sensor(context)
    assert isinstance(requests, list) and [r.partition_key for r in requests] == [today]
    result = (
        build_definitions()
        .get_job_def("daily_pipeline")
        .execute_in_process(partition_key=today, instance=instance, tags=requests[0].tags)
    )
    assert result.success

    with duckdb.connect(str(pulse_home.warehouse), read_only=True) as con:
        [anonymous_id] = anonymous_ids
        keys = "select distinct user_key from stg_events where anonymous_id = ?"
        sessions = con.execute(
            f"select session_key, page_views, product_views, cart_adds, events from fct_sessions"
            f" where user_key in ({keys})",
            [anonymous_id],
        ).fetchall()
        collected = con.execute(
            f"select count(distinct event_id) from stg_events where user_key in ({keys})", [anonymous_id]
        )
        [[distinct_events]] = collected.fetchall()
    assert sessions, "the browser's events are not in fct_sessions"
    assert sum(s[4] for s in sessions) == distinct_events == len({e["event_id"] for e in events})
    assert sum(s[1] for s in sessions) >= 2 and sum(s[2] for s in sessions) >= 1 and sum(s[3] for s in sessions) >= 1
