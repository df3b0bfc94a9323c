"""Benchmark the read API: ``python benchmarks/api.py --profiles 100000``.

Writes a published snapshot (N profiles with base64-like keys, 4 audiences) in a temp dir (or serves
``--exports PATH`` as it is), starts the real CLI, ``pulse serve``, as a subprocess on a free loopback port,
and drives it with a minimal asyncio HTTP/1.1 client (keep-alive connections, no dependency):

1. steady load, open loop: ``--rate`` requests/s of ``GET /users/{random known key}`` for ``--duration`` s,
   each request scheduled at its fixed time whatever the responses (latency counts from the scheduled
   time, so a stalled server is not hidden by a client that waits), over a pool of ``--pool`` connections;
   p50 / p90 / p99 / max against the p99 target (``--target-p99-ms``, 20 ms)
2. max throughput, closed loop: ``--connections`` connections each sending its next request when the last
   one is answered, for ``--duration`` s: requests/s, p50 / p99
3. hot reload under the steady load (not with ``--exports``): a second snapshot is published (os.replace
   of current.json) after 1 s; the time until /health serves it and the latency while it loads

The client runs in this process on the same machine: the server's and the client's CPU use are printed
so that a client-bound figure is seen as such. Figures, not assertions: machines here are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
AUDIENCES = {
    "cart_abandoners": ("users with a cart left in the last 7 days", 0.08),
    "high_intent": ("intent decile 9-10", 0.2),
    "loyal_buyers": ("3+ orders in 90 days", 0.05),
    "win_back": ("no visit in 30 days after 2+ orders", 0.1),
}


# ------------------------------------------------------------------------------------------------ snapshot


def user_keys(n: int, seed: int) -> list[str]:
    """Base64 ids (``/``, ``+`` and ``=`` included), as some sources send them."""
    rng = random.Random(seed)
    return [base64.b64encode(i.to_bytes(4, "big") + rng.randbytes(10)).decode() for i in range(n)]


def write_snapshot(exports: Path, snapshot_id: str, keys: list[str], seed: int, *, published: bool = True) -> None:
    """The layout pulse/activation/publish.py writes (docs/api.md), then (``published``) current.json replaced
    atomically."""
    n = len(keys)
    rng = np.random.default_rng(seed)
    root = exports / "snapshots" / snapshot_id
    (root / "audiences").mkdir(parents=True)
    intent = rng.random(n)
    segment = rng.integers(0, 5, n)
    names = np.array(["Bargain hunters", "Loyal regulars", "Window shoppers", "New visitors", "Big spenders"])
    triggers = pa.array([["cart_abandoned", "price_drop"], [], ["back_in_stock"]] * (n // 3) + [[]] * (n % 3))
    profiles = pa.table(
        {
            "user_key": pa.array(keys, pa.string()),
            "segment_id": pa.array(segment, pa.int64()),
            "segment_name": pa.array(names[segment]),
            "user_type": pa.array(np.where(rng.random(n) < 0.3, "new", "returning")),
            "intent_probability": pa.array(np.where(rng.random(n) < 0.05, np.nan, intent)),
            "intent_decile": pa.array(np.minimum(intent * 10, 9).astype("int32") + 1),
            "engagement_score": pa.array(rng.random(n) * 100),
            "active_triggers": triggers.cast(pa.list_(pa.string())),
            "top_categories": pa.array([["shoes", "bags", "outdoor"]] * n, pa.list_(pa.string())),
            "next_action": pa.array(np.where(intent > 0.8, "send_coupon", "recommend_content")),
            "next_action_reason": pa.array(np.where(intent > 0.8, "high purchase intent", "engaged browser")),
            "consent_analytics": pa.array(np.ones(n, bool)),
            "consent_personalization": pa.array(np.ones(n, bool)),
            "segment_model_version": pa.array(["5"] * n),
            "intent_model_version": pa.array(["1"] * n),
            "as_of_date": pa.array([date(2026, 11, 26)] * n, pa.date32()),
            "updated_at": pa.array([datetime(2026, 11, 26, 19, 45)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(profiles, root / "user_profiles.parquet")
    manifest_audiences = {}
    for name, (description, share) in AUDIENCES.items():
        rows = np.flatnonzero(rng.random(n) < share)
        table = pa.table(
            {
                "user_key": profiles.column("user_key").take(rows),
                "reason": pa.array([description] * len(rows)),
                "score": pa.array(intent[rows]),
            }
        )
        pq.write_table(table, root / "audiences" / f"{name}.parquet")
        table.to_pandas().to_csv(root / "audiences" / f"{name}.csv", index=False)
        manifest_audiences[name] = {
            "rows": len(rows),
            "parquet": f"audiences/{name}.parquet",
            "csv": f"audiences/{name}.csv",
            "description": description,
        }
    manifest = {
        "snapshot_id": snapshot_id,
        "published_at": datetime.now().astimezone().isoformat(),
        "as_of_date": "2026-11-26",
        "model_versions": {"segments": "5", "purchase_intent": "1"},
        "profiles": {"file": "user_profiles.parquet", "rows": n},
        "audiences": manifest_audiences,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    if published:
        publish(exports, snapshot_id)


def publish(exports: Path, snapshot_id: str) -> None:
    tmp = exports / ".current.json.tmp"
    tmp.write_text(json.dumps({"snapshot_id": snapshot_id, "path": f"snapshots/{snapshot_id}"}))
    os.replace(tmp, exports / "current.json")


def served_keys(exports: Path) -> list[str]:
    pointer = json.loads((exports / "current.json").read_text())
    root = exports / pointer["path"]
    manifest = json.loads((root / "manifest.json").read_text())
    return pq.read_table(root / manifest["profiles"]["file"], columns=["user_key"]).column(0).to_pylist()


# ------------------------------------------------------------------------------------------------ client


class Connection:
    """One keep-alive HTTP/1.1 connection: GET, read the status and a Content-Length body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, port)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode("ascii"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"no Content-Length in the response to {path}")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # s
    errors: int = 0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


