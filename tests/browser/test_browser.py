"""The browser tests (tests/browser/*.test.mjs) under pytest: one test per file, each run by node's test runner
against real pulse processes (``pulse collect``, ``pulse ui``, ``pulse serve``) and headless Chromium. They need
node, Chromium at /usr/bin/chromium and tests/browser/node_modules: ``make browser-deps``. A missing one fails the
test (it is never skipped silently). See tests/browser/README.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TEST_FILES = sorted(path.name for path in HERE.glob("*.test.mjs"))
CHROMIUM = Path(os.environ.get("PULSE_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_SECONDS = 1200  # docs_ui.test.mjs materializes a home (`pulse run`): 4 min for the file at load 10 on 2 cores

pytestmark = pytest.mark.integration


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (HERE / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append("tests/browser/node_modules (npm ci)")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    return missing


def _pulse_bin() -> str:
    beside_python = Path(sys.executable).parent / "pulse"
    default = beside_python if beside_python.exists() else REPO / ".venv" / "bin" / "pulse"
    return os.environ.get("PULSE_BIN", str(default))


def test_browser_test_files_exist() -> None:
    assert TEST_FILES, f"no *.test.mjs in {HERE}"


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_browser(test_file: str) -> None:
    missing = _missing()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make browser-deps`", pytrace=False)
    command = ["node", "--test", "--test-concurrency=1", "--test-reporter=spec", test_file]
    try:
        result = subprocess.run(
            command,
            cwd=HERE,
            env={**os.environ, "PULSE_BIN": _pulse_bin()},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{' '.join(command)} ran over {TIMEOUT_SECONDS} s:\n{error.stdout}\n{error.stderr}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}", pytrace=False)
