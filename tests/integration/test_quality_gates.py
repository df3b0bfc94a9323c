"""Great Expectations gates in Dagster: a blocking failure stops the assets downstream, a drift warning
does not. One demo (10 days, with a volume spike on one day) is materialized once for the module."""

import gzip
import json
import os
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.definitions import build_definitions
from orchestration.materialize import RANGE_END_TAG, RANGE_START_TAG, materialize_range
from orchestration.quality.checks import gx_model_checks
from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import landed_days
from pulse.ui.docs_server import docs_address

pytestmark = pytest.mark.integration

START = date(2026, 9, 1)
DAYS = 10
SPIKE_DAY = START + timedelta(days=8)  # the 9th day: 7 days of history before it
SPIKE_EVENTS = 3000  # the demo's 60 users send a few hundred events a day
MODEL_ASSETS = {"stg_events", "int_events_sessionized", "fct_sessions", "fct_user_daily", "dim_users"}


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def _event(at: datetime, anonymous_id: str) -> str:
    stamp = at.isoformat(timespec="milliseconds") + "Z"
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "click",
            "event_time": stamp,
            "received_at": stamp,
            "anonymous_id": anonymous_id,
            "session_id": "spike-session",
            "element": "button#buy",
        }
    )


def _write_spike(landing: Path) -> None:
    """A bot clicking every 5 s for four hours on SPIKE_DAY: valid events, many more than usual."""
    first = datetime.combine(SPIKE_DAY, datetime.min.time()) + timedelta(hours=9)
    lines = [_event(first + timedelta(seconds=5 * i), "spike-bot") for i in range(SPIKE_EVENTS)]
    _write_lines(landing / "events" / SPIKE_DAY.isoformat() / "spike.jsonl.gz", lines)


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
    }


def _started(result, step_key: str) -> bool:
    return any(e.step_key == step_key and e.event_type_value == "STEP_START" for e in result.all_events)


@pytest.fixture(scope="module")
def spiked(tmp_path_factory, isolated_pulse_home):
    with isolated_pulse_home(tmp_path_factory.mktemp("pulse") / "home") as paths:
        generate_demo(paths.landing, users=60, days=DAYS, seed=3, start=START, progress=False)
        _write_spike(paths.landing)
        days = landed_days(paths.events_landing)
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range(days[0], days[-1], instance=instance, quiet=True)
        yield paths, days, instance, result


def test_the_drift_check_warns_on_the_spike_day_and_blocks_nothing(spiked) -> None:
    _, _, _, result = spiked
    assert result.success
    assert _materialized(result) >= MODEL_ASSETS
    drift = _evaluations(result)["gx_fct_user_daily_drift"]
    assert not drift.passed
    assert drift.severity == dg.AssetCheckSeverity.WARN
    assert SPIKE_DAY.isoformat() in drift.metadata["failures"].value
    assert "events_z" in drift.metadata["failures"].value
    assert drift.metadata["rows_evaluated"].value >= 2  # the spike day and the day after have 7 days of history


def test_the_gates_pass_on_clean_data_with_readable_metadata_and_data_docs(spiked) -> None:
    paths, _, _, result = spiked
    docs = docs_address(os.environ).url  # http://127.0.0.1:3001 unless PULSE_DOCS_URL says otherwise
    evaluations = _evaluations(result)
    gates = {"gx_raw_events", "gx_stg_events", "gx_fct_sessions", "gx_fct_user_daily", "gx_dim_users"}
    assert gates <= set(evaluations)
    for name in gates:
        e = evaluations[name]
        assert e.passed, (name, e.metadata.get("failures"))
        assert e.severity == dg.AssetCheckSeverity.ERROR
        assert e.metadata["failed_expectations"].value == 0
        # an http:// link to the docs server `pulse ui` starts (PULSE_DOCS_URL): a browser does not open a
        # file:// link from the Dagster UI
        page = e.metadata["data_docs"].value
        file = Path(e.metadata["data_docs_file"].value)
        assert file.is_file() and file.is_relative_to(paths.home / "gx_data_docs")
        assert page == f"{docs}/gx/{file.relative_to(paths.home / 'gx_data_docs').as_posix()}"
        assert page.startswith(f"{docs}/gx/validations/{name.removeprefix('gx_')}/")
    assert evaluations["gx_stg_events"].metadata["duplicate_event_ids"].value == 0
    assert evaluations["gx_fct_sessions"].metadata["negative_durations"].value == 0
    assert evaluations["gx_fct_sessions"].metadata["unsessionized_events"].value == 0
    assert evaluations["gx_fct_sessions"].metadata["data_docs_index"].value == f"{docs}/"


