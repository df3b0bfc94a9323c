"""Resources shared by the asset areas. Settings (paths included) are resolved through the settings door
(pulse.core.settings) when a run starts, never at import time: defaults < $PULSE_HOME/settings.toml < PULSE_*
environment < the run's overrides (the `settings` resource's run config, what `pulse materialize --var` sets)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from pydantic import Field

from orchestration.transform.project import pulse_dbt_project
from pulse.core.file_access import apply_umask
from pulse.core.settings import PulsePaths, Settings, SettingsError, home_settings, load_settings, process_environ
from pulse.core.warehouse import Warehouse, connect_duckdb, open_warehouse


class PulseSettings(dg.ConfigurableResource):
    """The settings door in a run. ``overrides`` are the run's own values (name -> value, as text like
    ``pulse materialize --var name=value`` or as a YAML number, list or true/false); everything else comes from
    settings.toml and the environment."""

    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-run settings, name -> value (e.g. purchase_horizon_days: 14, intent_test_as_of: "
        "'2026-10-01'); `pulse settings` lists the names.",
    )

    def resolve(self) -> Settings:
        """Every setting's effective value for this run; a bad one fails the step, naming it and its value."""
        try:
            return load_settings(overrides=self.overrides)
        except SettingsError as exc:
            raise dg.Failure(description=f"settings: {exc}") from None


class PulseStorage(dg.ConfigurableResource):
    """The warehouse and the landing zone. Empty fields fall back to the settings door (settings.toml, PULSE_*
    variables, PULSE_HOME); a field set here wins, as the same variable would."""

    home: str | None = None
    warehouse: str | None = None
    landing: str | None = None

    def settings(self) -> Settings:
        """The home's settings with this resource's fields: the paths, and what dbt's profile reads
        (:func:`dbt_for_run`)."""
        overrides = {
            var: value
            for var, value in (
                ("PULSE_HOME", self.home),
                ("PULSE_WAREHOUSE", self.warehouse),
                ("PULSE_LANDING", self.landing),
            )
            if value
        }
        try:
            return home_settings(process_environ() | overrides)
        except SettingsError as exc:
            raise dg.Failure(description=f"settings: {exc}") from None

    def paths(self) -> PulsePaths:
        settings = self.settings()
        # owner-only files also in a run a Dagster started by hand launched (pulse's own commands set it already)
        apply_umask(settings.file_access)
        return settings.paths.ensure()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The DuckDB file: ingestion's raw tables on every engine, and the models with PULSE_ENGINE=duckdb."""
        con = connect_duckdb(self.paths(), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def open_warehouse(self, read_only: bool = False) -> Iterator[Warehouse]:
        """The models' warehouse on PULSE_ENGINE (pulse.core.warehouse): what the Python steps after dbt use."""
        with open_warehouse(self.paths(), read_only=read_only) as warehouse:
            yield warehouse


# dbt, killed by the kernel when the process that started it dies (pulse/core/processes.py): a run killed while dbt
# builds leaves no dbt writing the warehouse after it. A console script of this package (pyproject.toml).
DBT_EXECUTABLE = "pulse-dbt"


def dbt_resource() -> DbtCliResource:
    # dbt is called from the interpreter's own environment; it need not be on PATH.
    return DbtCliResource(
        project_dir=pulse_dbt_project,
        dbt_executable=str(Path(sys.executable).parent / DBT_EXECUTABLE),
    )


def dbt_for_run(dbt: DbtCliResource, settings: Settings) -> DbtCliResource:
    """``dbt`` with the settings dbt's profile reads (the warehouse, the engine, threads, memory, Spark's) as
    the ``pulse-dbt`` wrapper's leading ``--env NAME=VALUE`` arguments: dagster-dbt starts dbt with a copy of
    this process's environment and takes no other, and nothing in pulse writes that environment; the wrapper
    sets them in dbt's own (pulse/core/processes.py)."""
    return DbtCliResource(
        project_dir=dbt.project_dir,
        dbt_executable=dbt.dbt_executable,
        global_config_flags=[*dbt_env_arguments(settings), *dbt.global_config_flags],
        profiles_dir=dbt.profiles_dir,
        profile=dbt.profile,
        target=dbt.target,
    )


def dbt_env_arguments(settings: Settings) -> list[str]:
    """``--env NAME=VALUE`` for every variable dbt's profile and macros read (an empty value: unset)."""
    return [arg for name, value in settings.dbt_profile_env().items() for arg in ("--env", f"{name}={value}")]
