"""pulse's tracking against an MLflow tracking server (PULSE_MLFLOW_URI, docs/deployment.md) instead of the
SQLite file: a segmentation run is logged with its artifacts (uploaded through the server, which proxies
them to its artifact store), registered, made champion, and loaded back, all over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from collector_process import free_port

from ml import tracking
from ml.segmentation import SegmentationConfig, fit_segments
from ml.synthetic import synthetic_user_features
from pulse.core.settings import paths_from_env

pytestmark = pytest.mark.integration


def test_segments_are_tracked_registered_and_loaded_through_a_tracking_server(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    cmd += ["--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow server did not start in 60 s"
                time.sleep(0.2)

        paths = paths_from_env({"PULSE_HOME": str(tmp_path / "home"), "PULSE_MLFLOW_URI": uri})
        assert paths.mlflow_store == uri and tracking.tracking_uri(paths.mlflow_store) == uri

        df, _ = synthetic_user_features(1500, seed=11)
        result = fit_segments(df, SegmentationConfig(k_max=4, silhouette_sample=600))
        run = tracking.log_segmentation_run(result, df, paths.mlflow_store, ui_url=uri)
        assert run.model_version == "1" and run.alias == "champion" and run.url.startswith(uri)

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        assert {a.path for a in client.list_artifacts(run.run_id)} >= {"segment_model.json", "segment_sizes.png"}
        assert any((tmp_path / "artifacts").rglob("segment_model.json"))  # stored by the server, not locally
        assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("mlflow.db"))
        champion = tracking.load_champion(uri)
        assert champion is not None and champion.names == result.model.names
        np.testing.assert_allclose(champion.centroids, result.model.centroids)
    finally:
        server.terminate()
        server.wait(timeout=30)
