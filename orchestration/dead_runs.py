"""Runs whose process died: found, marked failed, their pool slots freed, so that they hold nothing.

A run killed with SIGKILL, or cut by a restart of the machine, never reports its end: Dagster keeps it STARTED
forever, and with it the `warehouse` pool's only slot (and, for the run queue, the one run allowed at a time).
Dagster's run monitoring cannot see it: the default run launcher has no worker health check, and a run
executed in process (`pulse materialize`) has no worker at all. pulse checks the process itself:

- a run started by `pulse materialize` carries its process in tags (:data:`PID_TAG`, :data:`HOST_TAG`,
  :data:`PROCESS_STARTED_TAG`): dead when no process with that pid and that start time runs on that host;
- any other run (launched by the daemon or the UI) is judged by the pid its RUN_START event records, on an
  instance whose storage is local (SQLite under the home): dead when no process with that pid, started before
  the run, exists any more.

A run whose process runs on another host, or that has not started a process yet (STARTING), is left alone.
A dead run is marked failed (canceled if it was being canceled) through the instance's public API, then its
slots are freed (`event_log_storage.free_concurrency_slots_for_run`), as are the slots a finished run still
holds. `pulse materialize` and `pulse reprocess` do this before they run (and while they wait), and the
`dead_runs_sensor` every minute while the daemon runs (`pulse ui`, `dagster-daemon`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from pulse.core.processes import ProcessIdentity, current_process, pid_alive_since, process_alive

PID_TAG = "pulse/pid"
HOST_TAG = "pulse/host"
PROCESS_STARTED_TAG = "pulse/process_started"
# A run launched (STARTING) whose worker has not started after this long never will (Dagster's own default start
# timeout for run monitoring): its launcher died with it.
START_TIMEOUT_SECONDS = 180.0
# Statuses in which a process is, or should be, executing the run.
RUNNING_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
FINISHED_STATUSES = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def process_tags(identity: ProcessIdentity | None = None) -> dict[str, str]:
    """The tags that say which process executes a run (this one by default)."""
    identity = identity or current_process()
    return {PID_TAG: str(identity.pid), HOST_TAG: identity.host, PROCESS_STARTED_TAG: repr(identity.started)}


@dataclass(frozen=True)
class RunProcess:
    """A run that should be executing, and what is known of its process."""

    run_id: str
    job_name: str
    status: dg.DagsterRunStatus
    started_at: float | None  # when the run started (seconds since the epoch), None before it did
    process: ProcessIdentity | None  # None: no process recorded yet (STARTING), or not judged here
    alive: bool | None  # None: cannot tell from this host

    def describe(self) -> str:
        """'run 1a2b3c4d (all_assets, 2026-09-01..2026-09-03), pid 123 on host, started 12:00:01 UTC, 3 min ago'"""
        parts = [f"run {self.run_id[:8]} ({self.job_name})"]
        if self.process is not None:
            parts.append(self.process.describe())
        if self.started_at is not None:
            started = datetime.fromtimestamp(self.started_at, UTC)
            parts.append(f"started {started:%Y-%m-%d %H:%M:%S} UTC, {_ago(time.time() - self.started_at)}")
        return ", ".join(parts)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _local_storage(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's runs are stored on this machine (SQLite, pulse's dagster.yaml): then every run
    without pulse's tags was executed here too, and its pid can be checked."""
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _process_from_tags(tags: dict[str, str]) -> ProcessIdentity | None:
    try:
        return ProcessIdentity(pid=int(tags[PID_TAG]), host=tags[HOST_TAG], started=float(tags[PROCESS_STARTED_TAG]))
    except (KeyError, ValueError):
        return None


def _run_start_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that started executing the run (its RUN_START event), if it did."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def run_process(instance: dg.DagsterInstance, record: dg.RunRecord) -> RunProcess:
    run = record.dagster_run
    process, alive = _process_from_tags(run.tags), None
    if process is not None:
        alive = process_alive(process)
    elif _local_storage(instance):
        pid = _run_start_pid(instance, run.run_id)
        if pid is not None:
            since = record.start_time or record.create_timestamp.timestamp()
            process = ProcessIdentity(pid=pid, host="this host", started=since)
            alive = pid_alive_since(pid, since)
        elif run.status == dg.DagsterRunStatus.STARTING:
            launched = record.update_timestamp.timestamp()
            alive = False if time.time() - launched > START_TIMEOUT_SECONDS else None
    return RunProcess(run.run_id, run.job_name, run.status, record.start_time, process, alive)


