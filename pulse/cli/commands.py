"""The `pulse` command: demo data, preparing the dbt manifest, materializing, a summary, the UI.

Every subcommand resolves the settings once through the settings door (pulse.core.settings: defaults <
$PULSE_HOME/settings.toml < PULSE_* environment < --var), and hands child processes (dbt, dagster dev, the
MLflow server) an explicit environment with the home's absolute paths; it does not write its own environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pulse.core.settings import (
    PulsePaths,
    Settings,
    SettingsError,
    group_settings,
    home_settings,
    ingest_settings,
    load_settings,
    parse_overrides,
    paths_from_env,
)

if TYPE_CHECKING:
    from pulse.importers import ImportSummary
    from pulse.ingest.raw_events import IngestOptions

if TYPE_CHECKING:
    from pulse.ui.docs_server import DocsAddress, DocsServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

DAGSTER_YAML = """\
# Written by `pulse` when absent. DuckDB allows one writer per file: runs are queued one at a time and
# every asset that writes the warehouse sits in the `warehouse` pool, limited to one step at a time.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: 1
"""


def _settings(overrides: dict[str, str] | None = None) -> Settings:
    """Every setting, for a command that runs the pipeline (a SettingsError is reported by `main`, naming what
    is wrong)."""
    return load_settings(overrides=overrides)


def _paths(settings: Settings | None = None) -> PulsePaths:
    """The home's paths; without ``settings``, only the home's settings are read (a bad dbt var in settings.toml
    does not stop `pulse serve`, `summary`, `collect` or `ui`: the runs that use it report it)."""
    paths = (settings or home_settings()).paths.ensure()
    dagster_yaml = paths.dagster_home / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text(DAGSTER_YAML)
    return paths


def _instance(paths: PulsePaths):  # noqa: ANN202 - dagster is imported late (startup time)
    """The home's Dagster instance (its dagster.yaml: one run at a time), without DAGSTER_HOME in os.environ."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(paths.dagster_home))


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The run's settings from `--var name=value` (repeatable) and `--test-as-of D`."""
    overrides = parse_overrides(getattr(args, "vars", None) or [])
    if getattr(args, "test_as_of", None):
        overrides["intent_test_as_of"] = args.test_as_of
    return overrides


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def cmd_demo(args: argparse.Namespace) -> int:
    from pulse.demo.generator import generate_demo

    paths = _paths()
    summary = generate_demo(
        paths.landing, users=args.users, days=args.days, seed=args.seed, start=args.start, progress=True
    )
    bad = sum(summary.malformed_injected.values())
    last = summary.start + timedelta(days=summary.days - 1)
    print(
        f"demo: {summary.events_written:,} events for {summary.users:,} users over {summary.days} days "
        f"({summary.start} .. {last}) in {summary.seconds:.1f} s -> {paths.events_landing}\n"
        f"      injected: {summary.duplicates_injected:,} duplicates, {summary.late_injected:,} late, "
        f"{bad:,} malformed lines; ground truth: {paths.landing / 'personas.csv'}"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Build dbt's manifest (dbt_project/target/manifest.json), which the Dagster definitions load: code, built at
    install time. Runs keep their own target and logs under PULSE_HOME; this parse logs there too."""
    settings = home_settings()
    paths = _paths(settings)
    cmd = [_venv_bin("dbt"), "parse", "--quiet", "--log-path", str(paths.dbt_logs)]
    return subprocess.call(cmd, cwd=DBT_PROJECT_DIR, env=settings.dbt_env())


# The job `pulse materialize` runs: every asset, the intent model included.
MATERIALIZE_JOB = "all_assets"
# The blocking Great Expectations gate on the landing days (expectations/suites/raw_events.json).
RAW_GATE = "gx_raw_events"


def _days_text(days: list[date]) -> str:
    shown = [d.isoformat() for d in days] if len(days) <= 4 else [str(days[0]), str(days[1]), "...", str(days[-1])]
    return ", ".join(shown)


def _days_to_run(paths: PulsePaths, options: IngestOptions) -> tuple[list[date], list[date], list[date]]:
    """(the landing days not ingested yet, whose files changed since, or ingested under other validation settings
    than ``options``; those of the last kind; the ingested days the published snapshot does not cover yet): every
    landed day without a warehouse (pulse/ingest/watermark.py)."""
    import duckdb

    from pulse.ingest.raw_events import changed_days, days_ingested_under_other_options, landed_days
    from pulse.ingest.watermark import unpublished_days

    if not paths.warehouse.exists():
        return landed_days(paths.events_landing), [], []
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        return (
            changed_days(con, paths.events_landing, options),
            days_ingested_under_other_options(con, options),
            unpublished_days(con),
        )
    finally:
        con.close()


def _partition_days(paths: PulsePaths, days: list[date]) -> list[date]:
    """The days the daily partitions cover (from the first landing day or PULSE_PARTITIONS_START, to today);
    the others are named on stderr, with why. Raises ValueError for an invalid PULSE_PARTITIONS_START."""
    from pulse.ingest.landing import partitions_start, pinned_partitions_start, split_days, today_utc

    today = today_utc()
    split = split_days(days, partitions_start(None, paths.events_landing, today), today)
    for line in split.messages(pinned=pinned_partitions_start() is not None):
        print(f"materialize: {line}", file=sys.stderr)
    return split.inside


# Landing entries listed by name when a run starts; beyond, a count.
UNSUPPORTED_SHOWN = 10


def _warn_unsupported(paths: PulsePaths) -> None:
    """Name on stderr the entries of the landing zone that no run reads (pulse.ingest.raw_events.unsupported_entries:
    an unsupported name such as notes.txt or x.jsonl.bz2, a folder that is not a day), with why."""
    from pulse.ingest.raw_events import unsupported_entries

    entries = unsupported_entries(paths.events_landing)
    if not entries:
        return
    print(
        f"materialize: warning: {len(entries)} landing entr{'y' if len(entries) == 1 else 'ies'} not read:",
        file=sys.stderr,
    )
    for entry in entries[:UNSUPPORTED_SHOWN]:
        print(f"  {paths.events_landing / entry.name}: {entry.why}", file=sys.stderr)
    if len(entries) > UNSUPPORTED_SHOWN:
        print(f"  ... {len(entries) - UNSUPPORTED_SHOWN} more", file=sys.stderr)


def cmd_materialize(args: argparse.Namespace) -> int:
    """Without a range: the landing days that are new, changed, or not covered by the published snapshot yet,
    in one run (none: no run). With --start/--end or --all: every landing day of the range is re-ingested. Runs
    that died are marked failed first; while another run executes, it waits (and says so)."""
    from pulse.ingest.raw_events import IngestOptions, landed_days

    overrides = _overrides(args)
    settings = _settings(overrides)  # every --var checked before anything runs
    paths = _paths(settings)
    _warn_unsupported(paths)
    try:
        options = IngestOptions.from_settings(settings)
        landed = landed_days(paths.events_landing)
        days = _partition_days(paths, landed)
    except ValueError as exc:  # a setting that does not parse: the message names it
        print(f"materialize: {exc}", file=sys.stderr)
        return 1
    reprocess = bool(args.start or args.end or args.all)
    if args.start:
        days = [d for d in days if d >= args.start]
    if args.end:
        days = [d for d in days if d <= args.end]
    if not days:
        where = "in the daily partitions (see above)" if landed else f"under {paths.events_landing}"
        print(f"nothing to materialize: no landing files {where}", file=sys.stderr)
        return 1
    instance = _instance(paths)
    return _exclusively(
        paths,
        instance,
        "materialize",
        lambda before_run: _materialize_days(paths, instance, days, options, args, overrides, reprocess, before_run),
    )


def _materialize_days(
    paths: PulsePaths,
    instance: object,
    days: list[date],
    options: IngestOptions,
    args: argparse.Namespace,
    overrides: dict[str, str],
    reprocess: bool,
    before_run: Callable[[], None],
) -> int:
    """`pulse materialize` once no other run executes: what to run (reading the warehouse), then the run."""
    import duckdb

    from orchestration.materialize import last_run_failed

    if reprocess:
        first, last = days[0], days[-1]
        print(f"materialize: re-ingesting every landing day of {first}..{last} ({len(days)})")
    else:
        try:
            changed, other_options, unpublished = _days_to_run(paths, options)
        except duckdb.Error as exc:
            print(f"materialize: cannot read the warehouse {paths.warehouse}: {exc}", file=sys.stderr)
            return 1
        covered = set(days)
        changed = [d for d in changed if d in covered]
        other_options = [d for d in other_options if d in covered]
        # Ingested, but the published snapshot does not cover them: a run died or failed after ingesting them.
        unpublished = [d for d in unpublished if d in covered and d not in changed]
        # A failed run may have ingested days whose models were never built: its range runs again (the days
        # it ingested are skipped, what failed after them is not).
        failed = last_run_failed(instance, MATERIALIZE_JOB)
        if not changed and not unpublished and failed is None:
            print(
                f"materialize: nothing new: {len(days)} landing days already ingested, unchanged and published "
                "(use --start/--end to reprocess a range)"
            )
            return 0
        plural = "" if len(changed) == 1 else "s"
        listed = f" ({_days_text(changed)})" if changed else ""
        unchanged = len(days) - len(changed)
        print(f"materialize: {len(changed)} new or changed landing day{plural}{listed}; {unchanged} unchanged, skipped")
        if other_options:
            print(
                f"materialize: {len(other_options)} of them ingested under other validation settings "
                "(PULSE_EARLIEST_EVENT_TIME, PULSE_FUTURE_TOLERANCE_HOURS, PULSE_MAX_ROW_BYTES): ingesting them again"
            )
        if unpublished:
            print(
                f"materialize: {len(unpublished)} ingested landing day(s) ({_days_text(unpublished)}) not in the "
                "published snapshot yet (a run stopped after ingesting them): building everything downstream again"
            )
        if failed is not None:
            print(f"materialize: the last run ({failed[0]}..{failed[1]}) did not succeed: running its days again")
        span = [*changed, *unpublished, *(failed or ())]
        # within the partitions (a failed run's range may reach days a pinned start now leaves out)
        first, last = max(min(span), days[0]), min(max(span), days[-1])
        if first > last:  # the failed run's days are all outside them now: its models run over the covered days
            first, last = days[0], days[-1]
    return _materialize(
        paths,
        first,
        last,
        instance,
        quiet=args.quiet,
        only_changed_days=not reprocess,
        overrides=overrides,
        before_run=before_run,
    )


# While it waits for another run, `pulse materialize` says so this often (seconds).
WAIT_REPORT_SECONDS = 5.0
# The exit code after Ctrl-C or SIGTERM (as a shell reports a command stopped by SIGINT).
INTERRUPTED = 130


class _WaitReport:
    """What a command prints while it waits for another run: each run found dead, once; who it waits for, every
    WAIT_REPORT_SECONDS."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.since = time.monotonic()
        self.last = -WAIT_REPORT_SECONDS
        self.dead_seen: set[str] = set()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self.last < WAIT_REPORT_SECONDS:
            return False
        self.last = now
        return True

    def _waited(self) -> str:
        return f"{time.monotonic() - self.since:.0f} s"

    def runs(self, dead: list, live: list) -> None:
        for run in dead:
            if run.run_id not in self.dead_seen:
                self.dead_seen.add(run.run_id)
                print(
                    f"{self.command}: {run.describe()}: its process is gone (killed, or the machine restarted): "
                    "marked failed, its pool slots freed",
                    flush=True,
                )
        if live and self._due():
            names = "; ".join(run.describe() for run in live)
            unknown = [run for run in live if run.alive is None and run.process is not None]
            hint = " (its process runs on another host: this one cannot tell whether it is alive)" if unknown else ""
            print(
                f"{self.command}: waiting ({self._waited()}) for {names}, to finish{hint}: one run writes the "
                "warehouse at a time (Ctrl-C stops waiting)",
                flush=True,
            )

    def lock(self, holder: object, runs: list) -> None:
        """Another pulse process (``holder``, None if unknown) holds the lock; ``runs``: the runs it executes."""
        if self._due():
            if runs:
                who = "; ".join(run.describe() for run in runs)
            else:
                who = f"`pulse` ({holder.describe()})" if holder is not None else "another `pulse` process"  # type: ignore[attr-defined]
            print(
                f"{self.command}: waiting ({self._waited()}) for {who}, to finish (one run writes the warehouse at a "
                "time; Ctrl-C stops waiting)",
                flush=True,
            )


def _exclusively(paths: PulsePaths, instance: object, command: str, body: Callable[[Callable[[], None]], int]) -> int:
    """Run ``body`` once no other run executes: runs whose process died are marked failed and their slots freed;
    another `pulse materialize` / `reprocess` of this home (a lock file beside the instance) and any run of the
    instance still executing are waited for, saying so every few seconds. ``body`` gets the wait to repeat right
    before its run starts (a run another process started meanwhile). Ctrl-C or SIGTERM stops the wait, or the
    run (marked canceled or failed, its slots freed): exit code 130."""
    from orchestration.dead_runs import run_process, runs_of_process, wait_for_live_runs
    from pulse.core.processes import ProcessIdentity, exclusive_lock

    report = _WaitReport(command)

    def wait_for_runs() -> None:
        wait_for_live_runs(instance, report.runs)  # type: ignore[arg-type]

    def wait_for_lock(holder: ProcessIdentity | None) -> None:
        records = runs_of_process(instance, holder) if holder is not None else []  # type: ignore[arg-type]
        report.lock(holder, [run_process(instance, record) for record in records])  # type: ignore[arg-type]

    with _stop_signals_interrupt():
        try:
            with exclusive_lock(paths.dagster_home / "materialize.lock", wait_for_lock):
                wait_for_runs()
                return body(wait_for_runs)
        except KeyboardInterrupt:
            print(f"{command}: interrupted (Ctrl-C or SIGTERM)", file=sys.stderr, flush=True)
            return INTERRUPTED


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt for the block (main thread only), SIGINT also when this process
    was started with it ignored (Python then leaves it ignored: a child of a process that ignores it, such as a
    pytest-xdist worker or a shell's background job, would sit out Ctrl-C and `kill -INT`)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {stop: signal.signal(stop, signal.default_int_handler) for stop in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def _materialize(
    paths: PulsePaths,
    first: date,
    last: date,
    instance: object,
    *,
    quiet: bool,
    only_changed_days: bool,
    overrides: dict[str, str] | None = None,
    before_run: Callable[[], None] | None = None,
) -> int:
    """One Dagster run of MATERIALIZE_JOB over [first, last]; prints its outcome ("done", "done with warnings"
    when a model refused to train or the run has something to say, "FAILED", "interrupted"), its warnings and
    the failed steps' errors. ``overrides``: the run's settings (``--var``); ``before_run``: called right before
    the run starts."""
    from orchestration.dead_runs import cancel_runs_of_process
    from orchestration.materialize import materialize_range, model_decisions
    from orchestration.run_watch import RunWatch

    run_started = datetime.now(UTC).replace(tzinfo=None)  # raw.events_quarantine.quarantined_at is naive UTC
    started = time.monotonic()
    started_at = _utc_now_text()
    log_file = paths.home / "logs" / "materialize.log" if quiet else None
    print(f"materialize: {first}..{last} in one Dagster run ...", flush=True)
    if overrides:
        print(f"materialize: this run's settings: {', '.join(f'{k}={v}' for k, v in overrides.items())}")
    try:
        with RunWatch(instance, lambda line: print(f"materialize: {line}", flush=True)):  # type: ignore[arg-type]
            result = materialize_range(
                first,
                last,
                instance=instance,  # type: ignore[arg-type]
                quiet=quiet,
                log_file=log_file,
                job_name=MATERIALIZE_JOB,
                only_changed_days=only_changed_days,
                overrides=overrides,
                before_run=before_run,
            )
    except KeyboardInterrupt:  # outside a step (Dagster ends a run interrupted in a step itself)
        for run_id in cancel_runs_of_process(instance, "interrupted (Ctrl-C or SIGTERM)"):  # type: ignore[arg-type]
            print(f"materialize: run {run_id[:8]} canceled, its pool slots freed", file=sys.stderr)
        raise
    if _interrupted(result):
        print(
            f"materialize: interrupted (Ctrl-C or SIGTERM) after {time.monotonic() - started:.0f} s: run "
            f"{result.run_id[:8]} stopped ({result.dagster_run.status.value.lower()}), its pool slots freed; the next "
            "`pulse materialize` runs its days again",
            file=sys.stderr,
        )
        return INTERRUPTED
    # A step whose inputs never came (an asset a step should have yielded and did not) is skipped, and Dagster
    # still calls the run a success: here it is a failure, named.
    skipped = [event.step_key for event in result.all_events if event.event_type_value == "STEP_SKIPPED"]
    succeeded = result.success and not skipped
    decisions = model_decisions(result)
    refused = [d for d in decisions if d.status == "refused"]
    run_warnings = _run_warnings(result)
    status = ("done with warnings" if refused or run_warnings else "done") if succeeded else "FAILED"
    print(
        f"materialize: {status} in {time.monotonic() - started:.0f} s" + (f"; dbt log: {log_file}" if log_file else "")
    )
    for decision in decisions:
        if decision.status == "refused":
            kept = (
                f"champion version {decision.champion_version} stays in use"
                if decision.champion_version
                else "no champion: its fields are empty in the profiles and exports, which say why"
            )
            print(f"materialize: warning: {decision.asset} refused to train: {decision.reason}; {kept}")
        elif decision.status == "unchanged":
            print(f"materialize: {decision.asset}: {decision.reason}")
    for warning in run_warnings:
        print(f"materialize: warning: {warning}", file=sys.stderr)
    _print_consent_lines(paths, started_at)
    if skipped:
        print(f"materialize: steps skipped, an upstream output missing: {', '.join(skipped)}", file=sys.stderr)
    _print_quarantine(paths, first, last, run_started, result)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                    error = error.cause  # the error raised in the asset, not Dagster's wrapper around it
                print(f"{event.step_key}: {error.message.strip() if error else event.message}", file=sys.stderr)
    return 0 if succeeded else 1


def _interrupted(result: object) -> bool:
    """Whether the run stopped on Ctrl-C / SIGTERM: canceled, or a step interrupted (Dagster's
    DagsterExecutionInterruptedError; a step failure names the error's class)."""
    import dagster as dg

    if result.dagster_run.status == dg.DagsterRunStatus.CANCELED:  # type: ignore[attr-defined]
        return True
    for event in result.all_events:  # type: ignore[attr-defined]
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            if error.cls_name == "DagsterExecutionInterruptedError":
                return True
            error = error.cause
    return False


def _run_warnings(result: object) -> list[str]:
    """What a run's materializations say the user should know: feature snapshot dates dropped by the cap, events
    kept aside because they arrived later than the lookback (qa_late_events)."""
    from ml.feature_snapshots import SNAPSHOT_DATES
    from pulse.ingest.batches import late_events_text

    warnings = []
    for event in result.all_events:  # type: ignore[attr-defined]
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        if materialization.asset_key.to_user_string() == SNAPSHOT_DATES and metadata["snapshots_dropped"].value:
            kept, dropped = metadata["snapshots_kept"].value, metadata["snapshots_dropped"].value
            warnings.append(
                f"{dropped} older feature snapshot dates dropped ({metadata['dropped_from'].value}.."
                f"{metadata['dropped_to'].value}): feature_snapshots_max={kept} keeps {kept} "
                f"(from {metadata['kept_from'].value}); --var feature_snapshots_max={kept + dropped} keeps them all"
            )
        late = metadata.get("late_events")
        if materialization.asset_key.to_user_string() == "qa_late_events" and late is not None and late.value:
            warnings.append(late_events_text(late.value, metadata["late_events_from"].value))
    return warnings


def _raw_gate_blocked(result: object) -> bool:
    return any(
        e.check_name == RAW_GATE and not e.passed
        for e in result.get_asset_check_evaluations()  # type: ignore[attr-defined]
    )


def _print_quarantine(paths: PulsePaths, first: date, last: date, run_started: datetime, result: object) -> None:
    """After a run: the quarantine reasons (counts and one example each) when the run quarantined lines or the
    raw gate blocked (then every quarantined line of the run's days: some may be from an earlier run)."""
    import duckdb

    from pulse.ingest.quarantine import quarantine_report, render_quarantine

    blocked = _raw_gate_blocked(result)
    if not paths.warehouse.exists():
        return
    try:
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            report = quarantine_report(con, first, last, since=None if blocked else run_started)
    except duckdb.Error as exc:
        print(f"materialize: cannot read {paths.warehouse} for the quarantine report: {exc}", file=sys.stderr)
        return
    if report.lines or blocked:
        print(render_quarantine(report, gate_blocked=blocked), file=sys.stderr)


def _utc_now_text() -> str:
    """Now in UTC as the manifest writes ``published_at`` (seconds), to compare with it."""
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _print_consent_lines(paths: PulsePaths, started_at: str) -> None:
    """Who the snapshot this run published leaves out for lack of consent (pulse/activation/consent.py), from its
    manifest."""
    from pulse.activation.publish import published_consent_lines

    try:
        lines = published_consent_lines(paths.exports, published_since=started_at)
    except (OSError, ValueError) as exc:
        lines = [f"consent: the published manifest is unreadable: {exc}"]
    for line in lines:
        print("materialize: " + " ".join(line.split()))


def cmd_reprocess(args: argparse.Namespace) -> int:
    """Recompute every user with an event from --from on (default: the earliest event qa_late_events lists),
    which folds in the events that arrived later than the lookback; then everything downstream, in one run."""
    from pulse.ingest.raw_events import landed_days

    overrides = _overrides(args)
    paths = _paths(_settings(overrides))
    try:
        days = _partition_days(paths, landed_days(paths.events_landing))
    except ValueError as exc:
        print(f"reprocess: {exc}", file=sys.stderr)
        return 1
    if not paths.warehouse.exists() or not days:
        print(f"reprocess: nothing built yet in {paths.warehouse}: run `pulse materialize` first", file=sys.stderr)
        return 1
    instance = _instance(paths)
    return _exclusively(
        paths, instance, "reprocess", lambda before_run: _reprocess(paths, instance, days, args, overrides, before_run)
    )


def _reprocess(
    paths: PulsePaths,
    instance: object,
    days: list[date],
    args: argparse.Namespace,
    overrides: dict[str, str],
    before_run: Callable[[], None],
) -> int:
    """`pulse reprocess` once no other run executes."""
    from pulse.core.warehouse import open_warehouse
    from pulse.ingest.batches import batch_report

    start = args.start
    if start is None:
        with open_warehouse(paths, read_only=True) as warehouse:
            report = batch_report(warehouse)
        if report is None or not report.late_events:
            print("reprocess: no late events to fold in (qa_late_events is empty); give --from D to reprocess anyway")
            return 0
        start = report.late_events_from
        print(f"reprocess: {report.late_events:,} late events, the earliest on {start}")
    print(f"reprocess: recomputing every user with an event from {start} on")
    overrides["reprocess_from"] = start.isoformat()
    _settings(overrides)
    return _materialize(
        paths,
        days[-1],
        days[-1],
        instance,
        quiet=args.quiet,
        only_changed_days=True,
        overrides=overrides,
        before_run=before_run,
    )


def cmd_summary(args: argparse.Namespace) -> int:
    from pulse.cli.summary import render_summary

    print(render_summary(_paths()))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Every setting's effective value and where it came from (default, the settings file, a variable, --var);
    ``--env-example``: the text of .env.example, written from the declarations (`make env-example`)."""
    if args.env_example:
        from pulse.core.settings import env_example

        print(env_example(), end="")
        return 0
    settings = _settings(_overrides(args))
    state = "" if settings.file.exists() else " (absent: defaults and the environment only)"
    print(f"PULSE_HOME  {settings.home}\nfile        {settings.file}{state}")
    rows = settings.describe()
    name_width = max(len(name) for name, _, _ in rows)
    value_width = min(48, max(len(value) for _, value, _ in rows))
    for name, value, source in rows:
        print(f"{name:<{name_width}}  {value:<{value_width}}  {source}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    paths = _paths(_settings(_overrides(args)))
    from pulse.ingest.raw_events import landed_days

    if not landed_days(paths.events_landing):
        rc = cmd_demo(args)
        if rc:
            return rc
    else:
        print(f"landing zone has files: {paths.events_landing} (delete it to regenerate the demo)")
    rc = cmd_materialize(
        argparse.Namespace(start=None, end=None, all=False, quiet=True, vars=args.vars, test_as_of=args.test_as_of)
    )
    if rc:
        return rc
    return cmd_summary(args)


def _dagster_dev(host: str, port: int) -> list[str]:
    """`dagster dev` (webserver and daemon) over the workspace, as `make ui` runs it."""
    return [_venv_bin("dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]


def _docs_address() -> DocsAddress:
    from pulse.ui.docs_server import docs_address

    return docs_address()  # PULSE_DOCS_URL: DocsUrlError names it and its value


@contextlib.contextmanager
def _docs_server(paths: PulsePaths, address: DocsAddress) -> Iterator[DocsServer | None]:
    """The docs server (Data Docs + dbt docs) in a thread of this process, stopped when the block ends. A port
    already taken is reported and the block runs without it: the UI beside it does not need it."""
    from expectations.runner import DOCS_DIRNAME
    from pulse.ui.dbt_docs import dbt_docs_site
    from pulse.ui.docs_server import DocsServer

    server = DocsServer(address, paths.home / DOCS_DIRNAME, dbt_docs_site(paths.home))
    try:
        server.start()
    except OSError as exc:
        print(
            f"docs server NOT started on {address.url} ({exc}); set PULSE_DOCS_URL to a free http://HOST:PORT "
            "(the links written by runs point there)",
            file=sys.stderr,
            flush=True,
        )
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


def cmd_ui(args: argparse.Namespace) -> int:
    """dagster dev, with the docs server beside it; Ctrl-C / SIGTERM stops both (pulse/cli/supervisor.py)."""
    from pulse.cli.supervisor import run_supervised
    from pulse.ui.docs_server import DocsUrlError

    settings = _settings()  # every setting checked before the UI starts: the code location would refuse it
    paths = _paths(settings)
    try:
        address = _docs_address()
    except DocsUrlError as exc:
        print(f"pulse ui: {exc}", file=sys.stderr)
        return 2
    with _docs_server(paths, address) as docs:
        print(
            f"Dagster UI: http://{args.host}:{args.port}/"
            + (f"   Data Docs and dbt docs: {docs.url}/   (Ctrl-C stops both)" if docs else "   (Ctrl-C stops it)"),
            flush=True,
        )
        return run_supervised(_dagster_dev(args.host, args.port), cwd=REPO_ROOT, env=settings.child_env())


def cmd_docs(args: argparse.Namespace) -> int:
    """Only the docs server (Data Docs + dbt docs), until Ctrl-C / SIGTERM."""
    import signal
    import threading

    from pulse.ui.docs_server import DocsUrlError

    paths = _paths()
    try:
        address = _docs_address()
    except DocsUrlError as exc:
        print(f"pulse docs: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _docs_server(paths, address) as docs:
            if docs is None:
                return 1
            print(f"Data Docs and dbt docs on {docs.url}/ (Ctrl-C stops)", flush=True)
            stop.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def cmd_mlflow(args: argparse.Namespace) -> int:
    """The MLflow UI over PULSE_HOME's tracking store: one worker, no job runner (~0.5 GB, starts in ~3 s)."""
    settings = home_settings()
    paths = _paths(settings)
    from ml.tracking import tracking_uri

    if paths.mlflow_uri:
        print(f"mlflow_uri is set: runs and models are on {paths.mlflow_uri}, open its own UI", file=sys.stderr)
        return 1
    env = settings.child_env() | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        _venv_bin("mlflow"),
        "server",
        "--workers",
        "1",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--backend-store-uri",
        tracking_uri(paths.mlflow_db),
    ]
    url = f"http://{args.host}:{args.port}"
    if _mlflow_app_installed():
        cmd += ["--app-name", MLFLOW_APP]  # pulse.ui.mlflow_ui: opens in the model-training view
    else:
        print(
            f"the MLflow app {MLFLOW_APP!r} is not registered (run `make install`): MLflow may open in its GenAI "
            "view; switch to 'Model training' in its sidebar",
            file=sys.stderr,
        )
    print(
        f"MLflow UI on {url} over {paths.mlflow_db}\n"
        f"  experiments (model training view): {url}/#/experiments?workflowType=machine_learning",
        file=sys.stderr,
    )
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


