"""Resources shared by the asset areas. Paths come from the environment when a run starts (see
pulse.settings), never at import time, and default to locations under PULSE_HOME."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from orchestration.transform.project import pulse_dbt_project
from pulse.settings import PulsePaths, export_to_environ, paths_from_env
from pulse.warehouse import Warehouse, connect_duckdb, open_warehouse


class PulseStorage(dg.ConfigurableResource):
    """The warehouse and the landing zone. Empty fields fall back to PULSE_* variables / PULSE_HOME."""

    home: str | None = None
    warehouse: str | None = None
    landing: str | None = None

    def paths(self) -> PulsePaths:
        overrides = {
            var: value
            for var, value in (
                ("PULSE_HOME", self.home),
                ("PULSE_WAREHOUSE", self.warehouse),
                ("PULSE_LANDING", self.landing),
            )
            if value
        }
        paths = paths_from_env({**os.environ, **overrides})
        # dbt (a child process) reads the same variables: hand it the resolved, absolute paths.
        export_to_environ(paths)
        return paths.ensure()

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
        """The models' warehouse on PULSE_ENGINE (pulse.warehouse): what the Python steps after dbt use."""
        with open_warehouse(self.paths(), read_only=read_only) as warehouse:
            yield warehouse


def dbt_resource() -> DbtCliResource:
    # dbt is called from the interpreter's own environment; it need not be on PATH.
    return DbtCliResource(
        project_dir=pulse_dbt_project,
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )
