"""Import contracts, checked on the source (AST, nothing is imported).

Module level:

1. ``ml`` and ``expectations`` never import ``dagster`` (or ``dagster_*``) or ``orchestration``;
2. of ``pulse/``, only the CLI entry (the package ``pulse.cli``) imports ``orchestration`` or ``dagster``;
3. no import cycle between modules of ``pulse/``, ``ml/``, ``orchestration/`` and ``expectations/``.

Package level, over units: ``ml``, ``expectations``, ``orchestration`` and each subpackage ``pulse.<stage>``:

4. every import between two units is an edge of :data:`UNIT_GRAPH` (what may import what; docs/architecture.md
   shows the same graph), and that graph has no cycle, so no two units import each other around a loop;
5. ``pulse.core`` imports no other unit; ``ml`` and ``expectations`` import only ``pulse.core`` of pulse;
6. no module sits directly in ``pulse/`` except ``__init__.py``: every module belongs to a stage's subpackage.

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
CLI_ENTRY = "pulse.cli"  # a package: every module under it

# What may import what, between units (contract 4). A unit missing here, or a unit listed here that does not
# exist, fails the contract, so this stays the list of units. The same graph is drawn in docs/architecture.md.
UNIT_GRAPH: dict[str, frozenset[str]] = {
    "pulse.core": frozenset(),
    "ml": frozenset({"pulse.core"}),
    "expectations": frozenset({"pulse.core"}),
    "pulse.collector": frozenset({"pulse.core"}),
    "pulse.importers": frozenset({"pulse.core"}),
    "pulse.demo": frozenset({"pulse.core", "ml"}),
    "pulse.ingest": frozenset({"pulse.core"}),
    "pulse.activation": frozenset({"pulse.core", "pulse.live"}),
    "pulse.live": frozenset({"pulse.core", "pulse.collector", "ml"}),
    "pulse.ui": frozenset({"pulse.core"}),
    "orchestration": frozenset({"pulse.core", "pulse.ingest", "pulse.activation", "pulse.ui", "ml", "expectations"}),
    "pulse.cli": frozenset(
        {
            "pulse.core",
            "pulse.collector",
            "pulse.importers",
            "pulse.demo",
            "pulse.ingest",
            "pulse.activation",
            "pulse.live",
            "pulse.ui",
            "ml",
            "expectations",
            "orchestration",
        }
    ),
}
CORE = "pulse.core"

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


# ------------------------------------------------------------------------------------------- package level


def unit_of(module: str) -> str | None:
    """The unit a module belongs to: ``pulse.<stage>`` for pulse's subpackages, else its top-level package
    (``ml``, ``expectations``, ``orchestration``); None for a third-party module and for ``pulse`` itself."""
    parts = module.split(".")
    if parts[0] == "pulse":
        return ".".join(parts[:2]) if len(parts) > 1 else None
    return parts[0] if parts[0] in PACKAGES else None


def units(root: Path) -> set[str]:
    """The units of the tree under ``root``: the subpackages of pulse/ and the other packages."""
    found = {u for u in map(unit_of, modules(root)) if u is not None}
    return {u for u in found if not u.startswith("pulse.") or (root / "pulse" / u.split(".")[1]).is_dir()}


def flat_module_violations(root: Path) -> list[str]:
    """Contract 6: a module directly in pulse/ (other than ``__init__.py``) belongs to no stage."""
    return [
        f"{path.relative_to(root)}: a module directly in pulse/; move it into the subpackage of its stage"
        for path in sorted((root / "pulse").glob("*.py"))
        if path.name != "__init__.py"
    ]


def graph_cycle_violations(graph: dict[str, frozenset[str]]) -> list[str]:
    """Contract 4's second half: the allowed graph itself has no cycle (else two units could import each other)."""
    closed = {unit: set(targets) for unit, targets in graph.items()}
    for targets in graph.values():
        for target in targets:
            closed.setdefault(target, set())
    return [f"the unit graph allows a cycle: {', '.join(sorted(group))}" for group in _strongly_connected(closed)]


