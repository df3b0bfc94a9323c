"""Which landing days the daily partitions cover: from the first landing day (or ``PULSE_PARTITIONS_START``)
to today (UTC), never from a fixed year.

The Dagster definitions (orchestration/partitions.py) build their partitions from :func:`partitions_start`
when they load; ``pulse materialize`` and the landing sensor use :func:`split_days` to leave out, with a
message, the landing days those partitions do not cover (before a pinned start, or after today). Plain
Python, no Dagster: nothing here reads the environment or the disk at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from pulse.ingest.raw_events import day_of_folder, files_for_day

PARTITIONS_START_VARIABLE = "PULSE_PARTITIONS_START"


def today_utc(now: datetime | None = None) -> date:
    """The UTC day of ``now`` (default: the clock): the last daily partition (end_offset=1 covers today)."""
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def first_landing_day(events_landing: Path) -> date | None:
    """The earliest ``<YYYY-MM-DD>`` folder of the landing zone holding at least one supported file; None when
    there is none. Lists the day folders once and opens only those up to the first with a file."""
    if not events_landing.is_dir():
        return None
    days = [day for folder in events_landing.iterdir() if (day := day_of_folder(folder.name)) is not None]
    for day in sorted(days):
        if files_for_day(events_landing, day):
            return day
    return None


def pinned_partitions_start(environ: Mapping[str, str] | None = None) -> date | None:
    """The setting ``partitions_start`` (``PULSE_PARTITIONS_START``, settings.toml): the first daily partition
    whatever the landing zone holds; None when unset. A value that is not a date raises ValueError (the settings
    door's SettingsError) naming where it was set and the value."""
    from pulse.core.settings import group_settings

    return group_settings(["partitions_start"], environ).partitions_start


def partitions_start(environ: Mapping[str, str] | None, events_landing: Path, today: date) -> date:
    """The first daily partition: ``PULSE_PARTITIONS_START`` when set; otherwise the first landing day; today
    when the landing zone is empty (a fresh clone, or the collector about to land today's files) or holds only
    days after today."""
    pinned = pinned_partitions_start(environ)
    if pinned is not None:
        return pinned
    first = first_landing_day(events_landing)
    return first if first is not None and first <= today else today


@dataclass(frozen=True)
class DaySplit:
    """Landing days sorted into those the partitions cover and those they do not."""

    start: date
    today: date
    inside: list[date] = field(default_factory=list)
    before: list[date] = field(default_factory=list)  # before the first partition (a pinned start)
    after: list[date] = field(default_factory=list)  # after today: not a partition until their day comes

    def messages(self, pinned: bool, reload_hint: str = "") -> list[str]:
        """One line per group of days left out, saying why and what to do. ``reload_hint`` follows the days
        before the start when it is not pinned (definitions loaded before an older history landed)."""
        lines = []
        if self.before:
            if pinned:
                lines.append(
                    f"{_count_days(self.before)} before {PARTITIONS_START_VARIABLE}={self.start}: not materialized"
                )
            else:
                lines.append(
                    f"{_count_days(self.before)} before the first daily partition ({self.start}): not materialized"
                    + reload_hint
                )
        if self.after:
            lines.append(
                f"{_count_days(self.after)} after today ({self.today}, UTC): not materialized until their day comes"
            )
        return lines


def split_days(days: Iterable[date], start: date, today: date) -> DaySplit:
    split = DaySplit(start=start, today=today)
    for day in sorted(days):
        (split.before if day < start else split.after if day > today else split.inside).append(day)
    return split


def _count_days(days: list[date]) -> str:
    if len(days) == 1:
        return f"1 landing day ({days[0]})"
    return f"{len(days)} landing days ({days[0]}..{days[-1]})"
