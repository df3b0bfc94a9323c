"""dbt docs generation (pulse/ui/dbt_docs.py) with a stand-in `dbt` executable that records its calls: the site gets
dbt's three files and a stamp, an unchanged project is not generated again, a failure keeps the previous site.
The real `dbt docs generate` runs in tests/integration/test_quality_gates.py (the pipeline's dbt step)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from pulse.ui.dbt_docs import DbtDocsError, dbt_docs_site, generate_dbt_docs, is_current, project_stamp

FAKE_DBT = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
calls = Path(os.environ["FAKE_DBT_CALLS"])
calls.write_text(calls.read_text() + json.dumps(args) + "\\n" if calls.exists() else json.dumps(args) + "\\n")
if os.environ.get("FAKE_DBT_FAIL"):
    print("Runtime Error: IO Error: Could not set lock on file warehouse.duckdb")
    sys.exit(2)
target = Path(args[args.index("--target-path") + 1])
target.mkdir(parents=True, exist_ok=True)
version = os.environ.get("FAKE_DBT_VERSION", "1")
# as dbt 1.11 does: --no-compile writes the catalog and index.html, and no manifest.json
for name in ("index.html", "catalog.json") + (() if "--no-compile" in args else ("manifest.json",)):
    (target / name).write_text(f"{{name}} v{{version}}")
"""


@pytest.fixture
def fake_dbt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    executable = tmp_path / "bin" / "dbt"
    executable.parent.mkdir()
    executable.write_text(FAKE_DBT.format(python=sys.executable))
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_DBT_CALLS", str(calls))
    return str(executable), calls


def _calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _generate(home: Path, dbt: str, stamp: str, **kwargs):
    return generate_dbt_docs(
        home, dbt_executable=dbt, project_dir=home, profiles_dir=home / "profiles", stamp=stamp, **kwargs
    )


def test_the_site_gets_dbts_three_files_and_the_stamp(tmp_path: Path, fake_dbt) -> None:
    dbt, calls = fake_dbt
    home = tmp_path / "home"
    home.mkdir()
    docs = _generate(home, dbt, "stamp-1")
    assert docs.generated and docs.site == dbt_docs_site(home) == home / "dbt_docs" / "site"
    assert sorted(p.name for p in docs.site.iterdir()) == ["catalog.json", "index.html", "manifest.json", "stamp"]
    assert (docs.site / "manifest.json").read_text() == "manifest.json v1"
    (args,) = _calls(calls)
    assert args[:3] == ["docs", "generate", "--project-dir"]  # no build's manifest given: dbt compiles one
    assert args[args.index("--target-path") + 1] == str(home / "dbt_docs" / "target")  # never dbt_project/target
    assert args[args.index("--log-path") + 1] == str(home / "dbt_docs" / "log")
    assert args[args.index("--profiles-dir") + 1] == str(home / "profiles")
    assert is_current(docs.site, "stamp-1") and not is_current(docs.site, "stamp-2")


def test_the_builds_manifest_is_served_and_dbt_only_reads_the_catalog(tmp_path: Path, fake_dbt) -> None:
    dbt, calls = fake_dbt
    home = tmp_path / "home"
    build = tmp_path / "build-target"
    build.mkdir(parents=True)
    (build / "manifest.json").write_text("the build's manifest, compiled")
    (build / "partial_parse.msgpack").write_bytes(b"parsed")
    docs = _generate(home, dbt, "stamp-1", build_target=build)
    assert docs.generated
    assert (docs.site / "manifest.json").read_text() == "the build's manifest, compiled"
    assert (docs.site / "catalog.json").read_text() == "catalog.json v1"
    (args,) = _calls(calls)
    assert "--no-compile" in args
    assert (home / "dbt_docs" / "target" / "partial_parse.msgpack").read_bytes() == b"parsed"


def test_an_unchanged_project_is_not_generated_again(tmp_path: Path, fake_dbt, monkeypatch) -> None:
    dbt, calls = fake_dbt
    home = tmp_path / "home"
    home.mkdir()
    _generate(home, dbt, "stamp-1")
    again = _generate(home, dbt, "stamp-1")
    assert not again.generated and len(_calls(calls)) == 1
    monkeypatch.setenv("FAKE_DBT_VERSION", "2")
    changed = _generate(home, dbt, "stamp-2")
    assert changed.generated and len(_calls(calls)) == 2
    assert (changed.site / "catalog.json").read_text() == "catalog.json v2"
    assert _generate(home, dbt, "stamp-2", force=True).generated and len(_calls(calls)) == 3


def test_a_failure_names_dbts_output_and_keeps_the_previous_site(tmp_path: Path, fake_dbt, monkeypatch) -> None:
    dbt, _ = fake_dbt
    home = tmp_path / "home"
    home.mkdir()
    site = _generate(home, dbt, "stamp-1").site
    monkeypatch.setenv("FAKE_DBT_FAIL", "1")
    with pytest.raises(DbtDocsError, match="exited 2:\nRuntime Error: IO Error: Could not set lock"):
        _generate(home, dbt, "stamp-2")
    assert (site / "index.html").read_text() == "index.html v1"
    assert is_current(site, "stamp-1")  # the old files and their stamp stay together


def test_a_missing_dbt_is_a_dbt_docs_error(tmp_path: Path) -> None:
    with pytest.raises(DbtDocsError, match="no-such-dbt"):
        _generate(tmp_path, str(tmp_path / "no-such-dbt"), "s")


def test_the_stamp_follows_the_manifest_and_the_engine(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"nodes": {"model.pulse.a": {}}}')
    first = project_stamp(manifest, "duckdb")
    assert project_stamp(manifest, "duckdb") == first
    assert project_stamp(manifest, "spark") != first
    manifest.write_text('{"nodes": {"model.pulse.b": {}}}')
    assert project_stamp(manifest, "duckdb") != first
