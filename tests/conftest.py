from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from pulse.settings import PulsePaths, export_to_environ, paths_from_env

PATH_VARIABLES = ("PULSE_LANDING", "PULSE_WAREHOUSE", "PULSE_MLFLOW_DB", "DAGSTER_HOME", "PULSE_EXPORTS")


@contextmanager
def _isolated_pulse_home(home: Path) -> Iterator[PulsePaths]:
    """PULSE_HOME at ``home`` with every other path under it, exported like the CLI does; the environment
    is restored afterwards."""
    saved = dict(os.environ)
    for var in (*PATH_VARIABLES, "PULSE_ENGINE"):  # DuckDB unless a test says otherwise
        os.environ.pop(var, None)
    os.environ["PULSE_HOME"] = str(home)
    paths = paths_from_env().ensure()
    export_to_environ(paths)
    try:
        yield paths
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def isolated_pulse_home() -> Callable[[Path], AbstractContextManager[PulsePaths]]:
    """For module-scoped fixtures: ``with isolated_pulse_home(tmp_path_factory.mktemp("x") / "home") as paths``."""
    return _isolated_pulse_home


@pytest.fixture
def pulse_home(tmp_path: Path) -> Iterator[PulsePaths]:
    """A temporary PULSE_HOME, exported like the CLI does; the environment is restored afterwards."""
    with _isolated_pulse_home(tmp_path / "home") as paths:
        yield paths


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Whatever a test exports (the CLI's `main` exports PULSE_* paths, as it should for its children) does not
    reach the next test: tests share a process (and, under pytest-xdist, an order that varies run to run)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


_SESSION_UMASK = os.umask(0o022)
os.umask(_SESSION_UMASK)


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """`pulse`'s `main` (and a run's storage resource) set the process umask (file_access, pulse/file_access.py),
    also inside module fixtures: every test ends with the umask the session started with."""
    yield
    os.umask(_SESSION_UMASK)
