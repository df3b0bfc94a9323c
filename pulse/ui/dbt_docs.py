"""dbt docs (`dbt docs generate`) for the docs server, under ``$PULSE_HOME/dbt_docs``. No Dagster here.

The catalog (every relation's columns and types) is read from the warehouse, and DuckDB has one writer: the
docs are generated where that cannot collide, at the end of a run's dbt step (orchestration/transform), after
`dbt build` has let go of the warehouse and while the step still holds the ``warehouse`` pool. They are
regenerated only when the dbt project changed (a stamp of its manifest and the engine), so a daily run pays
nothing::

    $PULSE_HOME/dbt_docs/
      target/   dbt's --target-path (manifest, catalog, partial parse), log/ its --log-path
      site/     what the docs server serves at /dbt/: index.html, manifest.json, catalog.json, stamp

The three files are copied into ``site/`` one by one with an atomic rename, the stamp last.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulse.core.settings import process_environ

DBT_DOCS_DIRNAME = "dbt_docs"
SITE_FILES = ("index.html", "manifest.json", "catalog.json")
STAMP_FILE = "stamp"
TIMEOUT_SECONDS = 600


class DbtDocsError(RuntimeError):
    """`dbt docs generate` failed (its output is in the message)."""


@dataclass(frozen=True)
class DbtDocs:
    site: Path  # what the docs server serves at /dbt/
    generated: bool  # False: the site was up to date
    seconds: float


def dbt_docs_dir(home: Path) -> Path:
    return Path(home) / DBT_DOCS_DIRNAME


def dbt_docs_site(home: Path) -> Path:
    return dbt_docs_dir(home) / "site"


def project_stamp(manifest: Path, engine: str) -> str:
    """Changes when the dbt project (its parsed manifest) or the engine (the catalog's types) does."""
    digest = hashlib.sha256(engine.encode() + b"\0")
    with open(manifest, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_current(site: Path, stamp: str) -> bool:
    try:
        return (site / STAMP_FILE).read_text().strip() == stamp and all((site / f).is_file() for f in SITE_FILES)
    except OSError:
        return False


def generate_dbt_docs(
    home: Path,
    *,
    dbt_executable: str,
    project_dir: Path,
    profiles_dir: Path,
    stamp: str,
    build_target: Path | None = None,
    environ: Mapping[str, str] | None = None,
    force: bool = False,
) -> DbtDocs:
    """`dbt docs generate` into ``$home/dbt_docs`` unless the site already has ``stamp``.

    build_target: the target folder of the `dbt build` that just ran. Its manifest.json (every model compiled
    as it ran) is the one served, so dbt only reads the catalog (``--no-compile``, which writes no manifest),
    and its partial parse file spares a full parse. None: dbt compiles the project for its manifest.
    environ: the child's environment (default: this process's, without the settings; callers pass
    :meth:`pulse.core.settings.Settings.dbt_env`, which picks the warehouse). Raises DbtDocsError with dbt's output
    when it fails; the site then keeps its previous files."""
    started = time.perf_counter()
    root = dbt_docs_dir(home)
    site = dbt_docs_site(home)
    if not force and is_current(site, stamp):
        return DbtDocs(site=site, generated=False, seconds=time.perf_counter() - started)
    target = root / "target"
    sources = {name: target / name for name in SITE_FILES}
    compile_args: list[str] = []
    if build_target is not None and (build_target / "manifest.json").is_file():
        sources["manifest.json"] = build_target / "manifest.json"
        compile_args = ["--no-compile"]
        parsed = build_target / "partial_parse.msgpack"
        if parsed.is_file() and not (target / parsed.name).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(parsed, target / parsed.name)  # dbt checks it and parses fully if it does not fit
    command = [
        dbt_executable,
        "docs",
        "generate",
        *compile_args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(target),
        "--log-path",
        str(root / "log"),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=project_dir,
            env=process_environ() if environ is None else dict(environ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DbtDocsError(f"{' '.join(command)}: {exc}") from exc
    missing = [name for name, source in sources.items() if not source.is_file()]
    if done.returncode != 0 or missing:
        output = (done.stdout + done.stderr).strip()[-4000:]
        why = f"exited {done.returncode}" if done.returncode else f"wrote no {', '.join(missing)}"
        raise DbtDocsError(f"dbt docs generate {why}:\n{output}")
    site.mkdir(parents=True, exist_ok=True)
    (site / STAMP_FILE).unlink(missing_ok=True)  # no stamp while the files are being replaced
    for name in SITE_FILES:
        partial = site / f".{name}.partial"
        shutil.copyfile(sources[name], partial)
        os.replace(partial, site / name)
    partial = site / f".{STAMP_FILE}.partial"
    partial.write_text(stamp + "\n")
    os.replace(partial, site / STAMP_FILE)
    return DbtDocs(site=site, generated=True, seconds=time.perf_counter() - started)
