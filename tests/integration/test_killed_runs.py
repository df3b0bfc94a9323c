"""Killed runs recover by themselves (issue 20, point 2). One small demo shop, one chain of `pulse materialize`
processes on it, each killed with SIGKILL at another point (pulse/core/kill_points.py): before ingestion commits, after
it committed (frozen first, while two other runs wait for it and are stopped with Ctrl-C and SIGTERM), while dbt
builds, while publishing. Then one plain `pulse materialize` must converge to what a clean run builds from the same
landing files (in a home of its own, started at the beginning, beside the chain): tables, exports and snapshot;
and the next says "nothing new". No manual step in between: every run after a kill is just `pulse materialize`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pyarrow.parquet as pq
import pytest

from pulse.core.kill_points import (
    DBT_RUNNING,
    INGEST_AFTER_COMMIT,
    INGEST_BEFORE_COMMIT,
    KILL_AT_VARIABLE,
    PUBLISH_SWITCHED,
)
from pulse.demo.generator import generate_demo

pytestmark = pytest.mark.integration

PULSE = str(Path(sys.executable).parent / "pulse")
RUN_TIMEOUT = 900  # a whole run, on a loaded machine
# Columns that say when or by which run something was written: they differ between any two runs.
RUN_COLUMNS = {
    "ingested_at",
    "quarantined_at",
    "retracted_at",
    "updated_at",
    "model_trained_at",
    "decided_at",
    "scored_at",
    "run_id",
    "file_mtime_ns",
    # "from champion version 1, trained <time>; latest training: ...": when and by which run a model was trained
    "segment_status_reason",
    "intent_status_reason",
}
# Bookkeeping of the runs themselves: the batch of the last dbt run, the models' decision history.
RUN_TABLES = {"int_batch", "int_batch_bounds", "int_batch_users", "model_decisions", "model_status"}


@dataclass
class Step:
    name: str
    returncode: int
    out: str
    err: str
    seconds: float
    notes: dict = field(default_factory=dict)


def pulse_env(home: Path, landing: Path, kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    env |= {"PULSE_HOME": str(home), "PULSE_LANDING": str(landing)}
    if kill_at:
        env[KILL_AT_VARIABLE] = kill_at
    return env


class Pulse:
    """A `pulse materialize --quiet` process whose output goes to files (read while it runs)."""

    def __init__(self, home: Path, landing: Path, name: str, kill_at: str | None = None) -> None:
        self.name = name
        logs = home.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self.started = time.monotonic()
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.process = subprocess.Popen(
                [PULSE, "materialize", "--quiet"], env=pulse_env(home, landing, kill_at), stdout=out, stderr=err
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.out.count(text) < count:
            assert self.process.poll() is None, f"{self.name} exited ({self.process.returncode}): {self.step()}"
            assert time.monotonic() < deadline, f"{self.name}: no {text!r} after {timeout} s: {self.out[-2000:]}"
            time.sleep(0.2)

    def wait_until_stopped(self, timeout: float = RUN_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while psutil.Process(self.process.pid).status() != psutil.STATUS_STOPPED:
            assert self.process.poll() is None, f"{self.name} exited: {self.step()}"
            assert time.monotonic() < deadline, f"{self.name} did not reach its stop point"
            time.sleep(0.2)

    def finish(self, timeout: float = RUN_TIMEOUT) -> Step:
        self.process.wait(timeout=timeout)
        return self.step()

    def step(self) -> Step:
        elapsed = time.monotonic() - self.started
        step = Step(self.name, self.process.returncode, self.out, self.err_path.read_text(), elapsed)
        step.notes["pid"] = self.process.pid
        return step


def dbt_processes_of(home: Path) -> list[str]:
    """dbt processes of this home still running (dbt gets its log path, under the home, on its command line)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(home / "dbt") in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


def read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(warehouse), read_only=True)