async def open_loop(port: int, paths: list[str], rate: float, duration: float, pool: int) -> Result:
    """``rate`` requests/s at fixed times; a request waits for a free connection of the pool if needed
    (and that wait is part of its latency)."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await Connection.open(port))
    result = Result()

    async def one(path: str, scheduled: float) -> None:
        conn = await idle.get()
        try:
            status, _ = await conn.get(path)
            result.errors += status != 200
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            result.errors += 1
            conn.close()
            conn = await Connection.open(port)
        result.latencies.append(loop.time() - scheduled)
        idle.put_nowait(conn)

    tasks = []
    start = loop.time() + 0.05
    for i in range(int(rate * duration)):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], scheduled)))
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - start
    while not idle.empty():
        idle.get_nowait().close()
    return result


async def closed_loop(port: int, paths: list[str], connections: int, duration: float) -> Result:
    loop = asyncio.get_running_loop()
    result = Result()
    deadline = loop.time() + duration

    async def worker(w: int) -> None:
        conn = await Connection.open(port)
        i = w
        while loop.time() < deadline:
            sent = loop.time()
            try:
                status, _ = await conn.get(paths[i % len(paths)])
                result.errors += status != 200
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                result.errors += 1
                conn.close()
                conn = await Connection.open(port)
            result.latencies.append(loop.time() - sent)
            i += connections
        conn.close()

    start = loop.time()
    await asyncio.gather(*(worker(w) for w in range(connections)))
    result.seconds = loop.time() - start
    return result


async def wait_for_snapshot(port: int, snapshot_id: str | None, timeout: float) -> float:
    """Seconds until /health answers 200 (with ``snapshot_id`` if given)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    conn = None
    while loop.time() - start < timeout:
        try:
            conn = conn or await Connection.open(port)
            status, body = await conn.get("/health")
            if status == 200 and snapshot_id in (None, json.loads(body)["snapshot_id"]):
                conn.close()
                return loop.time() - start
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            conn = None
        await asyncio.sleep(0.01)
    raise TimeoutError(f"the API did not serve {snapshot_id or 'a snapshot'} within {timeout} s")


# ------------------------------------------------------------------------------------------------ main


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(exports: Path, port: int, log: Path) -> subprocess.Popen:
    script = Path(sys.executable).parent / "pulse"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pulse.cli.commands"]
    cmd += ["serve", "--host", HOST, "--port", str(port), "--exports", str(exports)]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def cpu_seconds(proc: psutil.Process | None = None) -> float:
    if proc is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    t = proc.cpu_times()
    return t.user + t.system


def latency_line(label: str, r: Result, target: float | None = None) -> str:
    line = (
        f"{label:<22} {len(r.latencies):>7,} req in {r.seconds:5.1f} s = {len(r.latencies) / r.seconds:8,.0f} req/s  "
        f"p50 {r.pct(50):6.2f}  p90 {r.pct(90):6.2f}  p99 {r.pct(99):6.2f}  max {r.pct(100):7.2f} ms  "
        f"errors {r.errors}"
    )
    if target:
        line += f"\n{'':<22} p99 / target = {r.pct(99):.2f} / {target:.0f} ms = {r.pct(99) / target:.2f}"
    return line


