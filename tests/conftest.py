from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse.settings import PulsePaths, export_to_environ, paths_from_env


@pytest.fixture
def pulse_home(tmp_path: Path) -> Iterator[PulsePaths]:
    """A temporary PULSE_HOME, exported like the CLI does; the environment is restored afterwards."""
    saved = dict(os.environ)
    for var in ("PULSE_LANDING", "PULSE_WAREHOUSE", "PULSE_MLFLOW_DB", "DAGSTER_HOME", "PULSE_EXPORTS"):
        os.environ.pop(var, None)
    os.environ["PULSE_HOME"] = str(tmp_path / "home")
    paths = paths_from_env().ensure()
    export_to_environ(paths)
    try:
        yield paths
    finally:
        os.environ.clear()
        os.environ.update(saved)
