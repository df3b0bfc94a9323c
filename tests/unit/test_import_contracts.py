"""Import contracts, checked on the source (AST, nothing is imported):

1. ``ml`` and ``expectations`` never import ``dagster`` (or ``dagster_*``) or ``orchestration``;
2. of ``pulse/``, only the CLI entry (``pulse/cli.py``) imports ``orchestration`` or ``dagster``;
3. no import cycle between modules of ``pulse/``, ``ml/``, ``orchestration/`` and ``expectations/``.

Every import counts: at module level, inside a function (a late import to save start-up time is still a
dependency, it only hides the cycle until the function runs) and under ``if TYPE_CHECKING:`` (a type from
another module is a dependency on it too). Each contract is also run on a small tree with a seeded violation,
so a checker that finds nothing cannot pass.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pulse", "ml", "orchestration", "expectations")
ORCHESTRATOR = ("dagster", "orchestration")  # dagster also stands for dagster_dbt, dagster_webserver, ...
NO_ORCHESTRATOR = ("ml", "expectations")
CLI_ENTRY = "pulse.cli"

# Cycles still allowed, each as the set of its modules. Drop an entry once the cycle is gone (a stale entry fails).
ALLOWED_CYCLES: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. "pulse.cli"
    target: str  # the imported module: an internal module's name, or the top-level name of a third-party one
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages under ``root``."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # ``from a import b``: b is a module of its own, or a name defined in a
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def imports(root: Path) -> Iterator[Import]:
    """Every import statement of every module under ``root``, wherever it is in the file."""
    found = modules(root)
    known = set(found)
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets = []
            for name in _imported_names(node, module, path.name == "__init__.py", known):
                target = name
                while target and target not in known:  # an internal module, or else the top-level name
                    target = target.rpartition(".")[0]
                targets.append(target or name.split(".")[0])
            for target in dict.fromkeys(targets):  # ``from a import x, y``: one import of a
                if target != module:
                    yield Import(module, target, path, node.lineno)


def _is_orchestrator(target: str) -> bool:
    top = target.split(".")[0]
    return top == "orchestration" or top == "dagster" or top.startswith("dagster_")


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def orchestrator_violations(root: Path) -> list[str]:
    """Contracts 1 and 2."""
    out = []
    for imp in imports(root):
        if not _is_orchestrator(imp.target):
            continue
        package = next((p for p in NO_ORCHESTRATOR if _in_package(imp.importer, p)), None)
        if package is not None:
            out.append(f"{imp.where(root)}: {package} must not import {imp.target} ({package} stays Dagster-free)")
        elif _in_package(imp.importer, "pulse") and not _in_package(imp.importer, CLI_ENTRY):
            out.append(
                f"{imp.where(root)}: {imp.importer} imports {imp.target}; in pulse/ only {CLI_ENTRY} may "
                "(move the code to orchestration/ or call it through the CLI)"
            )
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def cycles(root: Path) -> list[tuple[frozenset[str], list[Import]]]:
    """Each group of modules that import each other (directly or around a loop), with the imports inside it."""
    internal = set(modules(root))
    edges = [imp for imp in imports(root) if imp.target in internal]
    graph: dict[str, set[str]] = {m: set() for m in internal}
    for imp in edges:
        graph[imp.importer].add(imp.target)
    return [
        (frozenset(group), [e for e in edges if e.importer in group and e.target in group])
        for group in _strongly_connected(graph)
    ]


def cycle_violations(root: Path, allowed: tuple[frozenset[str], ...] = ()) -> list[str]:
    """Contract 3: every cycle not in ``allowed``, and every entry of ``allowed`` that is no cycle any more."""
    out = []
    found = cycles(root)
    for group, edges in found:
        if group in allowed:
            continue
        how = "; ".join(f"{e.importer} -> {e.target} ({e.where(root)})" for e in edges)
        out.append(f"import cycle between {', '.join(sorted(group))}: {how}")
    for group in allowed:
        if group not in {g for g, _ in found}:
            out.append(f"the allowed cycle {', '.join(sorted(group))} is gone: remove it from ALLOWED_CYCLES")
    return out


# ------------------------------------------------------------------------------------------------ the code


def test_ml_and_expectations_never_import_the_orchestrator_and_only_the_cli_does_in_pulse() -> None:
    assert orchestrator_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycle_violations(ROOT, ALLOWED_CYCLES) == []


def test_the_checker_sees_the_imports_it_must() -> None:
    """The real tree: the CLI's late imports of Dagster and orchestration are found (the checker reads function
    bodies), and every package has modules (the checker reads the right root)."""
    found = {(imp.importer, imp.target) for imp in imports(ROOT)}
    assert ("pulse.cli.commands", "dagster") in found
    assert ("pulse.cli.commands", "orchestration.materialize") in found
    assert {name.split(".")[0] for name in modules(ROOT)} == set(PACKAGES)


# -------------------------------------------------------------------------------- seeded violations


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "ml/model.py": "import numpy\nfrom ml import helpers\n",
            "ml/helpers.py": "import pandas\n",
            "pulse/cli.py": "def main():\n    import dagster\n    from orchestration.run import go\n",
            "orchestration/run.py": "import dagster\nfrom ml.model import x\n",
        },
    )
    assert orchestrator_violations(root) == []
    assert cycle_violations(root) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("ml/model.py", "import dagster as dg\n", "ml/model.py:1: ml must not import dagster"),
        ("ml/deep/model.py", "from dagster_dbt import x\n", "ml/deep/model.py:1: ml must not import dagster_dbt"),
        (
            "expectations/runner.py",
            "def run():\n    from orchestration.resources import PulseStorage\n",
            "expectations/runner.py:2: expectations must not import orchestration.resources",
        ),
        (
            "ml/model.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from orchestration import resources\n",
            "ml/model.py:3: ml must not import orchestration.resources",
        ),
        ("pulse/summary.py", "import dagster\n", "pulse/summary.py:1: pulse.summary imports dagster; in pulse/ only"),
        (
            "pulse/collector/app.py",
            "from ..cli import main\nfrom orchestration import x\n",
            "pulse/collector/app.py:2: pulse.collector.app imports orchestration;",
        ),
    ],
)
def test_an_orchestrator_import_where_none_may_be_fails(tmp_path: Path, name: str, text: str, expected: str) -> None:
    root = _tree(tmp_path, {name: text, "orchestration/resources.py": "PulseStorage = 1\n"})
    found = orchestrator_violations(root)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_two_module_cycle_fails_wherever_the_import_is(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "ml/matching.py": "import typing\nif typing.TYPE_CHECKING:\n    from ml.segmentation import M\n",
            "ml/segmentation.py": "from ml import matching\n",
        },
    )
    assert cycle_violations(root) == [
        "import cycle between ml.matching, ml.segmentation: ml.matching -> ml.segmentation (ml/matching.py:3); "
        "ml.segmentation -> ml.matching (ml/segmentation.py:1)"
    ]


def test_a_cycle_through_a_late_import_and_three_modules_fails(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "orchestration/materialize.py": "def run():\n    from orchestration.definitions import build\n",
            "orchestration/definitions.py": "from orchestration.quality.checks import checks\n",
            "orchestration/quality/checks.py": "from ..materialize import TAG\n",
            "orchestration/partitions.py": "from orchestration.definitions import build\n",  # in no cycle
        },
    )
    (found,) = cycle_violations(root)
    assert found.startswith(
        "import cycle between orchestration.definitions, orchestration.materialize, orchestration.quality.checks:"
    )
    assert "orchestration.quality.checks -> orchestration.materialize (orchestration/quality/checks.py:1)" in found
    assert "partitions" not in found


def test_an_allowed_cycle_passes_only_while_it_exists_and_only_alone(tmp_path: Path) -> None:
    allowed = (frozenset({"pulse.warehouse", "pulse.spark_warehouse"}),)
    files = {"pulse/warehouse.py": "def f():\n    from pulse.spark_warehouse import g\n"}
    root = _tree(tmp_path / "a", {**files, "pulse/spark_warehouse.py": "from pulse.warehouse import x\n"})
    assert cycle_violations(root, allowed) == []
    # a third module joining the loop makes it another cycle
    root = _tree(
        tmp_path / "b",
        {
            **files,
            "pulse/spark_warehouse.py": "from pulse.warehouse import x\nfrom pulse.settings import s\n",
            "pulse/settings.py": "from pulse.warehouse import x\n",
        },
    )
    assert [v.split(":")[0] for v in cycle_violations(root, allowed)] == [
        "import cycle between pulse.settings, pulse.spark_warehouse, pulse.warehouse",
        "the allowed cycle pulse.spark_warehouse, pulse.warehouse is gone",
    ]
    # the cycle removed: the allowance must go too
    root = _tree(tmp_path / "c", {**files, "pulse/spark_warehouse.py": "import pandas\n"})
    assert cycle_violations(root, allowed) == [
        "the allowed cycle pulse.spark_warehouse, pulse.warehouse is gone: remove it from ALLOWED_CYCLES"
    ]
