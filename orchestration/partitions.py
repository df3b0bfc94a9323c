"""The daily partitions: one per landing day (the day files arrive; an event's own time may be earlier).

They start at the first landing day (or PULSE_PARTITIONS_START) and are built when the definitions load
(orchestration/definitions.py, a `@dg.definitions` function), never at import and never from a fixed year:
`pulse materialize` builds them in its own process on every call, and `pulse ui`'s code server on each
(re)load of the code location. end_offset=1: today is a partition too, because the collector (pulse collect)
lands events all day long and the landing sensor ingests them in micro-batches before the day is over.
docs/architecture.md explains why time windows with a computed start rather than dynamic partitions.
"""

from collections.abc import Mapping
from datetime import date

import dagster as dg

from pulse.core.settings import paths_from_env
from pulse.ingest.landing import partitions_start, today_utc

# The job whose partitions the sensor and the schedule read from the loaded definitions.
PARTITIONED_JOB = "daily_pipeline"

# The run tags that say which landing days a run covers: one partition, or a range (a single-run backfill,
# orchestration/materialize.py). The quality checks read them to know the run's first day.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def landing_days_partitions(start: date) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)


def landing_partitions_from_env(
    environ: Mapping[str, str] | None = None, today: date | None = None
) -> dg.DailyPartitionsDefinition:
    """The partitions as a fresh load of the definitions builds them: from the landing zone of ``environ``
    (default: the process environment, through the settings door)."""
    today = today or today_utc()
    return landing_days_partitions(partitions_start(environ, paths_from_env(environ).events_landing, today))


def loaded_partitions_start(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext) -> date:
    """The first partition of the definitions the sensor or schedule runs in: a landing day older than that
    (imported after the code location loaded) needs a reload before it can be a run's partition. Outside a
    code location (a test calling the function directly): what a fresh load would build."""
    try:
        repository = context.repository_def
    except dg.DagsterInvariantViolationError:  # a schedule context built without one
        repository = None
    partitions = None
    if repository is not None:
        partitions = repository.get_job(PARTITIONED_JOB).partitions_def
    if not isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        partitions = landing_partitions_from_env()
    return partitions.start.date()