def unit_violations(root: Path, graph: dict[str, frozenset[str]]) -> list[str]:
    """Contract 4 (and 5 and 6 through it): every import between two units is an edge of ``graph``; every unit is
    in ``graph`` and every unit of ``graph`` exists; the units' actual imports form no cycle."""
    present = units(root)
    out = [
        f"{unit} is a unit (package) missing from the unit graph: add it and what it may import"
        for unit in sorted(present - set(graph))
    ]
    out += [
        f"{unit} is in the unit graph but no such package exists: remove it" for unit in sorted(set(graph) - present)
    ]
    actual: dict[str, set[str]] = {unit: set() for unit in present}
    for imp in imports(root):
        importer, target = unit_of(imp.importer), unit_of(imp.target)
        if importer is None or target is None or importer == target:
            continue
        actual.setdefault(importer, set()).add(target)
        actual.setdefault(target, set())
        if importer in graph and target not in graph[importer]:
            may = ", ".join(sorted(graph[importer])) or "no other unit"
            out.append(f"{imp.where(root)}: {importer} imports {imp.target} ({target}); {importer} may import {may}")
    out += [f"the units import each other in a cycle: {', '.join(sorted(g))}" for g in _strongly_connected(actual)]
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


def test_every_import_between_units_is_allowed_and_the_units_form_no_cycle() -> None:
    assert unit_violations(ROOT, UNIT_GRAPH) == []
    assert graph_cycle_violations(UNIT_GRAPH) == []


def test_core_imports_no_other_unit_and_ml_and_expectations_only_core() -> None:
    """Contract 5 is a property of the graph, which the real tree is checked against above."""
    assert UNIT_GRAPH[CORE] == frozenset()
    assert UNIT_GRAPH["ml"] == UNIT_GRAPH["expectations"] == frozenset({CORE})
    assert all(CLI_ENTRY not in targets for targets in UNIT_GRAPH.values())  # nothing imports the CLI


def test_no_flat_module_in_pulse() -> None:
    assert flat_module_violations(ROOT) == []


def test_the_unit_checker_sees_the_units_and_imports_it_must() -> None:
    """The real tree: the units are pulse's subpackages and the three other packages, and the imports between
    them that the graph must allow are found (the CLI's late import of orchestration, ml's of pulse.core)."""
    assert units(ROOT) == set(UNIT_GRAPH)
    found = {(unit_of(imp.importer), unit_of(imp.target)) for imp in imports(ROOT)}
    assert {
        ("pulse.cli", "orchestration"),
        ("ml", CORE),
        ("orchestration", "pulse.ingest"),
        ("pulse.demo", "ml"),
    } <= found


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
            "pulse/cli/commands.py": "def main():\n    import dagster\n    from orchestration.run import go\n",
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
        (
            "pulse/activation/summary.py",
            "import dagster\n",
            "pulse/activation/summary.py:1: pulse.activation.summary imports dagster; in pulse/ only",
        ),
        (
            "pulse/collector/app.py",
            "from ..cli.commands import main\nfrom orchestration import x\n",
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
    allowed = (frozenset({"pulse.core.warehouse", "pulse.core.spark_warehouse"}),)
    files = {"pulse/core/warehouse.py": "def f():\n    from pulse.core.spark_warehouse import g\n"}
    root = _tree(tmp_path / "a", {**files, "pulse/core/spark_warehouse.py": "from pulse.core.warehouse import x\n"})
    assert cycle_violations(root, allowed) == []
    # a third module joining the loop makes it another cycle
    root = _tree(
        tmp_path / "b",
        {
            **files,
            "pulse/core/spark_warehouse.py": "from pulse.core.warehouse import x\nfrom pulse.core.settings import s\n",
            "pulse/core/settings.py": "from pulse.core.warehouse import x\n",
        },
    )
    assert [v.split(":")[0] for v in cycle_violations(root, allowed)] == [
        "import cycle between pulse.core.settings, pulse.core.spark_warehouse, pulse.core.warehouse",
        "the allowed cycle pulse.core.spark_warehouse, pulse.core.warehouse is gone",
    ]
    # the cycle removed: the allowance must go too
    root = _tree(tmp_path / "c", {**files, "pulse/core/spark_warehouse.py": "import pandas\n"})
    assert cycle_violations(root, allowed) == [
        "the allowed cycle pulse.core.spark_warehouse, pulse.core.warehouse is gone: remove it from ALLOWED_CYCLES"
    ]


# ------------------------------------------------------------------------ seeded violations, package level

SMALL_GRAPH: dict[str, frozenset[str]] = {
    "pulse.core": frozenset(),
    "pulse.ingest": frozenset({"pulse.core"}),
    "pulse.ui": frozenset({"pulse.core"}),
    "pulse.cli": frozenset({"pulse.core", "pulse.ingest", "pulse.ui", "orchestration"}),
    "ml": frozenset({"pulse.core"}),
    "expectations": frozenset({"pulse.core"}),
    "orchestration": frozenset({"pulse.core", "pulse.ingest", "pulse.ui", "ml", "expectations"}),
}
CLEAN_UNITS = {
    "pulse/core/settings.py": "import pandas\n",
    "pulse/core/warehouse.py": "from pulse.core.settings import s\n",
    "pulse/ingest/raw_events.py": "from pulse.core import warehouse\n",
    "pulse/ui/docs.py": "def serve():\n    from pulse.core.settings import s\n",
    "pulse/cli/commands.py": "from pulse.ingest.raw_events import x\ndef main():\n    from orchestration import run\n",
    "ml/model.py": "from pulse.core.warehouse import Warehouse\n",
    "expectations/runner.py": "from pulse.core.settings import s\n",
    "orchestration/run.py": "from pulse.ui.docs import serve\nfrom ml.model import m\nfrom expectations import x\n",
}


def test_a_clean_tree_of_units_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN_UNITS)
    assert units(root) == set(SMALL_GRAPH)
    assert unit_violations(root, SMALL_GRAPH) == []
    assert flat_module_violations(root) == []
    assert graph_cycle_violations(SMALL_GRAPH) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (  # contract 5: the core imports no other unit
            "pulse/core/warehouse.py",
            "from pulse.ingest.raw_events import x\n",
            "pulse/core/warehouse.py:1: pulse.core imports pulse.ingest.raw_events (pulse.ingest); pulse.core may "
            "import no other unit",
        ),
        (  # contract 5: ml imports only the core of pulse, a late import too
            "ml/model.py",
            "def f():\n    from pulse.ui import docs\n",
            "ml/model.py:2: ml imports pulse.ui.docs (pulse.ui); ml may import pulse.core",
        ),
        (  # contract 5: expectations imports only the core of pulse, a type too
            "expectations/runner.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pulse.cli.commands import main\n",
            "expectations/runner.py:3: expectations imports pulse.cli.commands (pulse.cli); expectations may import "
            "pulse.core",
        ),
        (  # contract 4: nothing imports the CLI (the relative import counts)
            "pulse/ui/docs.py",
            "from ..cli import commands\n",
            "pulse/ui/docs.py:1: pulse.ui imports pulse.cli.commands (pulse.cli); pulse.ui may import pulse.core",
        ),
    ],
)
def test_an_import_the_unit_graph_does_not_allow_fails(tmp_path: Path, name: str, text: str, expected: str) -> None:
    root = _tree(tmp_path, {**CLEAN_UNITS, name: text})
    found = unit_violations(root, SMALL_GRAPH)
    assert found[0] == expected, found
    # a forbidden edge that also closes a loop is reported as the cycle too; nothing else is
    assert all(v.startswith("the units import each other in a cycle") for v in found[1:]), found


