"""Collector throughput and latency with fsync-before-ack, measured with wrk on this machine.

    python benchmarks/collector.py [--seconds 10] [--connections 32] [--sizes 1,10]

Starts `pulse collect` in a temporary PULSE_HOME, loads it with wrk (Debian package `wrk`; `make
bench-collector` installs it) POSTing batches of 1 and 10 valid events (unique event ids, a realistic page
view each), and prints requests/s, events/s and latency percentiles from wrk, plus from the collector's own
metrics: events acknowledged, group commits (fsyncs) and events per fsync. It then checks that every
acknowledged event is in the log (lines on disk = events acknowledged). Goal in issue 8: >= 3,000 requests/s
and >= 30,000 events/s with p99 <= 50 ms on this 2-core machine (wrk and the collector share the 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LUA = """
local counter = 0
local size = %(size)d
local thread_id = tostring(math.random(1, 1e9))
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"
wrk.headers["Cookie"] = "pulse_nid=0123456789abcdef0123456789abcdef"
request = function()
  local events = {}
  for i = 1, size do
    counter = counter + 1
    events[i] = string.format('{"event_id":"bench-%%s-%%d","event_type":"page_ping","event_time":"%(now)s",' ..
      '"anonymous_id":"0b7c1f52-7d4e-4d35-9a43-1c2b3a4d5e6f","session_id":"5f0e8d1c-2b3a-4c5d-8e7f-6a5b4c3d2e1f",' ..
      '"page_view_id":"9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d","page_url":"https://shop.example/p/sku-1042",' ..
      '"page_title":"Trail running shoe","scroll_depth_px":1200,"doc_height_px":5000,"viewport_height_px":900,' ..
      '"scroll_depth_pct":42,"consent_analytics":true,"consent_personalization":true}', thread_id, counter)
  end
  return wrk.format(nil, "/collect", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(base: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _wait_ready(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the collector exited with {process.returncode}")
        try:
            if urllib.request.urlopen(f"{base}/readyz", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the collector did not become ready in 30 s")


def _latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run(size: int, seconds: int, connections: int, work: Path) -> dict[str, float]:
    home = work / f"home-{size}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PULSE_HOME": str(home)}
    collector = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "pulse"), "collect", "--port", str(port), "--min-free-mb", "64"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_ready(base, collector)
        script = work / f"post-{size}.lua"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        script.write_text(LUA % {"size": size, "now": now})
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        metrics = _metrics(base)
    finally:
        collector.terminate()
        collector.wait(timeout=30)
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    acknowledged = metrics["pulse_collector_events_accepted_total"]
    commits = metrics["pulse_collector_log_commits_total"]
    logs = [*(home / "landing" / "events").rglob("collector-*.jsonl"), *(home / "collector" / "spool").glob("*.jsonl")]
    on_disk = sum(p.read_bytes().count(b"\n") for p in logs)
    return {
        "events_per_request": size,
        "requests_per_s": requests,
        "events_per_s": requests * size,
        "p50_ms": _latency_ms(out, "50%"),
        "p99_ms": _latency_ms(out, "99%"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "acknowledged": acknowledged,
        "fsyncs": commits,
        "events_per_fsync": acknowledged / commits if commits else float("nan"),
        "lines_on_disk": float(on_disk),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sizes", default="1,10", help="events per request, comma-separated")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-collector` installs it (apt-get install wrk)")
    print(
        f"collector benchmark: wrk 1 thread, {args.connections} connections, {args.seconds} s per size, "
        f"fsync before every acknowledgement, {os.cpu_count()} cores shared by wrk and the collector"
    )
    header = f"{'events/req':>10} {'req/s':>9} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} "
    header += f"{'fsyncs':>8} {'ev/fsync':>8} {'acked':>9} {'on disk':>9}"
    print(header)
    with tempfile.TemporaryDirectory(prefix="pulse-collector-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            r = run(size, args.seconds, args.connections, Path(tmp))
            print(
                f"{size:>10} {r['requests_per_s']:>9,.0f} {r['events_per_s']:>9,.0f} {r['p50_ms']:>7.2f} "
                f"{r['p99_ms']:>7.2f} {r['non_2xx']:>7.0f} {r['fsyncs']:>8,.0f} {r['events_per_fsync']:>8.1f} "
                f"{r['acknowledged']:>9,.0f} {r['lines_on_disk']:>9,.0f}"
            )
            if r["lines_on_disk"] < r["acknowledged"]:
                print(f"  LOST: {r['acknowledged'] - r['lines_on_disk']:.0f} acknowledged events are not on disk")


if __name__ == "__main__":
    main()
