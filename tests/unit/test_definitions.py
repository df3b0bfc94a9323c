"""A snapshot of the Dagster graph: assets, checks, jobs and schedules. A change to the graph shows up
in review as a change to tests/snapshots/definitions.txt (regenerate with PULSE_UPDATE_SNAPSHOTS=1)."""

import os
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "definitions.txt"


def describe(definitions: dg.Definitions) -> str:
    graph = definitions.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        parts = "daily" if node.partitions_def else "-"
        deps = ",".join(sorted(p.to_user_string() for p in node.parent_keys))
        lines.append(f"asset {key.to_user_string()} group={node.group_name} partitions={parts} deps=[{deps}]")
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        lines.append(f"check {check.asset_key.to_user_string()}:{check.name}")
    for job in sorted(definitions.jobs or [], key=lambda j: j.name):
        lines.append(f"job {job.name}")
    for schedule in sorted(definitions.schedules or [], key=lambda s: s.name):
        lines.append(f"schedule {schedule.name} cron={schedule.cron_schedule} job={schedule.job_name}")
    return "\n".join(lines) + "\n"


def test_definitions_match_the_snapshot() -> None:
    current = describe(defs())
    if os.environ.get("PULSE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text()


def test_every_dbt_model_is_an_asset_downstream_of_raw_events() -> None:
    graph = defs().resolve_asset_graph()
    stg = graph.get(dg.AssetKey("stg_events"))
    assert dg.AssetKey("raw_events") in stg.parent_keys
    assert graph.get(dg.AssetKey("raw_events")).partitions_def is not None


def test_the_daily_schedule_targets_the_pipeline_job() -> None:
    schedule = defs().resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.job_name == "daily_pipeline"