def running_runs(instance: dg.DagsterInstance) -> list[RunProcess]:
    """Every run in a running status (STARTING, STARTED, CANCELING), with its process, oldest first."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=RUNNING_STATUSES), ascending=True)
    return [run_process(instance, record) for record in records]


def fail_dead_runs(instance: dg.DagsterInstance, exclude: Sequence[str] = ()) -> list[RunProcess]:
    """Mark every run whose process is gone failed (canceled, when it was being canceled) and free its slots;
    free the slots finished runs still hold. Returns the runs marked."""
    marked = []
    for run in running_runs(instance):
        if run.alive is not False or run.run_id in exclude:
            continue
        dagster_run = instance.get_run_by_id(run.run_id)
        if dagster_run is None or dagster_run.status not in RUNNING_STATUSES:
            continue  # it ended meanwhile
        if run.process is not None:
            message = (
                f"The process that executed this run ({run.process.describe()}) is gone (killed, or the machine "
                "restarted) without reporting its end: marked by pulse, its pool slots freed."
            )
        else:
            message = (
                f"Launched but no process started it in {START_TIMEOUT_SECONDS:.0f} s (its launcher died): marked by "
                "pulse, its pool slots freed."
            )
        if dagster_run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(dagster_run, message)
        else:
            instance.report_run_failed(dagster_run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        marked.append(run)
    free_slots_of_finished_runs(instance)
    return marked


def free_slots_of_finished_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots (claimed or pending) of runs that have finished or no longer exist: a run marked
    failed outside its process (the UI, a deleted run) keeps its slots otherwise. Returns their run ids."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders: set[str] = set()
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        holders |= {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    if not holders:
        return []
    existing = {r.run_id: r.status for r in instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(holders)))}
    finished = sorted(r for r in holders if r not in existing or existing[r] in FINISHED_STATUSES)
    for run_id in finished:
        storage.free_concurrency_slots_for_run(run_id)
    return finished


def live_runs(instance: dg.DagsterInstance, exclude: Sequence[str] = ()) -> list[RunProcess]:
    """The runs in a running status that are not known dead (alive, or not judged from here)."""
    return [r for r in running_runs(instance) if r.alive is not False and r.run_id not in exclude]


def wait_for_live_runs(
    instance: dg.DagsterInstance,
    report: Callable[[list[RunProcess], list[RunProcess]], None],
    *,
    poll_seconds: float = 1.0,
) -> None:
    """Return once no other run is executing: every ``poll_seconds``, runs found dead are marked failed and
    their slots freed, and ``report(dead, live)`` is called (the caller decides what to print and how often).
    A KeyboardInterrupt (Ctrl-C) stops the wait."""
    while True:
        dead = fail_dead_runs(instance)
        live = live_runs(instance)
        report(dead, live)
        if not live:
            return
        time.sleep(poll_seconds)


def runs_of_process(instance: dg.DagsterInstance, identity: ProcessIdentity | None = None) -> list[dg.RunRecord]:
    """The running runs this process (or ``identity``) executes, by their tags."""
    identity = identity or current_process()
    filters = dg.RunsFilter(statuses=RUNNING_STATUSES, tags={PID_TAG: str(identity.pid), HOST_TAG: identity.host})
    return [r for r in instance.get_run_records(filters=filters) if _process_from_tags(r.dagster_run.tags) == identity]


def cancel_runs_of_process(instance: dg.DagsterInstance, message: str) -> list[str]:
    """Mark this process's running runs canceled and free their slots (it was interrupted and stops them)."""
    stopped = []
    for record in runs_of_process(instance):
        instance.report_run_canceled(record.dagster_run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
        stopped.append(record.dagster_run.run_id)
    return stopped


@dataclass(frozen=True)
class PoolWait:
    """A step of a run waiting for a slot of a pool, and the runs that hold the pool's slots."""

    step_key: str
    pool: str
    holders: list[RunProcess]


def pool_waits(instance: dg.DagsterInstance, run_id: str) -> list[PoolWait]:
    """The steps of ``run_id`` that wait for a pool slot (pending, not assigned one), with the slots' holders."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    waits = []
    for pool, info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items():
        pending = [p.step_key for p in info.pending_steps if p.run_id == run_id and p.assigned_timestamp is None]
        if not pending:
            continue
        holder_ids = sorted({slot.run_id for slot in info.claimed_slots if slot.run_id != run_id})
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=holder_ids)) if holder_ids else []
        holders = [run_process(instance, record) for record in records]
        waits += [PoolWait(step_key, pool, holders) for step_key in pending]
    return waits
