"""One door for configuration: no code of pulse writes the process environment, and only pulse/core/settings.py reads
it (every other module gets settings from the door: pulse.core.settings.load_settings and friends, or a child
environment built by Settings.dbt_env / Settings.child_env). An AST scan of the product's packages."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pulse", "orchestration", "ml", "expectations")
THE_DOOR = "pulse/core/settings.py"
# Modules allowed to read the environment besides the door, each with why.
READERS = {
    # A test hook, not a setting: PULSE_TEST_KILL_AT makes a process SIGKILL itself at a named point so that the
    # killed-run tests can prove recovery. It must be readable at the kill point itself, deep inside a run, with
    # no settings object at hand, and it is never documented as configuration (pulse/core/kill_points.py).
    "pulse/core/kill_points.py": "test-only kill hook PULSE_TEST_KILL_AT",
}
ENV_FUNCTIONS = {"getenv", "getenvb", "putenv", "unsetenv"}
WRITING_METHODS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


def _is_environ(node: ast.AST, imported_from_os: set[str]) -> bool:
    """``os.environ`` / ``os.environb``, or a bare ``environ`` imported from os (not a parameter so named)."""
    if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb"):
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in imported_from_os


def environment_access(source: str) -> tuple[list[str], list[str]]:
    """(writes, reads) of the process environment in ``source``, as ``line: code`` texts."""
    tree = ast.parse(source)
    writes: list[str] = []
    reads: list[str] = []
    imported_from_os = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name in ("environ", "environb")
    }

    def where(node: ast.AST) -> str:
        return f"{node.lineno}: {ast.unparse(node)}"

    def is_environ(node: ast.AST) -> bool:
        return _is_environ(node, imported_from_os)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ("environ", "environb", *ENV_FUNCTIONS):
                    (writes if alias.name in ("putenv", "unsetenv") else reads).append(where(node))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            writes += [where(node) for t in targets if isinstance(t, ast.Subscript) and is_environ(t.value)]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and is_environ(func.value) and func.attr in WRITING_METHODS:
                writes.append(where(node))
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "os":
                if func.attr in ("putenv", "unsetenv"):
                    writes.append(where(node))
                elif func.attr in ("getenv", "getenvb"):
                    reads.append(where(node))
        if is_environ(node):
            reads.append(where(node))
    return writes, reads


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_the_scan_sees_reads_and_writes() -> None:
    """The scan itself: each way of touching the environment is caught (a scan that finds nothing proves nothing)."""
    cases = {
        "import os\nos.environ['A'] = '1'": 1,
        "import os\nos.environ.update({'A': '1'})": 1,
        "import os\nos.environ.setdefault('A', '1')": 1,
        "import os\ndel os.environ['A']": 1,
        "import os\nos.putenv('A', '1')": 1,
        "from os import environ\nenviron['A'] = '1'": 1,
    }
    for source, count in cases.items():
        writes, reads = environment_access(source)
        assert len(writes) >= count, source
    for source in (
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.getenv('A')",
        "import os\nx = dict(os.environ)",
        "from os import environ\nx = environ['A']",
        "from os import getenv",
    ):
        assert environment_access(source)[1], source
    assert environment_access("environ = {}\nx = environ['A']\nenv = {'A': '1'}") == ([], [])


def test_no_code_writes_the_environment() -> None:
    writes = {
        str(path.relative_to(REPO)): found for path in _modules() if (found := environment_access(path.read_text())[0])
    }
    assert writes == {}, "pass an explicit env= to the child process instead (Settings.dbt_env / child_env)"


def test_only_the_settings_door_reads_the_environment() -> None:
    reads = {
        name: found
        for path in _modules()
        if (name := str(path.relative_to(REPO))) != THE_DOOR
        and name not in READERS
        and (found := environment_access(path.read_text())[1])
    }
    assert reads == {}, "read settings through pulse.core.settings (load_settings, home_settings, process_environ)"
    # the door does read it, and each named exception still does (else the exception should go)
    assert environment_access((REPO / THE_DOOR).read_text())[1]
    for name in READERS:
        assert environment_access((REPO / name).read_text())[1], f"{name} no longer reads it: drop it from READERS"


def test_pulse_dbt_takes_the_settings_as_arguments_and_sets_them_in_dbts_environment_only() -> None:
    """dagster-dbt runs `pulse-dbt --env NAME=VALUE ... <dbt args>` (orchestration.resources.dbt_for_run): the
    wrapper splits them off and builds dbt's environment; an empty value unsets (profiles.yml's default)."""
    import pytest

    from pulse.core.processes import dbt_environment, split_env_arguments

    env, rest = split_env_arguments(
        ["--env", "PULSE_WAREHOUSE=/w.duckdb", "--env", "PULSE_DBT_TARGET=", "build", "--env"]
    )
    assert env == {"PULSE_WAREHOUSE": "/w.duckdb", "PULSE_DBT_TARGET": ""}
    assert rest == ["build", "--env"]  # only leading pairs are the wrapper's
    child = dbt_environment({"PATH": "/bin", "PULSE_DBT_TARGET": "spark", "PULSE_WAREHOUSE": "/old"}, env)
    assert child["PULSE_WAREHOUSE"] == "/w.duckdb" and "PULSE_DBT_TARGET" not in child and child["PATH"] == "/bin"
    with pytest.raises(SystemExit, match="--env needs NAME=VALUE"):
        split_env_arguments(["--env", "build"])
