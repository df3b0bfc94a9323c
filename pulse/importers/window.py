"""After `pulse import`: the imported events that fall outside the window ingestion accepts, counted, so the
import can say so before `pulse materialize` quarantines them.

- before the floor (``IngestOptions.earliest_event_time``, PULSE_EARLIEST_EVENT_TIME): ingestion quarantines
  them ("event_time before ...");
- more than the future tolerance after now (PULSE_FUTURE_TOLERANCE_HOURS): they sit in landing days after today,
  which are not daily partitions until their day comes (a clock or time zone error, most often).

Whole days on either side are counted from the importer's per-day counts; only the day the floor (or the
ceiling) falls in, when it is not midnight, is read back to compare each event's time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from pulse.importers.common import FileResult, parse_timestamp


@dataclass
class Outside:
    """Events on one side of the window: how many, and the landing days they are in."""

    events: int = 0
    days: set[date] = field(default_factory=set)

    def add(self, day: date, n: int) -> None:
        if n:
            self.events += n
            self.days.add(day)

    @property
    def span(self) -> str:
        days = sorted(self.days)
        if not days:
            return ""
        return f"landing day {days[0]}" if len(days) == 1 else f"{len(days)} landing days, {days[0]}..{days[-1]}"


@dataclass
class WindowReport:
    floor: datetime  # naive UTC
    ceiling: datetime  # naive UTC
    events: int = 0
    before_floor: Outside = field(default_factory=Outside)
    after_ceiling: Outside = field(default_factory=Outside)


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _count_in_file(path: Path, keep) -> int:
    """Events of one output file (gzip JSON Lines) whose event_time (naive UTC) satisfies ``keep``."""
    n = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            value = json.loads(line).get("event_time")
            parsed = parse_timestamp(value) if isinstance(value, str) else None
            if parsed is not None and keep(_naive_utc(parsed)):
                n += 1
    return n


def outside_window(files: Iterable[FileResult], floor: datetime, ceiling: datetime) -> WindowReport:
    """Count the imported events before ``floor`` and after ``ceiling`` (both UTC; naive means UTC)."""
    floor, ceiling = _naive_utc(floor), _naive_utc(ceiling)
    report = WindowReport(floor=floor, ceiling=ceiling)
    for result in files:
        outputs: dict[date, list[Path]] = {}
        for p in result.outputs:  # a day may be written in parts
            outputs.setdefault(date.fromisoformat(p.parent.name), []).append(p)
        for day, n in result.day_counts.items():
            report.events += n
            start, end = datetime.combine(day, time()), datetime.combine(day + timedelta(days=1), time())
            if end <= floor:
                report.before_floor.add(day, n)
            elif start < floor:  # the floor's own day
                report.before_floor.add(day, sum(_count_in_file(f, lambda t: t < floor) for f in outputs[day]))
            if start > ceiling:
                report.after_ceiling.add(day, n)
            elif end > ceiling:  # the ceiling's own day
                report.after_ceiling.add(day, sum(_count_in_file(f, lambda t: t > ceiling) for f in outputs[day]))
    return report


def _ts(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ", timespec="seconds")


def window_warnings(report: WindowReport, future_tolerance: timedelta) -> list[str]:
    """What `pulse import` prints (stderr) about events outside the window: per side, what (counts, days) and,
    on a second line, the setting to change."""
    lines = []
    before = report.before_floor
    if before.events:
        lines.append(
            f"{before.events:,} of {report.events:,} events are before the quarantine floor "
            f"PULSE_EARLIEST_EVENT_TIME={_ts(report.floor)} ({before.span}): `pulse materialize` will quarantine them\n"
            f'to admit them, set earliest_event_time = "{min(before.days)}" (or earlier) in $PULSE_HOME/settings.toml, '
            f"or PULSE_EARLIEST_EVENT_TIME={min(before.days)} where `pulse materialize` runs; the days ingested under "
            "the old floor are then ingested again"
        )
    after = report.after_ceiling
    if after.events:
        hours = future_tolerance.total_seconds() / 3600
        lines.append(
            f"{after.events:,} of {report.events:,} events are more than {hours:g} h in the future, after "
            f"{_ts(report.ceiling)} UTC ({after.span}): a landing day after today is not materialized until it comes\n"
            "check the source's timestamps (time zone, seconds vs milliseconds); PULSE_FUTURE_TOLERANCE_HOURS sets "
            "the tolerance"
        )
    return lines
