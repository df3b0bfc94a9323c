"""The `pulse` command: demo data, preparing the dbt manifest, materializing, a summary, the UI.

Every subcommand resolves PULSE_* paths once, to absolute paths, and exports them so that Dagster and
dbt (child processes) see the same warehouse and landing zone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

from pulse.settings import PulsePaths, export_to_environ, paths_from_env

REPO_ROOT = Path(__file__).resolve().parents[1]
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


def _paths() -> PulsePaths:
    paths = paths_from_env().ensure()
    export_to_environ(paths)
    dagster_yaml = paths.dagster_home / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text(DAGSTER_YAML)
    return paths


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def cmd_demo(args: argparse.Namespace) -> int:
    from pulse.demo import generate_demo

    paths = _paths()
    summary = generate_demo(
        paths.landing, users=args.users, days=args.days, seed=args.seed, start=args.start, progress=True
    )
    bad = sum(summary.malformed_injected.values())
    print(
        f"demo: {summary.events_written:,} events for {summary.users:,} users over {summary.days} days "
        f"in {summary.seconds:.1f} s -> {paths.events_landing}\n"
        f"      injected: {summary.duplicates_injected:,} duplicates, {summary.late_injected:,} late, "
        f"{bad:,} malformed lines; ground truth: {paths.landing / 'personas.csv'}"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Build dbt's manifest (target/manifest.json), which the Dagster definitions load."""
    _paths()
    return subprocess.call([_venv_bin("dbt"), "parse", "--quiet"], cwd=DBT_PROJECT_DIR)


# The job `pulse materialize` runs: every asset, the intent model included.
MATERIALIZE_JOB = "all_assets"


def _days_text(days: list[date]) -> str:
    shown = [d.isoformat() for d in days] if len(days) <= 4 else [str(days[0]), str(days[1]), "...", str(days[-1])]
    return ", ".join(shown)


def _changed_landing_days(paths: PulsePaths) -> list[date]:
    """The landing days not ingested yet or whose files changed since (every landed day without a warehouse)."""
    import duckdb

    from pulse.ingest import changed_days, landed_days

    if not paths.warehouse.exists():
        return landed_days(paths.events_landing)
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        return changed_days(con, paths.events_landing)
    finally:
        con.close()


def cmd_materialize(args: argparse.Namespace) -> int:
    """Without a range: only the new or changed landing days, in one run (none: no run). With --start/--end
    or --all: every landing day of the range is re-ingested."""
    import dagster as dg
    import duckdb

    from orchestration.materialize import last_run_failed
    from pulse.ingest import landed_days

    paths = _paths()
    days = landed_days(paths.events_landing)
    reprocess = bool(args.start or args.end or args.all)
    if args.start:
        days = [d for d in days if d >= args.start]
    if args.end:
        days = [d for d in days if d <= args.end]
    if not days:
        print(f"nothing to materialize: no landing files under {paths.events_landing}", file=sys.stderr)
        return 1
    instance = dg.DagsterInstance.get()
    if reprocess:
        first, last = days[0], days[-1]
        print(f"materialize: re-ingesting every landing day of {first}..{last} ({len(days)})")
    else:
        try:
            changed = _changed_landing_days(paths)
        except duckdb.Error as exc:
            print(f"materialize: cannot read the warehouse {paths.warehouse}: {exc}", file=sys.stderr)
            return 1
        # A failed run may have ingested days whose models were never built: its range runs again (the days
        # it ingested are skipped, what failed after them is not).
        failed = last_run_failed(instance, MATERIALIZE_JOB)
        if not changed and failed is None:
            print(
                f"materialize: nothing new: {len(days)} landing days already ingested and unchanged "
                "(use --start/--end to reprocess a range)"
            )
            return 0
        plural = "" if len(changed) == 1 else "s"
        listed = f" ({_days_text(changed)})" if changed else ""
        unchanged = len(days) - len(changed)
        print(f"materialize: {len(changed)} new or changed landing day{plural}{listed}; {unchanged} unchanged, skipped")
        if failed is not None:
            print(f"materialize: the last run ({failed[0]}..{failed[1]}) did not succeed: running its days again")
        span = [*changed, *(failed or ())]
        first, last = min(span), max(span)
    return _materialize(paths, first, last, instance, quiet=args.quiet, only_changed_days=not reprocess)