MLFLOW_APP = "pulse"  # [project.entry-points."mlflow.app"] in pyproject.toml


def _mlflow_app_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == MLFLOW_APP for ep in entry_points(group="mlflow.app"))


def cmd_import(args: argparse.Namespace) -> int:
    """Convert source files (Snowplow, Segment, OTTO, mapped CSV/Parquet, ...) into daily contract files."""
    from pulse.importers import ConsentDeclaration, ConsentError, MappingError, SourceError, import_files, part_limits
    from pulse.importers.consent import consent_lines
    from pulse.ingest.raw_events import IngestOptions

    try:
        declaration = ConsentDeclaration.parse(args.consent, args.consent_basis)
    except ConsentError as exc:
        print(f"pulse import: {exc}", file=sys.stderr)
        return 2
    landing = Path(args.landing).expanduser().resolve() if args.landing else paths_from_env().landing
    try:  # no file written bigger than ingestion accepts (a bad setting is reported after the import)
        options = IngestOptions.from_settings(ingest_settings())
        limits = part_limits(options.max_file_lines, options.max_file_bytes)
    except ValueError:
        limits = part_limits(IngestOptions.max_file_lines, IngestOptions.max_file_bytes)
    try:
        summary = import_files(
            args.format,
            args.paths,
            landing,
            mapping=args.mapping,
            progress=not args.quiet,
            declaration=declaration,
            part_limits=limits,
        )
    except (SourceError, MappingError) as exc:
        print(f"pulse import: {exc}", file=sys.stderr)
        return 1
    for line in summary.first_rejects[:5]:
        print(f"rejected: {line}", file=sys.stderr)
    if summary.rejected > 5:
        print(f"rejected: ... {summary.rejected - 5:,} more", file=sys.stderr)
    days = summary.days
    span = f"{days[0]}..{days[-1]} ({len(days)} days)" if days else "no days"
    print(
        f"import: {summary.rows_read:,} rows read, {summary.events_written:,} events written, "
        f"{summary.rejected:,} rejected, {len(summary.files)} file(s) in {summary.seconds:.1f} s -> "
        f"{landing / 'events'} {span}"
    )
    if summary.identical_rows:
        print(
            f"        {summary.identical_rows:,} rows repeat an identical earlier row of their file: kept as separate "
            "events (their generated ids numbered -2, -3, ...)"
        )
    for result in summary.files:
        if result.rejected_file is not None:
            print(f"        rejects of {result.source}: {result.rejected_file}")
    _warn_outside_window(summary)
    for line in consent_lines(summary.declaration, summary.consent, summary.events_written):
        print(line)
    records = sorted({str(f.record_file) for f in summary.files if f.record_file})
    if records:
        print(f"        recorded in {', '.join(records)}")
    return 0


