"""dbt sees the settings pulse sees, through the path a run takes (the transform step's DbtCliResource from
orchestration.resources.dbt_for_run, the pulse-dbt wrapper) and without anything written to this process's
environment: a warehouse set on the storage resource and a memory limit set only in settings.toml reach dbt's
profile, a dbt var reaches `var()`, and an unset optional setting falls back to profiles.yml's default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestration.resources import PulseStorage, dbt_for_run, dbt_resource
from pulse.core.settings import load_settings

pytestmark = pytest.mark.integration

PROBE = (
    "select '{{ target.name }}|{{ target.path }}|{{ env_var('PULSE_DUCKDB_MEMORY') }}|"
    "{{ var('purchase_horizon_days') }}|{{ env_var('PULSE_DBT_TARGET', 'unset') }}' as seen"
)


def test_a_non_default_setting_reaches_dbt(pulse_home, tmp_path: Path, monkeypatch) -> None:
    (pulse_home.home / "settings.toml").write_text('duckdb_memory = "1GB"\npurchase_horizon_days = 9\n')
    monkeypatch.setenv("PULSE_DBT_TARGET", "")  # empty: unset, the profile's own choice (the engine)
    environ_before = dict(os.environ)
    other = tmp_path / "elsewhere" / "w.duckdb"
    storage = PulseStorage(warehouse=str(other))
    assert storage.paths().warehouse == other  # as the transform step does first (its folder made)
    settings = load_settings()
    dbt = dbt_for_run(dbt_resource(), storage.settings())
    invocation = dbt.cli(
        [
            "compile",
            "--inline",
            PROBE,
            "--vars",
            settings.dbt_vars_json(),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        target_path=tmp_path / "target",
        raise_on_error=True,
    )
    compiled = [
        event.raw_event["data"]["compiled"]
        for event in invocation.stream_raw_events()
        if event.raw_event.get("info", {}).get("name") == "CompiledNode"
    ]
    assert invocation.is_successful()
    assert compiled, "dbt printed no compiled node"
    assert compiled[-1] == f"select 'duckdb|{other}|1GB|9|unset' as seen"
    assert dict(os.environ) == environ_before  # nothing was written to this process's environment
    assert json.loads(settings.dbt_vars_json())["purchase_horizon_days"] == 9