@dataclass
class Chain:
    reference: Path
    killed: Path
    steps: dict[str, Step]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("killed_runs")
    landing = root / "landing"
    generate_demo(landing, users=80, days=3, seed=23, start=date(2026, 9, 1), progress=False)
    reference_home, home = root / "reference" / "home", root / "killed" / "home"
    print(f"test_killed_runs: homes {reference_home} and {home}")
    # The clean run, in a home of its own, beside the chain (same landing files).
    reference = Pulse(reference_home, landing, "reference")
    steps: dict[str, Step] = {}

    # 1. Killed before ingestion commits: nothing of it is in the warehouse.
    steps["before_commit"] = Pulse(home, landing, "before_commit", INGEST_BEFORE_COMMIT).finish()
    with read_only(home / "warehouse.duckdb") as con:  # the raw tables exist (created before the transaction)
        steps["before_commit"].notes["raw_rows"] = con.execute("select count(*) from raw.events").fetchall()[0][0]

    # 2. Frozen right after ingestion committed: alive, holding the run's pool slot. Two more runs wait for it,
    # saying who and since when, and stop on Ctrl-C and on SIGTERM. Then it is killed.
    frozen = Pulse(home, landing, "after_commit", INGEST_AFTER_COMMIT + ":STOP")
    frozen.wait_until_stopped()
    waiting = {
        name: (Pulse(home, landing, name), stop)
        for name, stop in (("ctrl_c", signal.SIGINT), ("sigterm", signal.SIGTERM))
    }
    for name, (process, stop) in waiting.items():
        process.wait_for_output("materialize: waiting (", count=2)  # every few seconds
        process.process.send_signal(stop)
        signaled = time.monotonic()
        steps[name] = process.finish(timeout=60)
        steps[name].notes["exit_seconds"] = time.monotonic() - signaled
    instance = dg.DagsterInstance.from_config(str(home / "dagster_home"))
    slots = instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
    steps["after_commit_frozen"] = frozen.step()
    steps["after_commit_frozen"].notes["slot_holders"] = [slot.run_id for slot in slots]
    frozen.process.send_signal(signal.SIGKILL)
    steps["after_commit"] = frozen.finish()
    with read_only(home / "warehouse.duckdb") as con:
        steps["after_commit"].notes["raw_rows"] = con.execute("select count(*) from raw.events").fetchall()[0][0]

    # 3. Killed while dbt builds: its dbt must not go on writing.
    during_dbt = Pulse(home, landing, "during_dbt", DBT_RUNNING)
    steps["during_dbt"] = during_dbt.finish()
    deadline = time.monotonic() + 10
    while (survivors := dbt_processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    steps["during_dbt"].notes["survivors"] = survivors

    # 4. Killed while publishing: current.json switched, the fixed-path files not written.
    steps["during_publish"] = Pulse(home, landing, "during_publish", PUBLISH_SWITCHED).finish()

    # 5. The next run, then one more.
    steps["recovery"] = Pulse(home, landing, "recovery").finish()
    steps["again"] = Pulse(home, landing, "again").finish()
    steps["again"].notes["runs"] = [(r.run_id, r.status) for r in instance.get_runs()]
    steps["again"].notes["slot_holders"] = [
        slot.run_id for slot in instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
    ]
    instance.dispose()
    steps["reference"] = reference.finish()
    return Chain(reference_home, home, steps)


def test_every_kill_killed_the_run_at_its_point(chain: Chain) -> None:
    for name in ("before_commit", "after_commit", "during_dbt", "during_publish"):
        assert chain.steps[name].returncode == -signal.SIGKILL, (name, chain.steps[name].err[-3000:])
    assert chain.steps["reference"].returncode == 0, chain.steps["reference"].err[-3000:]
    assert chain.steps["before_commit"].notes["raw_rows"] == 0  # the transaction never committed
    assert chain.steps["after_commit"].notes["raw_rows"] > 0


def test_a_run_waiting_for_another_says_who_since_when_and_stops_on_ctrl_c_and_sigterm(chain: Chain) -> None:
    frozen = chain.steps["after_commit_frozen"]
    [holder] = frozen.notes["slot_holders"]  # the frozen run holds the warehouse pool's slot
    for name in ("ctrl_c", "sigterm"):
        step = chain.steps[name]
        lines = [line for line in step.out.splitlines() if line.startswith("materialize: waiting (")]
        assert len(lines) >= 2, step.out
        assert f"run {holder[:8]} (all_assets)" in lines[0] and "started 20" in lines[0] and " ago" in lines[0]
        assert "Ctrl-C stops waiting" in lines[0]
        assert step.returncode == 130 and step.notes["exit_seconds"] < 10, (step.returncode, step.notes)
        assert "materialize: interrupted (Ctrl-C or SIGTERM)" in step.err


def test_the_next_run_marks_the_dead_run_failed_frees_its_slot_and_does_not_say_nothing_new(chain: Chain) -> None:
    gone = "its process is gone (killed, or the machine restarted): marked failed, its pool slots freed"
    for killed, next_run in (
        ("before_commit", "after_commit"),
        ("after_commit", "during_dbt"),
        ("during_dbt", "during_publish"),
        ("during_publish", "recovery"),
    ):
        out = chain.steps[next_run].out
        assert f"pid {chain.steps[killed].notes['pid']} on " in out and gone in out, out
        assert "nothing new" not in out
    recovery = chain.steps["recovery"].out
    assert "not in the published snapshot yet" in recovery, recovery
    statuses = [status for _, status in chain.steps["again"].notes["runs"]]
    assert dg.DagsterRunStatus.STARTED not in statuses and chain.steps["again"].notes["slot_holders"] == []
    # the four killed runs failed, the recovery succeeded; the waiting ones never started a run
    assert statuses == [dg.DagsterRunStatus.SUCCESS] + [dg.DagsterRunStatus.FAILURE] * 4


def test_no_dbt_outlives_the_run_killed_while_dbt_builds(chain: Chain) -> None:
    assert chain.steps["during_dbt"].notes["survivors"] == []


def test_the_next_run_converges_to_a_clean_runs_tables(chain: Chain) -> None:
    assert chain.steps["recovery"].returncode == 0, chain.steps["recovery"].err[-3000:]
    con = duckdb.connect()
    con.execute(f"attach '{chain.reference / 'warehouse.duckdb'}' as clean (read_only)")
    con.execute(f"attach '{chain.killed / 'warehouse.duckdb'}' as killed (read_only)")
    relations = con.execute(
        """select schema_name, table_name from duckdb_tables() where database_name = 'clean'
        union all select schema_name, view_name from duckdb_views() where database_name = 'clean' and not internal
        order by all"""
    ).fetchall()
    compared = []
    for schema, table in relations:
        if schema == "pulse_state" or table in RUN_TABLES:
            continue
        columns = [
            f"round({name}, 9)" if kind in ("DOUBLE", "FLOAT") else name
            for name, kind in con.execute(
                f"select column_name, column_type from (describe clean.{schema}.{table})"
            ).fetchall()
            if name not in RUN_COLUMNS
        ]
        select = ", ".join(columns)
        clean, killed = f"select {select} from clean.{schema}.{table}", f"select {select} from killed.{schema}.{table}"
        rows = con.execute(f"select count(*) from clean.{schema}.{table}").fetchall()[0][0]
        only_clean, only_killed = f"({clean} except all {killed})", f"({killed} except all {clean})"
        differ = con.execute(
            f"select (select count(*) from {only_clean}), (select count(*) from {only_killed})"
        ).fetchall()[0]
        compared.append((f"{schema}.{table}", rows, differ))
    assert [c for c in compared if c[2] != (0, 0)] == [], compared
    names = {name for name, _, _ in compared}
    assert {"raw.events", "main.stg_events", "main.fct_sessions", "main.user_profiles", "main.user_segments"} <= names
    assert dict((name, rows) for name, rows, _ in compared)["main.fct_sessions"] > 0
    # duplicates: removed in both, none left in stg_events
    dup = con.execute("select count(*) - count(distinct event_id) from killed.main.stg_events").fetchall()[0][0]
    assert dup == 0
    status = "select model, status, model_version from {}.main.model_status order by model"
    assert con.execute(status.format("clean")).fetchall() == con.execute(status.format("killed")).fetchall()


def published(exports: Path) -> dict[str, object]:
    """The published state: the manifest without its id, time and decision history, and every file of the
    current snapshot and at the fixed paths, as rows (profiles without their write time)."""
    pointer = json.loads((exports / "current.json").read_text())
    snapshot = exports / pointer["path"]
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert json.loads((exports / "manifest.json").read_text()) == manifest  # the fixed-path copy is this snapshot's
    for key in ("snapshot_id", "published_at"):
        manifest.pop(key)
    manifest["model_status"] = {m: (s["status"], s["model_version"]) for m, s in manifest["model_status"].items()}
    files: dict[str, object] = {}
    for path in sorted(snapshot.rglob("*")):
        name = str(path.relative_to(snapshot))
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            files[name] = table.drop_columns([c for c in table.column_names if c in RUN_COLUMNS]).to_pylist()
        elif path.suffix == ".csv":
            files[name] = path.read_text()
            assert (exports / name).read_text() == files[name], name  # the fixed-path file is the snapshot's
    return {"manifest": manifest, "files": files}


def test_the_next_run_converges_to_a_clean_runs_exports_and_snapshot(chain: Chain) -> None:
    clean, killed = published(chain.reference / "exports"), published(chain.killed / "exports")
    assert killed["manifest"] == clean["manifest"]
    assert killed["files"] == clean["files"]
    assert len(clean["files"]) >= 9  # profiles + 4 audiences x (Parquet, CSV)
    # the snapshot the killed publication switched to stays readable; the current one is the recovery's
    snapshots = sorted(p.name for p in (chain.killed / "exports" / "snapshots").iterdir())
    assert len(snapshots) == 2 and not any(name.startswith(".tmp") for name in snapshots), snapshots


def test_after_the_recovery_nothing_is_new(chain: Chain) -> None:
    again = chain.steps["again"]
    assert again.returncode == 0 and "materialize: nothing new" in again.out, again.out + again.err
