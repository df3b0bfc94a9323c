"""The daily partitions start at the first landing day (or PULSE_PARTITIONS_START), never at a fixed year, and are
built when the definitions load: a history from 1997 has partitions from 1997, an older history imported later
moves the start earlier on the next load (the newer partitions keep their keys), an empty landing zone starts
today."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import build_definitions, defs
from orchestration.partitions import landing_partitions_from_env, loaded_partitions_start
from orchestration.resources import PulseStorage
from pulse.ingest.landing import (
    PARTITIONS_START_VARIABLE,
    first_landing_day,
    partitions_start,
    pinned_partitions_start,
    split_days,
    today_utc,
)

TODAY = date(2026, 12, 7)
REPO = Path(__file__).resolve().parents[2]
STORAGE = {"storage": PulseStorage()}  # the sensor reads the settings door through it


def land(events: Path, day: date, name: str = "part.jsonl") -> None:
    folder = events / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("{}\n")


def environ(home: Path, **extra: str) -> dict[str, str]:
    return {"PULSE_HOME": str(home), **extra}


def test_the_first_landing_day_is_the_earliest_folder_with_an_event_file(tmp_path: Path) -> None:
    events = tmp_path / "events"
    assert first_landing_day(events) is None  # no landing zone
    events.mkdir()
    assert first_landing_day(events) is None  # empty
    (events / "1996-05-01").mkdir()  # a folder without files is no landing day
    (events / "1996-06-01").mkdir()
    (events / "1996-06-01" / "notes.txt").write_text("not events")  # nor one without event files
    (events / "not-a-day").mkdir()
    land(events, date(1998, 6, 30))
    land(events, date(1997, 1, 1), "orders.csv")
    assert first_landing_day(events) == date(1997, 1, 1)


def test_the_start_is_the_setting_else_the_first_landing_day_else_today(tmp_path: Path) -> None:
    events = tmp_path / "events"
    assert partitions_start({}, events, TODAY) == TODAY  # a fresh clone: only today (the collector's day)
    land(events, date(2026, 9, 1))
    assert partitions_start({}, events, TODAY) == date(2026, 9, 1)
    land(events, date(1997, 1, 1))  # an older history imported after a newer one
    assert partitions_start({}, events, TODAY) == date(1997, 1, 1)
    pinned = {PARTITIONS_START_VARIABLE: "2026-10-01"}
    assert partitions_start(pinned, events, TODAY) == date(2026, 10, 1)
    only_future = tmp_path / "future"
    land(only_future, date(2027, 1, 1))
    assert partitions_start({}, only_future, TODAY) == TODAY


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026/09/01"])
def test_an_invalid_pinned_start_names_the_variable_and_the_value(value: str) -> None:
    with pytest.raises(ValueError, match=rf"PULSE_PARTITIONS_START='{value}': .*expected a date YYYY-MM-DD"):
        pinned_partitions_start({PARTITIONS_START_VARIABLE: value})
    assert pinned_partitions_start({PARTITIONS_START_VARIABLE: " "}) is None


def test_days_outside_the_partitions_are_named_with_what_to_do() -> None:
    days = [date(1997, 1, 1), date(1997, 1, 2), date(2026, 9, 1), date(2026, 12, 7), date(2026, 12, 8)]
    split = split_days(days, date(2026, 9, 1), TODAY)
    assert (split.before, split.inside, split.after) == (days[:2], days[2:4], days[4:])
    before, after = split.messages(pinned=True)
    assert (
        before == "2 landing days (1997-01-01..1997-01-02) before PULSE_PARTITIONS_START=2026-09-01: not materialized"
    )
    assert after == "1 landing day (2026-12-08) after today (2026-12-07, UTC): not materialized until their day comes"
    assert split.messages(pinned=False, reload_hint=" until a reload")[0] == (
        "2 landing days (1997-01-01..1997-01-02) before the first daily partition (2026-09-01): not materialized"
        " until a reload"
    )


def partitions_of(definitions: dg.Definitions) -> dg.TimeWindowPartitionsDefinition:
    graph = definitions.resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("raw_events")).partitions_def
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    for job in ("daily_pipeline", "ingest_landing_day", "all_assets"):  # the jobs take the asset's partitions
        assert definitions.resolve_job_def(job).partitions_def == partitions
    return partitions


def test_the_definitions_partitions_start_at_the_first_landing_day_on_each_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    events = home / "landing" / "events"
    land(events, date(2026, 9, 1))
    land(events, date(2026, 9, 2))
    newer = partitions_of(build_definitions(environ(home)))
    assert newer.get_first_partition_key() == "2026-09-01"
    assert not newer.has_partition_key("2026-08-31")
    # A purchase log from the 1990s imported afterwards: the next load starts there, no partition before it,
    # and the keys already materialized are still partitions.
    land(events, date(1997, 1, 1))
    older = partitions_of(build_definitions(environ(home)))
    assert older.get_first_partition_key() == "1997-01-01"
    assert not older.has_partition_key("1996-12-31")
    assert older.has_partition_key("2026-09-01") and older.has_partition_key("2026-09-02")
    # The last partition is today (end_offset=1: the collector lands today's files)
    assert (
        older.get_last_partition_key()
        == dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1).get_last_partition_key()
    )
    # A pinned start wins over the landing zone.
    pinned = partitions_of(build_definitions(environ(home, **{PARTITIONS_START_VARIABLE: "2026-09-02"})))
    assert pinned.get_first_partition_key() == "2026-09-02"


def test_an_empty_landing_zone_has_only_todays_partition(tmp_path: Path) -> None:
    partitions = partitions_of(build_definitions(environ(tmp_path / "home")))
    assert partitions.get_partition_keys() == [partitions.get_last_partition_key()]


def test_the_workspace_loads_the_definitions_lazily_from_the_landing_zone(pulse_home) -> None:
    """What `pulse ui` (dagster dev over workspace.yaml) loads: the module's @dg.definitions function, called
    when the code location loads; nothing reads the landing zone at import."""
    from dagster._core.definitions.reconstruct import repository_def_from_target_def
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    [target] = loadable_targets_from_python_module("orchestration.definitions", working_directory=str(REPO))
    assert target.attribute == "defs"
    land(pulse_home.events_landing, date(1997, 1, 1))  # after the import: seen by the load
    repository = repository_def_from_target_def(target.target_definition)
    partitions = repository.get_job("daily_pipeline").partitions_def
    assert partitions.get_first_partition_key() == "1997-01-01"
    assert partitions_of(defs()).get_first_partition_key() == "1997-01-01"


def test_the_sensor_and_schedule_read_the_loaded_partitions(pulse_home) -> None:
    land(pulse_home.events_landing, date(2026, 9, 1))
    repository = build_definitions().get_repository_def()
    land(pulse_home.events_landing, date(2026, 8, 1))  # imported after the code location loaded
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), repository_def=repository)
    assert loaded_partitions_start(context) == date(2026, 9, 1)
    # Outside a code location (a test calling the sensor directly): what a fresh load would build.
    assert loaded_partitions_start(dg.build_sensor_context()) == date(2026, 8, 1)
    assert landing_partitions_from_env({"PULSE_HOME": str(pulse_home.home)}).get_first_partition_key() == "2026-08-01"


def test_the_sensor_names_landing_days_the_loaded_partitions_do_not_cover(pulse_home) -> None:
    from orchestration.automation.sensors import landing_files_sensor

    land(pulse_home.events_landing, date(2026, 9, 1))
    repository = build_definitions().get_repository_def()
    land(pulse_home.events_landing, date(1997, 1, 1))  # a history imported while `pulse ui` runs
    instance = dg.DagsterInstance.ephemeral()
    # a context with resources is closed after use (it holds the instance in Dagster's current state storage)
    with dg.build_sensor_context(instance=instance, repository_def=repository, resources=STORAGE) as context:
        result = landing_files_sensor(context)
    assert [r.partition_key for r in result] == ["2026-09-01"]  # not 1997-01-01: not a partition until a reload
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="raw_events", partition="2026-09-01"))
    with dg.build_sensor_context(instance=instance, repository_def=repository, resources=STORAGE) as context:
        skip = landing_files_sensor(context)
    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message == (
        "every landing day is ingested; 1 landing day (1997-01-01) before the first daily partition (2026-09-01): "
        "not materialized until the code location is reloaded (Deployment > Reload in the UI, or restart `pulse ui`)"
    )
    # After a reload (a fresh load of the definitions) the day is a partition and gets its run.
    reloaded = build_definitions().get_repository_def()
    with dg.build_sensor_context(instance=instance, repository_def=reloaded, resources=STORAGE) as context:
        result = landing_files_sensor(context)
    assert [r.partition_key for r in result] == ["1997-01-01"]


def test_after_the_demo_the_ui_shows_no_partition_before_its_first_landing_day(pulse_home, capsys) -> None:
    """`make run` writes the demo shop's landing days (then materializes them); `make ui` loads the workspace:
    its partitions start at the demo's first landing day, not years before it (2,472 "missing" partitions
    before the demo's days when they started on 2020-01-01)."""
    from dagster._core.definitions.reconstruct import repository_def_from_target_def
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    from pulse.cli import commands as cli
    from pulse.ingest.raw_events import landed_days

    assert cli.main(["demo", "--users", "20", "--days", "2"]) == 0
    first = landed_days(pulse_home.events_landing)[0]
    assert first == today_utc() - timedelta(days=2)  # the demo's default: its days end yesterday
    [target] = loadable_targets_from_python_module("orchestration.definitions", working_directory=str(REPO))
    partitions = repository_def_from_target_def(target.target_definition).get_job("all_assets").partitions_def
    keys = partitions.get_partition_keys()
    assert keys[0] == first.isoformat()
    assert len(keys) == (date.fromisoformat(keys[-1]) - first).days + 1  # every day from there to today, no more
