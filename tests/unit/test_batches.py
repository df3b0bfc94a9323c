"""The dbt step's config (incremental, full refresh, the dbt vars of the settings door) and the batch report's text."""

from __future__ import annotations

import json
from datetime import date

import pytest

from orchestration.materialize import run_config
from orchestration.transform.assets import DbtBuildConfig
from pulse.core.settings import SettingsError, load_settings
from pulse.ingest.batches import BatchReport


def test_the_dbt_step_builds_incrementally_by_default() -> None:
    assert DbtBuildConfig().dbt_args() == ["build", "--exclude-resource-type", "unit_test"]
    assert "--full-refresh" in DbtBuildConfig(full_refresh=True).dbt_args()


def test_every_dbt_var_and_the_log_folder_reach_dbt(tmp_path) -> None:
    settings = load_settings({"PULSE_HOME": str(tmp_path)}, {"reprocess_from": "2026-09-14"})
    args = DbtBuildConfig().dbt_args(settings.dbt_vars(), log_path=settings.paths.dbt_logs)
    vars_at = args.index("--vars")
    assert json.loads(args[vars_at + 1]) == settings.dbt_vars()
    assert json.loads(args[vars_at + 1])["reprocess_from"] == "2026-09-14"
    assert args[args.index("--log-path") + 1] == str(tmp_path / "dbt" / "logs")


def test_a_bad_reprocess_date_is_refused_naming_it(tmp_path) -> None:
    with pytest.raises(SettingsError, match="--var reprocess_from='2026-13-01': no such day"):
        load_settings({"PULSE_HOME": str(tmp_path)}, {"reprocess_from": "2026-13-01"})


def test_run_config_passes_the_dbt_config_and_the_run_s_settings() -> None:
    config = run_config(
        only_changed_days=True, dbt_config={"full_refresh": True}, overrides={"reprocess_from": "2026-09-14"}
    )
    assert config["ops"] == {
        "raw_events": {"config": {"only_changed_days": True}},
        "pulse_dbt_models": {"config": {"full_refresh": True}},
    }
    assert config["resources"] == {"settings": {"config": {"overrides": {"reprocess_from": "2026-09-14"}}}}


def test_the_report_names_the_command_that_folds_late_events_in() -> None:
    report = BatchReport(False, date(2026, 9, 20), date(2026, 9, 20), 1200, 85, 3, date(2026, 9, 14))
    text = report.describe()
    assert "1,200 raw rows (2026-09-20..2026-09-20)" in text and "85 users recomputed" in text
    assert "pulse reprocess --from 2026-09-14" in text
    quiet = BatchReport(True, date(2026, 9, 1), date(2026, 9, 20), 5000, 0, 0, None).describe()
    assert "full build" in quiet and "reprocess" not in quiet
