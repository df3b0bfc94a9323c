"""What `pulse materialize` (and `pulse run`, `pulse reprocess`) print about raw.events_quarantine after a run
that quarantined lines or whose raw gate blocked: per reason, how many lines and one example (file, line, the
start of the raw line), most frequent first, with the setting to change where a setting decides the reason.

A quarantined line keeps every rule it broke in ``reason`` ("; "-separated); each counts under its own reason.
A reason carrying a value ("unknown event_type: foo", "event_time is not an RFC 3339 timestamp: ...") is
grouped on the text before ": ", so a day of 15 files with one bad value per line still reads as a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from pulse.ingest.raw_events import QUARANTINE_TABLE

MAX_REASONS = 12  # reasons listed; the rest are summed on one line
EXAMPLE_CHARS = 160  # of the raw line shown

# Reasons a setting decides: the hint printed under them.
SETTING_HINTS = {
    "event_time before": "older events are quarantined below PULSE_EARLIEST_EVENT_TIME: set it earlier to admit "
    "them (the days ingested under the old value are ingested again by `pulse materialize`)",
    "event_time in the future": "events later than their landing day + PULSE_FUTURE_TOLERANCE_HOURS are "
    "quarantined: a clock or time zone error, or raise the tolerance",
    "row exceeds": "lines longer than PULSE_MAX_ROW_BYTES are quarantined: raise it if such events are expected",
}


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    lines: int
    example_file: str
    example_line: int
    example: str


@dataclass(frozen=True)
class QuarantineReport:
    first: date
    last: date
    lines: int  # quarantined lines (a line with several reasons counts once here)
    reasons: list[ReasonCount]


def quarantine_report(
    con: duckdb.DuckDBPyConnection, first: date, last: date, since: datetime | None = None
) -> QuarantineReport:
    """The quarantined lines of landing days [first, last]; with ``since`` (naive UTC), only those quarantined
    from then on (the run's own). A warehouse without raw tables has none."""
    exists = con.execute(
        """select count(*) from duckdb_tables()
        where database_name = current_database() and schema_name = 'raw' and table_name = 'events_quarantine'"""
    ).fetchall()[0][0]
    if not exists:
        return QuarantineReport(first, last, 0, [])
    params = {"first": first, "last": last, "since": since}
    where = "load_date between $first and $last and ($since is null or quarantined_at >= $since)"
    [(lines,)] = con.execute(f"select count(*) from {QUARANTINE_TABLE} where {where}", params).fetchall()
    rows = con.execute(
        f"""
        with reasons as (
          select split_part(unnest(string_split(reason, '; ')), ': ', 1) as kind,
            load_date, source_file, line_number, raw_line
          from {QUARANTINE_TABLE}
          where {where}
        ),
        ranked as (
          select *,
            count(*) over (partition by kind) as n,
            row_number() over (partition by kind order by load_date, source_file, line_number) as i
          from reasons
        )
        select kind, n, source_file, line_number, left(coalesce(raw_line, ''), {EXAMPLE_CHARS + 1})
        from ranked where i = 1
        order by n desc, kind""",
        params,
    ).fetchall()
    reasons = [ReasonCount(str(k), int(n), str(f), int(ln), str(raw)) for k, n, f, ln, raw in rows]
    return QuarantineReport(first, last, int(lines), reasons)


def _example(text: str) -> str:
    text = " ".join(text.split())  # one line, whatever the raw line held
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def render_quarantine(report: QuarantineReport, gate_blocked: bool = False) -> str:
    days = f"{report.first}" if report.first == report.last else f"{report.first}..{report.last}"
    head = f"quarantine: {report.lines:,} lines of landing days {days} in {QUARANTINE_TABLE}"
    if gate_blocked:
        head += " (the raw gate gx_raw_events blocked the models: a landing day had more than 10 % of its lines"
        head += " quarantined)"
    if not report.reasons:
        return head
    width = len(f"{report.reasons[0].lines:,}")
    lines = [head + ", by reason:"]
    hints: list[str] = []
    for r in report.reasons[:MAX_REASONS]:
        lines.append(f"  {r.lines:>{width},}  {r.reason}")
        lines.append(f"  {'':>{width}}  e.g. {r.example_file}:{r.example_line}: {_example(r.example)}")
        hints += [hint for prefix, hint in SETTING_HINTS.items() if r.reason.startswith(prefix) and hint not in hints]
    rest = report.reasons[MAX_REASONS:]
    if rest:
        lines.append(
            f"  ... {len(rest)} more reasons ({sum(r.lines for r in rest):,} lines): "
            f"select reason, count(*) from {QUARANTINE_TABLE} group by all"
        )
    lines += [f"  hint: {hint}" for hint in hints]
    return "\n".join(lines)