def test_the_dbt_step_generates_the_dbt_docs_and_links_each_model(spiked) -> None:
    paths, _, _, result = spiked
    site = paths.home / "dbt_docs" / "site"
    assert sorted(p.name for p in site.iterdir()) == ["catalog.json", "index.html", "manifest.json", "stamp"]
    catalog = json.loads((site / "catalog.json").read_text())
    columns = catalog["nodes"]["model.pulse.fct_sessions"]["columns"]
    assert {"session_key", "user_key", "duration_seconds"} <= {c.lower() for c in columns}
    manifest = json.loads((site / "manifest.json").read_text())
    assert manifest["nodes"]["model.pulse.fct_sessions"].get("compiled_code")  # the build's compiled manifest
    links = {
        m.asset_key.to_user_string(): m.metadata.get("dbt_docs")
        for e in result.get_asset_materialization_events()
        for m in [e.event_specific_data.materialization]
    }
    docs = docs_address(os.environ).url
    assert links["fct_sessions"].value == f"{docs}/dbt/#!/model/model.pulse.fct_sessions"
    assert links["raw_events"] is None  # not a dbt model


@dg.asset(deps=["fct_sessions", "fct_user_daily"], group_name="test")
def session_features() -> dg.MaterializeResult:
    """Stands for the ML / activation assets that will read the marts in later steps."""
    return dg.MaterializeResult(metadata={"ok": True})


def _consumer_job_result(instance: dg.DagsterInstance, since: date | None = None):
    """Only the GX model checks and a downstream consumer: the marts are already in the warehouse."""
    defs = build_definitions()
    consumers = dg.Definitions(
        assets=[*defs.assets, session_features],
        asset_checks=defs.asset_checks,
        resources=defs.resources,
        jobs=[
            dg.define_asset_job(
                "consumers",
                selection=dg.AssetSelection.assets(session_features) | dg.AssetSelection.checks(gx_model_checks),
            )
        ],
    )
    # The range tags tell the checks which landing days the run covers (as materialize_range sets them).
    tags = {RANGE_START_TAG: since.isoformat(), RANGE_END_TAG: since.isoformat()} if since else None
    return consumers.resolve_job_def("consumers").execute_in_process(instance=instance, raise_on_error=False, tags=tags)


def test_a_failing_blocking_gate_stops_the_downstream_assets(spiked) -> None:
    paths, days, instance, _ = spiked
    # Control: with clean marts the consumer runs, and the failing drift warning (the spike) does not stop it.
    clean = _consumer_job_result(instance, since=days[0])
    assert clean.success
    assert "session_features" in _materialized(clean)
    drift = _evaluations(clean)["gx_fct_user_daily_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN

    # A model bug: one session written twice, with a negative duration.
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute(
            """insert into fct_sessions
               select * replace (-60 as duration_seconds) from fct_sessions order by session_key limit 1"""
        )
    broken = _consumer_job_result(instance)
    assert not broken.success
    assert "session_features" not in _materialized(broken)
    assert broken.get_failed_step_keys() == {"gx_model_checks"}
    assert not _started(broken, "session_features")  # Dagster did not even start its step
    gate = _evaluations(broken)["gx_fct_sessions"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    failures = gate.metadata["failures"].value
    assert "duplicate_session_keys" in failures and "negative_durations" in failures
    assert gate.metadata["negative_durations"].value == 1
    assert "negative_durations: expected <= 0, observed 1" in gate.description
    # The other gates still report (all results are yielded before the step fails).
    assert _evaluations(broken)["gx_stg_events"].passed


def test_a_broken_landing_day_stops_the_dbt_models(spiked) -> None:
    paths, days, instance, _ = spiked
    day = days[-1] + timedelta(days=1)
    good = [_event(datetime.combine(day, datetime.min.time()) + timedelta(minutes=i), "late-user") for i in range(70)]
    bad = ["{not json"] * 20 + ['{"event_id": "x", "event_type": "click"}'] * 10  # 30 % of the lines
    _write_lines(paths.events_landing / day.isoformat() / "broken.jsonl.gz", good + bad)

    result = materialize_range(day, day, instance=instance, quiet=True)
    assert not result.success
    materialized = _materialized(result)
    assert "raw_events" in materialized
    assert not materialized & MODEL_ASSETS  # the dbt step did not run
    assert "gx_raw_events_checks" in result.get_failed_step_keys()
    assert not _started(result, "pulse_dbt_models")
    gate = _evaluations(result)["gx_raw_events"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert day.isoformat() in gate.metadata["failures"].value
    assert "quarantined_share" in gate.description and "0.3" in gate.description