async def run(args: argparse.Namespace, exports: Path, keys: list[str], reload_keys: list[str] | None) -> None:
    port = free_port()
    log = exports.parent / "serve.log" if args.exports is None else Path(tempfile.mkstemp(suffix=".log")[1])
    t0 = time.perf_counter()
    proc = start_server(exports, port, log)
    try:
        await wait_for_snapshot(port, None, timeout=120)
        print(f"pulse serve           ready in {time.perf_counter() - t0:.2f} s (log: {log})")
        server = psutil.Process(proc.pid)
        print(f"server RSS            {server.memory_info().rss / 2**20:,.0f} MB")
        rng = random.Random(args.seed)
        paths = ["/users/" + quote(k, safe="") for k in rng.choices(keys, k=50_000)]
        conn = await Connection.open(port)
        for key in keys[:100]:  # the keys round-trip (base64: '/', '+', '=')
            status, body = await conn.get("/users/" + quote(key, safe=""))
            assert status == 200 and json.loads(body)["user_key"] == key, (key, status, body[:200])
        print(f"response              {len(body)} bytes, e.g. {body[:100].decode()}...")
        conn.close()

        await open_loop(port, paths, rate=args.rate, duration=1.0, pool=args.pool)  # warm-up

        before = (cpu_seconds(server), cpu_seconds())
        steady = await open_loop(port, paths, rate=args.rate, duration=args.duration, pool=args.pool)
        cpu = [(cpu_seconds(server) - before[0]) / steady.seconds, (cpu_seconds() - before[1]) / steady.seconds]
        print(latency_line(f"1. open loop {args.rate:.0f}/s", steady, args.target_p99_ms))
        print(f"{'':<22} CPU: server {cpu[0]:.0%}, client {cpu[1]:.0%} of a core")

        before = (cpu_seconds(server), cpu_seconds())
        peak = await closed_loop(port, paths, args.connections, args.duration)
        cpu = [(cpu_seconds(server) - before[0]) / peak.seconds, (cpu_seconds() - before[1]) / peak.seconds]
        print(latency_line(f"2. closed loop x{args.connections}", peak))
        print(f"{'':<22} CPU: server {cpu[0]:.0%}, client {cpu[1]:.0%} of a core")

        if reload_keys is not None:
            new_id = "20261127T194500Z-bench2"
            write_snapshot(exports, new_id, reload_keys, args.seed + 1, published=False)
            load = asyncio.create_task(open_loop(port, paths, rate=args.rate, duration=5.0, pool=args.pool))
            await asyncio.sleep(1.0)
            publish(exports, new_id)
            seen = await wait_for_snapshot(port, new_id, timeout=120)
            during = await load
            print(latency_line(f"3. reload under {args.rate:.0f}/s", during, args.target_p99_ms))
            print(f"{'':<22} new snapshot served {seen:.2f} s after current.json was replaced")
            print(f"server RSS            {server.memory_info().rss / 2**20:,.0f} MB after the reload")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--exports", type=Path, default=None, help="serve these published snapshots instead")
    parser.add_argument("--rate", type=float, default=200.0, help="open loop requests/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load")
    parser.add_argument("--pool", type=int, default=16, help="open loop keep-alive connections")
    parser.add_argument("--connections", type=int, default=50, help="closed loop connections")
    parser.add_argument("--target-p99-ms", type=float, default=20.0)
    parser.add_argument("--no-reload", action="store_true", help="skip the hot reload stage")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pulse-api-bench-") as tmp:
        if args.exports:
            exports = args.exports.expanduser().resolve()
            keys, reload_keys = served_keys(exports), None
        else:
            exports = Path(tmp) / "exports"
            exports.mkdir()
            t0 = time.perf_counter()
            keys = user_keys(args.profiles, args.seed)
            write_snapshot(exports, "20261126T194500Z-bench1", keys, args.seed)
            reload_keys = None if args.no_reload else keys  # same users, new figures: no 404 after the swap
            print(f"snapshot              {len(keys):,} profiles, 4 audiences in {time.perf_counter() - t0:.1f} s")
        print(f"exports               {exports}")
        asyncio.run(run(args, exports, keys, reload_keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
