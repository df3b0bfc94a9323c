"""A sensor that ingests landing files as they arrive.

Every ``minimum_interval_seconds`` it lists ``$PULSE_LANDING/events/<YYYY-MM-DD>/``: a landing day whose
newest file is not older than the start of the run that last ingested it (or that was never ingested) gets
a `daily_pipeline` run for that partition (a file landing while that run was reading is not missed).
The run key is the day plus the newest file's mtime and the
number of files, so a tick that sees the same files requests nothing new, and a file added or rewritten later
requests a fresh run. It reads only the file system and Dagster's instance, never the warehouse (a run may
hold DuckDB's lock). Runs it requests wait in the run queue like any other (one at a time).
A landing day the loaded partitions do not cover (a history older than their first day, imported after the code
location loaded; a day after today) gets no run: the tick's skip reason and log say so, and what to do.
"""

import dagster as dg

from orchestration.automation.landing_state import last_ingestion, newest_file
from orchestration.automation.schedules import daily_pipeline
from orchestration.partitions import loaded_partitions_start
from orchestration.resources import PulseStorage
from pulse.ingest.landing import split_days, today_utc
from pulse.ingest.raw_events import landed_days

RELOAD_HINT = " until the code location is reloaded (Deployment > Reload in the UI, or restart `pulse ui`)"


@dg.sensor(
    job=daily_pipeline,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts daily_pipeline for a landing day when new or changed files land in it.",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, storage: PulseStorage):
    home = storage.settings()  # the settings door, as the runs it requests read it
    landing = home.paths.events_landing
    if not landing.exists():
        return dg.SkipReason(f"no landing zone at {landing}")
    # Days the loaded partitions do not cover (older than their start: imported since the code location loaded;
    # after today) cannot be a run's partition: said, not requested.
    split = split_days(landed_days(landing), loaded_partitions_start(context), today_utc())
    left_out = split.messages(pinned=home.partitions_start is not None, reload_hint=RELOAD_HINT)
    for line in left_out:
        context.log.warning(line)
    requests = []
    for day in split.inside:
        newest, count = newest_file(landing / day.isoformat())
        done = last_ingestion(context.instance, day)
        if done is not None and newest < done.started:
            continue
        requests.append(dg.RunRequest(partition_key=day.isoformat(), run_key=f"{day.isoformat()}:{newest:.6f}:{count}"))
    if not requests:
        return dg.SkipReason("; ".join(["every landing day is ingested", *left_out]))
    return requests