def _materialize(
    paths: PulsePaths,
    first: date,
    last: date,
    instance: object,
    *,
    quiet: bool,
    only_changed_days: bool,
    dbt_config: dict | None = None,
) -> int:
    """One Dagster run of MATERIALIZE_JOB over [first, last]; prints its outcome ("done", "done with warnings"
    when a model refused to train, "FAILED") and the failed steps' errors."""
    from orchestration.materialize import materialize_range, model_decisions

    started = time.monotonic()
    log_file = paths.home / "logs" / "materialize.log" if quiet else None
    print(f"materialize: {first}..{last} in one Dagster run ...", flush=True)
    result = materialize_range(
        first,
        last,
        instance=instance,
        quiet=quiet,
        log_file=log_file,
        job_name=MATERIALIZE_JOB,
        only_changed_days=only_changed_days,
        dbt_config=dbt_config,
    )
    # A step whose inputs never came (an asset a step should have yielded and did not) is skipped, and Dagster
    # still calls the run a success: here it is a failure, named.
    skipped = [event.step_key for event in result.all_events if event.event_type_value == "STEP_SKIPPED"]
    succeeded = result.success and not skipped
    decisions = model_decisions(result)
    refused = [d for d in decisions if d.status == "refused"]
    status = ("done with warnings" if refused else "done") if succeeded else "FAILED"
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
    if skipped:
        print(f"materialize: steps skipped, an upstream output missing: {', '.join(skipped)}", file=sys.stderr)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                    error = error.cause  # the error raised in the asset, not Dagster's wrapper around it
                print(f"{event.step_key}: {error.message.strip() if error else event.message}", file=sys.stderr)
    return 0 if succeeded else 1


def cmd_reprocess(args: argparse.Namespace) -> int:
    """Recompute every user with an event from --from on (default: the earliest event qa_late_events lists),
    which folds in the events that arrived later than the lookback; then everything downstream, in one run."""
    import dagster as dg

    from pulse.batches import batch_report
    from pulse.ingest import landed_days
    from pulse.warehouse import open_warehouse

    paths = _paths()
    days = landed_days(paths.events_landing)
    if not paths.warehouse.exists() or not days:
        print(f"reprocess: nothing built yet in {paths.warehouse}: run `pulse materialize` first", file=sys.stderr)
        return 1
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
    return _materialize(
        paths,
        days[-1],
        days[-1],
        dg.DagsterInstance.get(),
        quiet=args.quiet,
        only_changed_days=True,
        dbt_config={"reprocess_from": start.isoformat()},
    )