def _warn_outside_window(summary: ImportSummary) -> None:
    """Warn (stderr) about imported events `pulse materialize` will not accept as they are: before the floor
    (PULSE_EARLIEST_EVENT_TIME), or beyond the future tolerance (PULSE_FUTURE_TOLERANCE_HOURS)."""
    from pulse.importers.window import outside_window, window_warnings
    from pulse.ingest.raw_events import IngestOptions

    try:
        options = IngestOptions.from_settings(ingest_settings())
    except ValueError as exc:
        print(f"import: warning: {exc}: `pulse materialize` will stop on it; events not checked", file=sys.stderr)
        return
    ceiling = datetime.now(UTC).replace(tzinfo=None) + options.future_tolerance
    report = outside_window(summary.files, options.earliest_event_time, ceiling)
    for warning in window_warnings(report, options.future_tolerance):
        first, *rest = warning.splitlines()
        print("\n".join([f"import: warning: {first}", *(f"                 {line}" for line in rest)]), file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    """The read API over the published snapshot (profiles, audiences) merged with the live state, and the
    content decisions of the rules file, until Ctrl-C."""
    from pulse.activation.decisions import DEFAULT_RULES_FILE, DecisionRulesError
    from pulse.activation.serve import serve

    settings = _settings()  # every setting checked at start: a bad one stops here, named (exit 2)
    exports = Path(args.exports).expanduser().resolve() if args.exports else settings.exports
    live = Path(args.live_state).expanduser().resolve() if args.live_state else None
    rules = Path(args.decision_rules).expanduser().resolve() if args.decision_rules else DEFAULT_RULES_FILE
    try:
        return serve(
            host=args.host,
            port=args.port,
            exports_dir=exports,
            live_state=live,
            decision_rules=rules,
            dbt_vars=settings.dbt_vars(),
        )
    except DecisionRulesError as exc:
        print(f"pulse serve: {exc}", file=sys.stderr)
        return 2


def cmd_deliver(args: argparse.Namespace) -> int:
    """POST live trigger firings to the webhooks of the settings until Ctrl-C / SIGTERM (docs/realtime.md)."""
    import logging
    import threading

    from pulse.live.delivery import (
        DeliveryConfig,
        DeliveryLocked,
        connect,
        dead_letters,
        delivery_settings,
        redeliver,
        run_deliverer,
    )

    config = DeliveryConfig.from_settings(delivery_settings())  # a bad webhook setting stops here, named (exit 2)
    if args.dead_letters or args.redeliver:
        conn = connect(config.state_db)
        try:
            if args.redeliver:
                webhook, _, keys = args.redeliver.partition(":")
                if webhook not in {w.name for w in config.webhooks}:
                    print(f"pulse deliver: --redeliver: no webhook {webhook!r} in the settings", file=sys.stderr)
                    return 2
                targets = keys.split(",") if keys else [d["firing_key"] for d in dead_letters(conn, webhook)]
                print(f"queued {redeliver(conn, webhook, targets)} dead letter(s) of {webhook} again")
                return 0
            for d in dead_letters(conn):
                print(
                    f"{d['webhook']}  seq {d['seq']}  {d['firing_key']}  attempt {d['attempt']}  {d['at']}  "
                    f"{d['error']}"
                )
            return 0
        finally:
            conn.close()
    if not config.webhooks:
        print("pulse deliver: no webhook configured (the settings webhooks and webhook_secrets)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    names = ", ".join(w.name for w in config.webhooks)

    def ready() -> None:
        print(f"pulse deliver: following {config.state_db} to {names}", flush=True)

    try:
        with _stop_signals_interrupt():
            run_deliverer(config, stop, on_ready=ready)
    except KeyboardInterrupt:
        stop.set()
    except DeliveryLocked as exc:
        print(f"pulse deliver: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    """The HTTP collector: events acknowledged once on disk, rolled into the landing zone (docs/collection.md)."""
    from pulse.collector.app import CollectorSettings
    from pulse.collector.server import collect
    from pulse.ingest.raw_events import IngestOptions

    paths = _paths()
    # the contract's limits ingestion will apply to what the collector acknowledges (a SettingsError names the
    # variable; `main` reports it, exit 2)
    limits = IngestOptions.from_settings(ingest_settings()).limits
    settings = CollectorSettings(
        spool=paths.collector / "spool",
        events_landing=paths.events_landing,
        dead_letter=paths.collector / "dead-letter",
        site=Path(args.site).resolve() if args.site else None,
        ip_mode=args.ip,
        secure_cookie=args.secure_cookie,
        roll_seconds=args.roll_seconds,
        min_free_bytes=int(args.min_free_mb * (1 << 20)),
        max_header_bytes=int(args.max_header_kb * (1 << 10)),
        limits=limits,
    )
    return collect(settings, host=args.host, port=args.port)


def cmd_stream(args: argparse.Namespace) -> int:
    """The stream processor: the collector's log in, the live state out, until Ctrl-C / SIGTERM (or, with
    --until-caught-up, until the log has nothing more). docs/realtime.md."""
    import logging
    import signal
    import threading

    from pulse.live.clock import OffsetFileClock, system_clock
    from pulse.live.processor import StreamOptions, StreamProcessor
    from pulse.live.source import CollectorLogSource, SourceError
    from pulse.live.store import LiveStateStore

    settings = _settings()  # the dbt vars its rules read, checked at start (a bad one: exit 2, named)
    paths = _paths(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    clock = OffsetFileClock(Path(args.clock_offset_file).resolve()) if args.clock_offset_file else system_clock
    source = CollectorLogSource(paths.collector / "spool", paths.events_landing)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with LiveStateStore(paths.live_state) as store:
            # The live triggers (pulse/live/triggers.py TriggerModel) are not run here yet: with them the crash
            # test's state differed from one clean pass (timers fired at the wall clock once caught up).
            processor = StreamProcessor(source, store, StreamOptions.from_settings(settings), clock=clock)
            print(
                f"pulse stream: {paths.collector / 'spool'} and {paths.events_landing}/<day>/collector-*.jsonl -> "
                f"{paths.live_state} (from {processor.position or 'the beginning'})",
                flush=True,
            )
            started = time.monotonic()
            try:
                stats = processor.run(stop, until_caught_up=args.until_caught_up)
            except SourceError as exc:  # the log does not continue the committed position: say so, stop
                print(f"pulse stream: {exc} (committed position {processor.position})", file=sys.stderr)
                return 1
            elapsed = time.monotonic() - started
            print(
                f"pulse stream: {stats.events:,} events in {stats.batches:,} batches ({elapsed:.1f} s), "
                f"{stats.duplicates:,} duplicates skipped, {stats.rejected:,} lines rejected; at {processor.position}",
                flush=True,
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    """The collector serving the demo shop, the stream processor keeping the live state from the collector's
    log, the Dagster UI whose landing sensor ingests what it lands, and the docs server. Ctrl-C / SIGTERM stops
    them all."""
    from pulse.cli.supervisor import run_supervised
    from pulse.ui.docs_server import DocsUrlError

    settings = home_settings()
    paths = _paths(settings)
    env = settings.child_env()
    try:
        address = _docs_address()
    except DocsUrlError as exc:
        print(f"pulse live: {exc}", file=sys.stderr)
        return 2
    collector = subprocess.Popen(
        [_venv_bin("pulse"), "collect", "--host", args.host, "--port", str(args.port), "--roll-seconds", "10"],
        env=env,
    )
    stream = subprocess.Popen([_venv_bin("pulse"), "stream"], env=env)
    try:
        with _docs_server(paths, address) as docs:
            print(
                f"demo shop (tracked): http://{args.host}:{args.port}/   Dagster UI: http://{args.host}:{args.ui_port}/"
                + (f"   docs: {docs.url}/" if docs else "")
                + f"\nevents land in {paths.events_landing}/<today>/collector-*.jsonl every 10 s; the landing sensor"
                " (every 60 s) ingests them and rebuilds sessions and profiles; `pulse stream` keeps the live state"
                f" in {paths.live_state} within a second. Ctrl-C stops them all.",
                flush=True,
            )
            return run_supervised(_dagster_dev(args.host, args.ui_port), cwd=REPO_ROOT, env=env)
    finally:
        for process in (stream, collector):
            process.terminate()
        for process in (stream, collector):
            process.wait(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def run_settings_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--var",
            dest="vars",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a setting for this run only (repeatable); `pulse settings` lists the names",
        )

    def demo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--users", type=int, default=5000)
        p.add_argument("--days", type=int, default=60)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument(
            "--start",
            type=date.fromisoformat,
            default=None,
            metavar="D",
            help="first day (UTC); default: today - days, so that the history ends yesterday",
        )

    p = sub.add_parser("demo", help="write the demo shop's daily event files into the landing zone")
    demo_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("prepare", help="build dbt's manifest (run at install time)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("materialize", help="ingest the new or changed landing days and build every asset, in one run")
    p.add_argument("--start", type=date.fromisoformat, default=None, metavar="D", help="re-ingest the days from D")
    p.add_argument("--end", type=date.fromisoformat, default=None, metavar="D", help="re-ingest the days up to D")
    p.add_argument("--all", action="store_true", help="re-ingest every landing day")
    p.add_argument("--quiet", action="store_true", help="only warnings from Dagster")
    run_settings_args(p)
    p.add_argument(
        "--test-as-of",
        default=None,
        metavar="D",
        help="the intent model's evaluation date: test on the latest labelled snapshot on or before D "
        "(profiles keep the latest snapshot); the same as --var intent_test_as_of=D",
    )
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser("reprocess", help="fold in events that arrived later than the lookback (qa_late_events)")
    p.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        default=None,
        metavar="D",
        help="recompute every user with an event from D on (default: the earliest late event's day)",
    )
    p.add_argument("--quiet", action="store_true", help="only warnings from Dagster")
    run_settings_args(p)
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("summary", help="print what the warehouse holds")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("run", help="demo data (if the landing zone is empty), materialize, summary")
    demo_args(p)
    run_settings_args(p)
    p.set_defaults(func=cmd_run, test_as_of=None)

    p = sub.add_parser("settings", help="every setting's effective value and where it came from")
    run_settings_args(p)
    p.add_argument(
        "--env-example",
        action="store_true",
        help="print .env.example, written from the declarations (pulse/core/settings.py), instead",
    )
    p.set_defaults(func=cmd_settings)

    from pulse.importers import CONSENT_CHOICES, FORMATS

    p = sub.add_parser("import", help="convert Snowplow / Segment / OTTO / mapped files into landing files")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--mapping", default=None, help="YAML mapping for --format mapped (a path or a shipped name)")
    p.add_argument("--landing", default=None, help="landing zone root (default: PULSE_LANDING)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--consent",
        choices=CONSENT_CHOICES,
        default="none",
        help="consent to declare for the imported events (default: none: they carry only the flags the source "
        "has, and users without a consent_personalization flag are never exported). analytics / personalization "
        "/ all set that flag (both for all) to true on every event without its own value; flags the source "
        "carries, refusals included, are kept. Needs --consent-basis",
    )
    p.add_argument(
        "--consent-basis",
        default=None,
        metavar="TEXT",
        help="the lawful basis of the declared consent, recorded with every event it covers (consent_basis), e.g. "
        '"consent collected at sign-up (form v3)" or "contract"; required with --consent',
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("mlflow", help="the MLflow UI over the tracking store in PULSE_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_mlflow)

    p = sub.add_parser("ui", help="the Dagster UI with every asset loaded, and the docs server (PULSE_DOCS_URL)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("docs", help="only the docs server: GX Data Docs and dbt docs on PULSE_DOCS_URL")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("serve", help="the read API (profiles, audiences) over the published snapshot")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--exports", default=None, help="published snapshots root (default: PULSE_EXPORTS)")
    p.add_argument(
        "--live-state", default=None, help="the stream's state database (default: PULSE_HOME/live/state.sqlite)"
    )
    p.add_argument("--decision-rules", default=None, help="the content decision rules (docs/decisions.md)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("deliver", help="POST live trigger firings to the webhooks of the settings (signed, retried)")
    p.add_argument("--dead-letters", action="store_true", help="list the dead letters and exit")
    p.add_argument(
        "--redeliver",
        default=None,
        metavar="WEBHOOK[:KEY,...]",
        help="queue the dead letters of WEBHOOK (or only these firing keys) again and exit",
    )
    p.set_defaults(func=cmd_deliver)

    from pulse.collector.app import DEFAULT_MIN_FREE_MB, CollectorSettings

    p = sub.add_parser("collect", help="the HTTP event collector and tracker (first-party collection)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--site", default=None, help="static pages to serve at / (default: the demo shop)")
    p.add_argument("--ip", choices=("truncate", "drop", "full"), default="truncate", help="client IP in events")
    p.add_argument("--secure-cookie", action="store_true", help="mark the id cookie Secure (behind TLS)")
    p.add_argument("--roll-seconds", type=float, default=60.0, help="publish the log segment this often")
    p.add_argument(
        "--min-free-mb",
        type=float,
        default=float(DEFAULT_MIN_FREE_MB),
        help=f"answer 503 below this much free disk (default {DEFAULT_MIN_FREE_MB})",
    )
    p.add_argument(
        "--max-header-kb",
        type=float,
        default=CollectorSettings.max_header_bytes / 1024,
        help="answer 431 to a request whose line and headers are over this many KB (default %(default)g)",
    )
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("stream", help="the stream processor: the collector's log into the live state (real time)")
    p.add_argument(
        "--until-caught-up", action="store_true", help="stop once the log has nothing more (a replay), not on Ctrl-C"
    )
    p.add_argument(
        "--clock-offset-file",
        default=None,
        metavar="FILE",
        help="add the number of seconds this file holds to the processor's clock (tests move its timers forward)",
    )
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("live", help="collector + demo shop + Dagster UI: click around, watch events arrive")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="the collector and demo shop")
    p.add_argument("--ui-port", type=int, default=3000)
    p.set_defaults(func=cmd_live)
    return parser


def _protect_files() -> None:
    """Before anything is written: this process's umask from ``file_access`` (owner-only by default; every child
    process inherits it), and an existing PULSE_HOME no wider than it allows (pulse/core/file_access.py)."""
    from pulse.core.file_access import apply_umask, tighten_home

    settings = group_settings(["file_access"])
    apply_umask(settings.file_access)
    notice = tighten_home(settings.home, settings.file_access)
    if notice:
        print(f"pulse: {notice}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # Dagster marks BackfillPolicy as beta on every definitions load; say it once in the docs instead.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    args = build_parser().parse_args(argv)
    try:
        _protect_files()
        return int(args.func(args))
    except SettingsError as exc:
        print(f"pulse {args.command}: settings:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
