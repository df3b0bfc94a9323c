"""The dbt step's config (incremental, reprocess, full refresh) and the batch report's text."""

from __future__ import annotations

import json
from datetime import date

import pytest

from orchestration.materialize import run_config
from orchestration.transform.assets import DbtBuildConfig
from pulse.batches import BatchReport


def test_the_dbt_step_builds_incrementally_by_default() -> None:
    assert DbtBuildConfig().dbt_args() == ["build", "--exclude-resource-type", "unit_test"]


def test_reprocess_from_becomes_a_dbt_var() -> None:
    args = DbtBuildConfig(reprocess_from="2026-09-14").dbt_args()
    assert args[-2] == "--vars" and json.loads(args[-1]) == {"reprocess_from": "2026-09-14"}
    assert "--full-refresh" in DbtBuildConfig(full_refresh=True).dbt_args()


def test_a_bad_reprocess_date_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="2026-13-01"):
        DbtBuildConfig(reprocess_from="2026-13-01")


def test_run_config_passes_the_dbt_config_to_the_dbt_step() -> None:
    config = run_config(only_changed_days=True, dbt_config={"reprocess_from": "2026-09-14"})
    assert config["ops"] == {
        "raw_events": {"config": {"only_changed_days": True}},
        "pulse_dbt_models": {"config": {"reprocess_from": "2026-09-14"}},
    }


def test_the_report_names_the_command_that_folds_late_events_in() -> None:
    report = BatchReport(False, date(2026, 9, 20), date(2026, 9, 20), 1200, 85, 3, date(2026, 9, 14))
    text = report.describe()
    assert "1,200 raw rows (2026-09-20..2026-09-20)" in text and "85 users recomputed" in text
    assert "pulse reprocess --from 2026-09-14" in text
    quiet = BatchReport(True, date(2026, 9, 1), date(2026, 9, 20), 5000, 0, 0, None).describe()
    assert "full build" in quiet and "reprocess" not in quiet
