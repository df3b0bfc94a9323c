"""Prometheus text exposition of the collector's counters (no client library: a handful of numbers)."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.collector.log import DurableLog

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    requests: Counter[int] = field(default_factory=Counter)  # POST /collect by status
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    events_accepted: int = 0
    events_rejected: int = 0
    bodies_rejected: int = 0
    headers_refused: int = 0  # requests answered 431 (headers over the limit), any path
    user_agents_truncated: int = 0

    def observe_request(self, status: int, seconds: float) -> None:
        self.requests[status] += 1
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render(self, durable_log: DurableLog) -> str:
        stats = durable_log.stats
        out = [
            "# HELP pulse_collector_requests_total POST /collect requests by HTTP status.",
            "# TYPE pulse_collector_requests_total counter",
        ]
        out += [f'pulse_collector_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
        out += [
            "# HELP pulse_collector_request_seconds Time from request to response of POST /collect.",
            "# TYPE pulse_collector_request_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'pulse_collector_request_seconds_bucket{{le="{le}"}} {cumulative}')
        out.append(f"pulse_collector_request_seconds_sum {self.latency_sum:.6f}")
        out.append(f"pulse_collector_request_seconds_count {cumulative}")
        commit = stats.commit_seconds
        gauges_and_counters = [
            ("events_accepted_total", "counter", "Events written to the log and acknowledged.", self.events_accepted),
            ("events_rejected_total", "counter", "Events sent to the dead-letter file.", self.events_rejected),
            (
                "bodies_rejected_total",
                "counter",
                "Bodies that were not a batch (dead-lettered whole).",
                self.bodies_rejected,
            ),
            (
                "headers_refused_total",
                "counter",
                "Requests answered 431: headers over the limit.",
                self.headers_refused,
            ),
            (
                "user_agents_truncated_total",
                "counter",
                "Requests whose User-Agent was cut to the limit.",
                self.user_agents_truncated,
            ),
            (
                "log_unpublished_segments",
                "gauge",
                "Closed segments waiting to be published (the landing disk refused them).",
                durable_log.unpublished_segments,
            ),
            ("log_commits_total", "counter", "Group commits (one write and fsync each).", stats.commits),
            ("log_commit_seconds_max", "gauge", "Slowest of the recent group commits.", max(commit, default=0.0)),
            ("log_bytes_written_total", "counter", "Bytes appended to log segments.", stats.bytes_written),
            (
                "log_segments_rolled_total",
                "counter",
                "Segments published into the landing zone.",
                stats.segments_rolled,
            ),
            (
                "log_segments_recovered_total",
                "counter",
                "Segments of a dead process published at start.",
                stats.recovered_segments,
            ),
            ("log_write_errors_total", "counter", "Failed group commits (answered 503).", stats.write_errors),
            (
                "rejected_overload_total",
                "counter",
                "Requests answered 503: the disk was behind.",
                stats.rejected_overload,
            ),
            ("rejected_disk_total", "counter", "Requests answered 503: low disk space.", stats.rejected_disk),
            ("log_pending_bytes", "gauge", "Bytes waiting for the disk.", durable_log.pending_bytes),
            ("disk_free_bytes", "gauge", "Free space where the log is.", durable_log.free_bytes),
        ]
        for name, kind, text, value in gauges_and_counters:
            out += [f"# HELP pulse_collector_{name} {text}", f"# TYPE pulse_collector_{name} {kind}"]
            out.append(f"pulse_collector_{name} {value}")
        return "\n".join(out) + "\n"
