from pathlib import Path

import pytest

from pulse.core.settings import paths_from_env


def test_everything_defaults_under_pulse_home(tmp_path: Path) -> None:
    p = paths_from_env({"PULSE_HOME": str(tmp_path)})
    assert p.home == tmp_path
    assert p.landing == tmp_path / "landing"
    assert p.warehouse == tmp_path / "warehouse.duckdb"
    assert p.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert p.dagster_home == tmp_path / "dagster_home"
    assert p.exports == tmp_path / "exports"
    assert p.collector == tmp_path / "collector"
    assert p.events_landing == tmp_path / "landing" / "events"


def test_each_path_can_be_overridden_alone(tmp_path: Path) -> None:
    p = paths_from_env({"PULSE_HOME": str(tmp_path), "PULSE_WAREHOUSE": str(tmp_path / "elsewhere" / "w.duckdb")})
    assert p.warehouse == tmp_path / "elsewhere" / "w.duckdb"
    assert p.landing == tmp_path / "landing"


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = paths_from_env({})
    assert p.home == tmp_path / ".data"
    assert all(Path(v).is_absolute() for k, v in p.as_env().items() if k != "PULSE_ENGINE")


def test_the_engine_is_duckdb_or_spark(tmp_path: Path) -> None:
    assert paths_from_env({"PULSE_HOME": str(tmp_path)}).engine == "duckdb"
    assert paths_from_env({"PULSE_HOME": str(tmp_path), "PULSE_ENGINE": " Spark "}).engine == "spark"
    assert paths_from_env({"PULSE_HOME": str(tmp_path), "PULSE_ENGINE": "spark"}).as_env()["PULSE_ENGINE"] == "spark"
    with pytest.raises(ValueError, match="PULSE_ENGINE='snowflake': expected one of duckdb, spark"):
        paths_from_env({"PULSE_ENGINE": "snowflake"})


def test_profiles_yml_reads_the_same_variable_as_dagster() -> None:
    profiles = (Path(__file__).parents[2] / "dbt_project" / "profiles.yml").read_text()
    assert "env_var('PULSE_WAREHOUSE'" in profiles
    assert "env_var('PULSE_HOME'" in profiles


def test_the_dagster_resource_resolves_the_same_paths_and_hands_them_to_dbt(pulse_home, tmp_path: Path) -> None:
    """The storage resource's warehouse reaches dbt as an argument of the pulse-dbt wrapper, never through this
    process's environment (nothing in pulse writes it)."""
    import os

    from orchestration.resources import PulseStorage, dbt_for_run, dbt_resource

    assert PulseStorage().paths().warehouse == pulse_home.warehouse
    other = tmp_path / "other" / "w.duckdb"
    storage = PulseStorage(warehouse=str(other))
    assert storage.paths().warehouse == other
    flags = dbt_for_run(dbt_resource(), storage.settings()).global_config_flags
    assert flags[flags.index(f"PULSE_WAREHOUSE={other}") - 1] == "--env"  # what dbt's profile will read
    assert os.environ.get("PULSE_WAREHOUSE") != str(other)


def test_an_mlflow_server_replaces_the_sqlite_store(tmp_path: Path) -> None:
    from ml.tracking import tracking_uri

    local = paths_from_env({"PULSE_HOME": str(tmp_path)})
    assert local.mlflow_store == tmp_path / "mlflow.db" and "PULSE_MLFLOW_URI" not in local.as_env()
    assert tracking_uri(local.mlflow_store) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = paths_from_env({"PULSE_HOME": str(tmp_path), "PULSE_MLFLOW_URI": "http://mlflow.internal:5000"})
    assert server.mlflow_store == "http://mlflow.internal:5000" == tracking_uri(server.mlflow_store)
    assert server.mlflow_tracking_uri == "http://mlflow.internal:5000"
    assert server.as_env()["PULSE_MLFLOW_URI"] == "http://mlflow.internal:5000"