def test_units_importing_each_other_fail_even_when_each_edge_is_allowed(tmp_path: Path) -> None:
    loose = {
        **SMALL_GRAPH,
        "pulse.ingest": frozenset({"pulse.core", "pulse.ui"}),
        "pulse.ui": frozenset({"pulse.ingest"}),
    }
    assert graph_cycle_violations(loose) == ["the unit graph allows a cycle: pulse.ingest, pulse.ui"]
    root = _tree(
        tmp_path,
        {
            **CLEAN_UNITS,
            "pulse/ingest/raw_events.py": "def f():\n    from pulse.ui.docs import serve\n",
            "pulse/ui/docs.py": "from pulse.ingest import raw_events\n",
        },
    )
    assert unit_violations(root, loose) == ["the units import each other in a cycle: pulse.ingest, pulse.ui"]
    # the modules form a cycle too: the module-level check finds it as well
    assert cycle_violations(root)[0].startswith("import cycle between pulse.ingest.raw_events, pulse.ui.docs")


def test_a_unit_missing_from_the_graph_or_a_graph_entry_without_a_package_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN_UNITS, "pulse/reports/weekly.py": "from pulse.core.settings import s\n"})
    assert unit_violations(root, {**SMALL_GRAPH, "pulse.activation": frozenset({"pulse.core"})}) == [
        "pulse.reports is a unit (package) missing from the unit graph: add it and what it may import",
        "pulse.activation is in the unit graph but no such package exists: remove it",
    ]


def test_a_module_directly_in_pulse_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN_UNITS, "pulse/helpers.py": "import os\n"})
    assert flat_module_violations(root) == [
        "pulse/helpers.py: a module directly in pulse/; move it into the subpackage of its stage"
    ]
