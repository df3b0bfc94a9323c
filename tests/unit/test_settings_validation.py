"""Every setting is checked when it is read, and a bad value is an error naming the variable, the value and what
it accepts; the commands and the Dagster code location stop on it at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.core.settings import SettingsError, load_settings


def _load(tmp_path: Path, **environ: str):  # noqa: ANN202
    return load_settings({"PULSE_HOME": str(tmp_path), **environ})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PULSE_DOCS_URL", "https://docs:3001", "expected http://HOST:PORT"),
        ("PULSE_DOCS_URL", "http://docs:99999", "expected http://HOST:PORT"),
        ("PULSE_DBT_TARGET", "prod", "expected one of duckdb, spark"),
        ("PULSE_DBT_TARGET", "a b", "an output of dbt_project/profiles.yml"),
        ("PULSE_MLFLOW_URI", "mlflow.internal:5000", "like http://mlflow.internal:5000"),
        ("PULSE_SPARK_MASTER", "local[two]", "like local[2], local[*], spark://HOST:7077"),
        ("PULSE_EARLIEST_EVENT_TIME", "1997-13-01", "not a real date and time"),
        ("PULSE_EARLIEST_EVENT_TIME", "last year", "like 1997-01-01 or 1997-01-01T00:00:00Z"),
        ("PULSE_SEGMENTATION_FEATURES", "purchases;revenue", "column names, comma-separated"),
        ("PULSE_ENGINE", "postgres", "one of duckdb, spark"),
        ("PULSE_DUCKDB_MEMORY", "lots", "like 2GB or 512MB"),
        ("PULSE_SPARK_DRIVER_MEMORY", "2 gigs", "like 2g"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_it_accepts(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as error:
        _load(tmp_path, **{variable: value})
    assert f"{variable}={value!r}" in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PULSE_DOCS_URL", "http://[::1]:8123/"),
        ("PULSE_DBT_TARGET", "spark"),
        ("PULSE_MLFLOW_URI", "http://mlflow.internal:5000"),
        ("PULSE_MLFLOW_URI", "databricks"),
        ("PULSE_SPARK_MASTER", "local[*]"),
        ("PULSE_SPARK_MASTER", "spark://host:7077"),
        ("PULSE_EARLIEST_EVENT_TIME", "1997-01-01T00:00:00Z"),
        ("PULSE_EARLIEST_EVENT_TIME", "1997-01-01 12:30:00+02:00"),
        ("PULSE_SEGMENTATION_FEATURES", "purchases, revenue,avg_order_value"),
    ],
)
def test_good_values_pass(tmp_path: Path, variable: str, value: str) -> None:
    _load(tmp_path, **{variable: value})


def test_the_settings_file_is_checked_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('spark_master = "cluster"\n')
    with pytest.raises(SettingsError, match=r"settings.toml: spark_master = 'cluster': expected text like local\[2\]"):
        _load(tmp_path)


def test_the_code_location_does_not_load_with_a_bad_value(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions

    with pytest.raises(SettingsError, match="PULSE_PURCHASE_HORIZON_DAYS='soon': expected a whole number >= 1"):
        build_definitions({"PULSE_HOME": str(tmp_path), "PULSE_PURCHASE_HORIZON_DAYS": "soon"})


@pytest.mark.parametrize("command", [["materialize"], ["serve"], ["ui"], ["settings"]])
def test_the_commands_stop_at_start_on_a_bad_value(command: list[str], pulse_home, monkeypatch, capsys) -> None:
    """A run setting (not one of the home's paths) that a read API or a UI does not use itself still stops them:
    every value is checked at start."""
    from pulse.cli import commands as cli

    monkeypatch.setenv("PULSE_PURCHASE_HORIZON_DAYS", "soon")
    monkeypatch.setenv("PULSE_SPARK_MASTER", "somewhere")
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert "PULSE_SPARK_MASTER='somewhere'" in err and "local[2]" in err
    assert "PULSE_PURCHASE_HORIZON_DAYS='soon': expected a whole number >= 1" in err
