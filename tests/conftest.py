from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from pulse.core.settings import PulsePaths, paths_from_env

PATH_VARIABLES = ("PULSE_LANDING", "PULSE_WAREHOUSE", "PULSE_MLFLOW_DB", "DAGSTER_HOME", "PULSE_EXPORTS")

# The test files that take longest, slowest first (seconds of one file on 2 busy cores, `pytest --durations=0`,
# Dec 2026): `make test` hands them to the two workers first, then the other integration files, the browser
# tests, and the unit tests last, which fill the gaps (longest first; xdist's own order, by number of tests per
# file, put these few-test files last and left one worker idle for minutes). Update it when a file grows.
SLOWEST_FIRST = (
    "tests/integration/test_engines_equal.py",  # ~560 s: Spark and DuckDB, full and incremental
    "tests/integration/test_killed_runs.py",  # ~380 s: a chain of seven `pulse materialize` processes
    "tests/browser/test_browser.py",  # ~270 s: Chromium, the docs and MLflow servers
    "tests/integration/test_late_events.py",
    "tests/integration/test_late_event_publishes.py",
    "tests/integration/test_incremental.py",
    "tests/integration/test_history_from_the_1990s.py",
    "tests/integration/test_automation.py",
    "tests/integration/test_settings_runs.py",
    "tests/integration/test_purchase_intent_on_demo.py",
    "tests/integration/test_small_shop.py",
    "tests/integration/test_pipeline.py",
    "tests/integration/test_activation_unchanged.py",  # ~110 s: a demo built, then dbt's after_ml models vs legacy
    "tests/integration/test_publish.py",  # ~90 s: dbt's after_ml models on hand-made tables, then publishing
    "tests/integration/test_collection_end_to_end.py",
    "tests/integration/test_stream_processor.py",  # ~70 s: dbt on two small shops, `pulse stream` killed up to 8 times
    "tests/integration/test_new_landing_day.py",
    "tests/integration/test_no_leaks.py",
    "tests/integration/test_live_trigger_parity.py",  # 207-249 s at load 11-20 (five small dbt builds)
    "tests/integration/test_live_features.py",  # ~100 s: two shapes, dbt three times each, every event fed live
    "tests/integration/test_dbt_environment.py",  # ~35 s: one dbt compile through the pulse-dbt wrapper
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first (SLOWEST_FIRST), then integration, browser and unit tests; a file's tests stay
    together and in their order (the sort is stable)."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        if path in SLOWEST_FIRST:
            return (0, SLOWEST_FIRST.index(path))
        folder = Path(path).parts[1] if len(Path(path).parts) > 2 else ""
        return ({"integration": 1, "browser": 2}.get(folder, 3), 0)

    items.sort(key=rank)


@contextmanager
def _isolated_pulse_home(home: Path) -> Iterator[PulsePaths]:
    """PULSE_HOME at ``home`` with every other path under it, as a user's shell would export it (pulse itself
    never writes the environment: its settings door reads PULSE_HOME and derives the rest); DAGSTER_HOME too,
    for the tests that open Dagster's instance the way `dagster` does (DagsterInstance.get()). The environment
    is restored afterwards."""
    saved = dict(os.environ)
    for var in (*PATH_VARIABLES, "PULSE_ENGINE"):  # DuckDB unless a test says otherwise
        os.environ.pop(var, None)
    os.environ["PULSE_HOME"] = str(home)
    paths = paths_from_env().ensure()
    os.environ["DAGSTER_HOME"] = str(paths.dagster_home)
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
    """A temporary PULSE_HOME in the environment; the environment is restored afterwards."""
    with _isolated_pulse_home(tmp_path / "home") as paths:
        yield paths


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Whatever a test sets in the environment does not reach the next test: tests share a process (and, under
    pytest-xdist, an order that varies run to run)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


_SESSION_UMASK = os.umask(0o022)
os.umask(_SESSION_UMASK)


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """`pulse`'s `main` (and a run's storage resource) set the process umask (file_access, pulse/core/file_access.py),
    also inside module fixtures: every test ends with the umask the session started with."""
    yield
    os.umask(_SESSION_UMASK)