def cmd_summary(args: argparse.Namespace) -> int:
    from pulse.summary import render_summary

    print(render_summary(_paths()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    paths = _paths()
    from pulse.ingest import landed_days

    if not landed_days(paths.events_landing):
        rc = cmd_demo(args)
        if rc:
            return rc
    else:
        print(f"landing zone has files: {paths.events_landing} (delete it to regenerate the demo)")
    rc = cmd_materialize(argparse.Namespace(start=None, end=None, all=False, quiet=True))
    if rc:
        return rc
    return cmd_summary(args)


def _dagster_dev(host: str, port: int) -> list[str]:
    """`dagster dev` (webserver and daemon) over the workspace, as `make ui` runs it."""
    return [_venv_bin("dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]


def cmd_ui(args: argparse.Namespace) -> int:
    _paths()
    cmd = _dagster_dev(args.host, args.port)
    os.chdir(REPO_ROOT)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_mlflow(args: argparse.Namespace) -> int:
    """The MLflow UI over PULSE_HOME's tracking store: one worker, no job runner (~0.5 GB, starts in ~3 s)."""
    paths = _paths()
    from ml.tracking import tracking_uri

    if paths.mlflow_uri:
        print(f"PULSE_MLFLOW_URI is set: runs and models are on {paths.mlflow_uri}, open its own UI", file=sys.stderr)
        return 1
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
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
    print(f"MLflow UI on http://{args.host}:{args.port} over {paths.mlflow_db}", file=sys.stderr)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_import(args: argparse.Namespace) -> int:
    """Convert source files (Snowplow, Segment, OTTO, mapped CSV/Parquet, ...) into daily contract files."""
    from pulse.importers import MappingError, SourceError, import_files

    landing = Path(args.landing).expanduser().resolve() if args.landing else paths_from_env().landing
    try:
        summary = import_files(args.format, args.paths, landing, mapping=args.mapping, progress=not args.quiet)
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
    for result in summary.files:
        if result.rejected_file is not None:
            print(f"        rejects of {result.source}: {result.rejected_file}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The read API over the published snapshot (profiles, audiences) until Ctrl-C."""
    from pulse.serve import serve

    exports = Path(args.exports).expanduser().resolve() if args.exports else paths_from_env().exports
    return serve(host=args.host, port=args.port, exports_dir=exports)


def cmd_collect(args: argparse.Namespace) -> int:
    """The HTTP collector: events acknowledged once on disk, rolled into the landing zone (docs/collection.md)."""
    from pulse.collector.app import CollectorSettings
    from pulse.collector.server import collect

    paths = _paths()
    settings = CollectorSettings(
        spool=paths.collector / "spool",
        events_landing=paths.events_landing,
        dead_letter=paths.collector / "dead-letter",
        site=Path(args.site).resolve() if args.site else None,
        ip_mode=args.ip,
        secure_cookie=args.secure_cookie,
        roll_seconds=args.roll_seconds,
        min_free_bytes=int(args.min_free_mb * (1 << 20)),
    )
    return collect(settings, host=args.host, port=args.port)


def cmd_live(args: argparse.Namespace) -> int:
    """The collector serving the demo shop, beside the Dagster UI whose landing sensor ingests what it lands."""
    paths = _paths()
    collector = subprocess.Popen(
        [_venv_bin("pulse"), "collect", "--host", args.host, "--port", str(args.port), "--roll-seconds", "10"]
    )
    print(
        f"demo shop (tracked): http://{args.host}:{args.port}/   Dagster UI: http://{args.host}:{args.ui_port}/\n"
        f"events land in {paths.events_landing}/<today>/collector-*.jsonl every 10 s; the landing sensor (every"
        " 60 s) ingests them and rebuilds sessions and profiles. Ctrl-C stops both.",
        flush=True,
    )
    try:
        return subprocess.call(_dagster_dev(args.host, args.ui_port), cwd=REPO_ROOT)
    except KeyboardInterrupt:
        return 0
    finally:
        collector.terminate()
        collector.wait(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--users", type=int, default=5000)
        p.add_argument("--days", type=int, default=60)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--start", type=date.fromisoformat, default=date(2026, 9, 1), help="first day (UTC)")

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
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("summary", help="print what the warehouse holds")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("run", help="demo data (if the landing zone is empty), materialize, summary")
    demo_args(p)
    p.set_defaults(func=cmd_run)

    from pulse.importers import FORMATS

    p = sub.add_parser("import", help="convert Snowplow / Segment / OTTO / mapped files into landing files")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--mapping", default=None, help="YAML mapping for --format mapped (a path or a shipped name)")
    p.add_argument("--landing", default=None, help="landing zone root (default: PULSE_LANDING)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("mlflow", help="the MLflow UI over the tracking store in PULSE_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_mlflow)

    p = sub.add_parser("ui", help="the Dagster UI with every asset loaded")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("serve", help="the read API (profiles, audiences) over the published snapshot")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--exports", default=None, help="published snapshots root (default: PULSE_EXPORTS)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("collect", help="the HTTP event collector and tracker (first-party collection)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--site", default=None, help="static pages to serve at / (default: the demo shop)")
    p.add_argument("--ip", choices=("truncate", "drop", "full"), default="truncate", help="client IP in events")
    p.add_argument("--secure-cookie", action="store_true", help="mark the id cookie Secure (behind TLS)")
    p.add_argument("--roll-seconds", type=float, default=60.0, help="publish the log segment this often")
    p.add_argument("--min-free-mb", type=float, default=256.0, help="answer 503 below this much free disk")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("live", help="collector + demo shop + Dagster UI: click around, watch events arrive")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="the collector and demo shop")
    p.add_argument("--ui-port", type=int, default=3000)
    p.set_defaults(func=cmd_live)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster marks BackfillPolicy as beta on every definitions load; say it once in the docs instead.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
