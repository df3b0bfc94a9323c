"""`pulse ui` runs `dagster dev` and the docs server together and stops them together: SIGTERM (a service
manager, `kill`) to pulse leaves no process behind and frees both ports. Real processes on
free ports in a temporary PULSE_HOME; the browser test (tests/browser/docs_ui.test.mjs) uses the same command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from collector_process import free_port

pytestmark = pytest.mark.integration

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PULSE = Path(sys.executable).parent / "pulse"  # the pulse of the virtualenv running the tests


def _status(url: str) -> int | None:
    try:
        with OPENER.open(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def test_pulse_ui_stops_dagster_and_the_docs_server_together(tmp_path: Path) -> None:
    """SIGTERM here; tests/browser/docs_ui.test.mjs stops `pulse ui` with SIGINT (Ctrl-C) and checks the same, and
    tests/unit/test_supervisor.py both signals on a stand-in child."""
    ui_port, docs_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "DAGSTER_HOME"}
    env |= {"PULSE_HOME": str(tmp_path / "home"), "PULSE_DOCS_URL": f"http://127.0.0.1:{docs_port}"}
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        ui = subprocess.Popen([str(PULSE), "ui", "--port", str(ui_port)], env=env, stdout=out, stderr=out)
    processes: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while _status(f"http://127.0.0.1:{ui_port}/server_info") != 200:
            assert ui.poll() is None, f"pulse ui exited {ui.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the Dagster UI did not start in 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert _status(f"http://127.0.0.1:{docs_port}/") == 200  # the docs server is up beside it
        processes = psutil.Process(ui.pid).children(recursive=True)  # dagster dev, its webserver, daemon, ...
        names = " ".join(" ".join(p.cmdline()[:4]) for p in processes)
        assert "dagster" in names and "dagster_webserver" in names, names

        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=120) == 0, log.read_text()[-3000:]
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]
        assert _status(f"http://127.0.0.1:{ui_port}/server_info") is None
        assert _status(f"http://127.0.0.1:{docs_port}/") is None
    finally:  # whatever happened, this test leaves nothing running
        if ui.poll() is None:
            processes += psutil.Process(ui.pid).children(recursive=True)
            ui.kill()
            ui.wait()
        for p in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
