"""What the MLflow UI shows of pulse's runs: experiments marked as model training (also those created before),
run names that say what a run is (model, test or snapshot date, registered version), the baselines' test
metrics beside the model's on the intent parent run, and `pulse mlflow`'s app that opens in the model-training
view (pulse/ui/mlflow_ui.py)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from ml import tracking
from ml.intent_synthetic import synthetic_training_frame
from ml.intent_tracking import (
    EXPERIMENT as INTENT_EXPERIMENT,
)
from ml.intent_tracking import (
    baseline_metric_prefix,
    intent_run_name,
    log_intent_training,
)
from ml.purchase_intent import IntentConfig, train_purchase_intent
from ml.segmentation import SegmentationConfig, fit_segments
from ml.synthetic import synthetic_user_features
from pulse.ui import mlflow_ui


def test_run_names() -> None:
    assert tracking.segmentation_run_name(4, "2026-10-31") == "segments k=4 as of 2026-10-31"
    assert tracking.segmentation_run_name(4, "2026-10-31", "3") == "segments k=4 as of 2026-10-31 v3"
    assert tracking.segmentation_run_name(2, None, "1") == "segments k=2 v1"
    split = {"test_from": "2026-10-24", "test_to": "2026-10-24"}
    assert intent_run_name(split) == "purchase_intent test 2026-10-24"
    assert intent_run_name(split, "7") == "purchase_intent v7 test 2026-10-24"
    two = {"test_from": "2026-10-17", "test_to": "2026-10-24"}
    assert intent_run_name(two, "2") == "purchase_intent v2 test 2026-10-17..2026-10-24"
    assert baseline_metric_prefix("rfm_logistic") == "rfm"
    assert baseline_metric_prefix("recency_heuristic") == "recency"


def test_run_links_open_the_model_training_view() -> None:
    url = tracking.ui_run_url("http://127.0.0.1:5000/", "3", "abc")
    assert url == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert tracking.ui_run_url(None, "3", "abc") is None


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_segmentation_runs_are_named_and_their_experiment_is_model_training(tmp_path: Path) -> None:
    uri = tracking.tracking_uri(tmp_path / "mlflow.db")
    df, _ = synthetic_user_features(800, seed=5)
    result = fit_segments(df, SegmentationConfig(k_max=4, silhouette_sample=400))
    first = tracking.log_segmentation_run(result, df, uri)
    second = tracking.log_segmentation_run(result, df, uri, promote=False)
    client = _client(uri)
    as_of = df["as_of_date"].max()
    for run in (first, second):
        name = client.get_run(run.run_id).info.run_name
        assert name == f"segments k={result.chosen_k} as of {as_of} v{run.model_version}"
    experiment = client.get_experiment(first.experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING_KIND == "custom_model_development"
    assert experiment.tags[mlflow_ui.TABLE_METRICS_TAG].split(",")[:2] == ["chosen_k", "silhouette"]
    # a caller's own name is kept as given
    named = tracking.log_segmentation_run(result, df, uri, run_name="backfill", promote=False)
    assert client.get_run(named.run_id).info.run_name == "backfill"


def test_an_experiment_created_before_is_marked_as_model_training(tmp_path: Path) -> None:
    uri = tracking.tracking_uri(tmp_path / "mlflow.db")
    with tracking.using_store(uri):
        client = _client(uri)
        old = client.create_experiment(tracking.EXPERIMENT, artifact_location=tracking.artifact_location(uri))
        client.set_experiment_tag(old, tracking.EXPERIMENT_KIND_TAG, "genai_development")  # as MLflow 3 infers
        assert tracking.experiment_id_for(client, tracking.EXPERIMENT, uri) == old
        assert client.get_experiment(old).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


@pytest.fixture(scope="module")
def intent_result():
    frame = synthetic_training_frame(1200, 6, seed=3)
    return train_purchase_intent(frame, IntentConfig())


def test_intent_runs_are_named_and_the_baselines_sit_beside_the_model(tmp_path: Path, intent_result) -> None:
    uri = tracking.tracking_uri(tmp_path / "mlflow.db")
    registration = log_intent_training(intent_result, uri, ui_url="http://127.0.0.1:5000")
    client = _client(uri)
    test_date = intent_result.split.describe()["test_from"]
    parent = client.get_run(registration.run_id)
    assert parent.info.run_name == f"purchase_intent v{registration.model_version} test {test_date}"
    assert re.fullmatch(r"purchase_intent v1 test \d{4}-\d{2}-\d{2}", parent.info.run_name)
    metrics = parent.data.metrics
    test = intent_result.test_metrics
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift"):
        assert metrics[f"test_{metric}"] == pytest.approx(test["xgboost"][metric])
        assert metrics[f"rfm_test_{metric}"] == pytest.approx(test["rfm_logistic"][metric])
        assert metrics[f"recency_test_{metric}"] == pytest.approx(test["recency_heuristic"][metric])
    assert not any(name.startswith(("xgboost_", "rfm_logistic_", "recency_heuristic_")) for name in metrics)
    children = client.search_runs(
        [registration.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{registration.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == [
        f"{model} test {test_date}" for model in ("recency_heuristic", "rfm_logistic", "xgboost")
    ]
    experiment = client.get_experiment(registration.experiment_id)
    assert experiment.name == INTENT_EXPERIMENT
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert experiment.tags[mlflow_ui.TABLE_METRICS_TAG] == (
        "test_roc_auc,rfm_test_roc_auc,recency_test_roc_auc,test_pr_auc,rfm_test_pr_auc,recency_test_pr_auc,"
        "test_top_decile_lift,champion_test_roc_auc"
    )
    assert registration.url.endswith(f"/runs/{registration.run_id}?workflowType=machine_learning")


# ---- pulse mlflow's app -----------------------------------------------------------------------------------

PAGE = b'<!doctype html><html lang="en"><head><meta charset="utf-8"/><title>MLflow</title></head><body></body></html>'
COLUMNS = {"1": ["test_roc_auc", "rfm_test_roc_auc"], "7": ["silhouette"]}


def _defaults(page: bytes) -> dict[str, str]:
    """The defaults the page's script would store, read back from it."""
    script = page[page.index(b"<script>") : page.index(b"</script>")].decode()
    return json.loads(script[script.index("var d=") + len("var d=") : script.index(";for(")])


def test_the_defaults_script_goes_first_in_the_head() -> None:
    page = mlflow_ui.with_defaults(PAGE, COLUMNS)
    assert page.startswith(b'<!doctype html><html lang="en"><head><script>')
    assert page.index(b"<script>") < page.index(b"<meta charset")
    assert b"localStorage.getItem(k)===null" in page  # only where the browser has not chosen
    defaults = _defaults(page)
    assert defaults["mlflow.workflowType_v1"] == '"machine_learning"'
    assert defaults["mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"] == "true"
    state = json.loads(defaults['MLflowLocalStorage-1.1-ExperimentPage-["1"]-ReactComponentState'])
    assert state == {"selectedColumns": ["attributes.`Models`", "metrics.`test_roc_auc`", "metrics.`rfm_test_roc_auc`"]}
    assert 'MLflowLocalStorage-1.1-ExperimentPage-["7"]-ReactComponentState' in defaults
    assert mlflow_ui.with_defaults(b"no head here", COLUMNS) == b"no head here"
    # a metric name cannot close the script early
    hostile = mlflow_ui.defaults_script({"1": ["</script><b>"]})
    assert hostile.count(b"</script>") == 1 and hostile.endswith(b"</script>") and b"<b>" not in hostile


def test_the_installed_mlflow_ui_reads_these_keys(tmp_path: Path) -> None:
    """The page MLflow's server sends (its index.html) has a <head> the script goes into, and the installed UI
    bundle stores what the script writes under the same keys and formats (useLocalStorage: key + "_v" +
    version; LocalStorageUtils: "MLflowLocalStorage-1.1-" + scope; column ids: group.`name`)."""
    import mlflow.server

    build = Path(mlflow.server.__file__).parent / "js" / "build"
    index = (build / "index.html").read_bytes()
    assert mlflow_ui.defaults_script(COLUMNS) in mlflow_ui.with_defaults(index, COLUMNS)
    bundle = "".join(p.read_text(errors="replace") for p in (build / "static" / "js").glob("*.js"))
    assert 'key:"mlflow.workflowType",version:1' in bundle and "`${e}_v${t}`" in bundle
    assert 'MACHINE_LEARNING="machine_learning"' in bundle
    assert '"MLflowLocalStorage",r.version' in bundle and 'r.version="1.1"' in bundle
    assert 'getStoreForComponent("ExperimentPage"' in bundle and '"ReactComponentState"' in bundle
    assert 'e+".`"+t+"`"' in bundle  # column ids
    assert "mlflow.assistant.fab.autoOpenedOnFirstLoad" in bundle


def test_experiment_table_metrics_come_from_the_experiments_tag(tmp_path: Path) -> None:
    from mlflow.tracking._tracking_service.utils import _get_store

    uri = tracking.tracking_uri(tmp_path / "mlflow.db")
    with tracking.using_store(uri):
        client = _client(uri)
        pulse_id = tracking.experiment_id_for(client, "pulse-x", uri, ["test_roc_auc", "rfm_test_roc_auc"])
        client.create_experiment("someone-else")
        assert mlflow_ui.experiment_table_metrics(_get_store(uri)) == {pulse_id: ["test_roc_auc", "rfm_test_roc_auc"]}


class _Inner:
    """A stand-in for MLflow's ASGI app: answers every request with ``body`` as ``content_type``."""

    def __init__(self, body: bytes, content_type: bytes, status: int = 200) -> None:
        self.body, self.content_type, self.status = body, content_type, status
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.paths.append(scope["path"])
        headers = [(b"content-type", self.content_type), (b"content-length", str(len(self.body)).encode())]
        headers.append((b"etag", b'"abc"'))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        half = len(self.body) // 2
        await send({"type": "http.response.body", "body": self.body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": self.body[half:]})


def _get(app, path: str, method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_the_app_changes_the_page_at_the_root_only() -> None:
    inner = _Inner(PAGE, b"text/html; charset=utf-8")
    app = mlflow_ui.PulseMlflowApp(inner, table_metrics=lambda: COLUMNS)
    status, headers, body = _get(app, "/")
    assert status == 200 and body == mlflow_ui.with_defaults(PAGE, COLUMNS)
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"cache-control"] == b"no-cache" and b"etag" not in headers
    for path in ("/static-files/static/js/main.js", "/ajax-api/2.0/mlflow/experiments/search"):
        assert _get(app, path)[2] == PAGE  # everything else passes through untouched
    assert _get(app, "/", method="HEAD")[2] == PAGE
    assert inner.paths == ["/", "/static-files/static/js/main.js", "/ajax-api/2.0/mlflow/experiments/search", "/"]
    # not a page: as it is
    api = mlflow_ui.PulseMlflowApp(_Inner(b'{"a": 1}', b"application/json"), table_metrics=lambda: COLUMNS)
    assert _get(api, "/")[2] == b'{"a": 1}'
    missing = mlflow_ui.PulseMlflowApp(_Inner(PAGE, b"text/html", status=404), table_metrics=lambda: COLUMNS)
    assert _get(missing, "/")[2] == PAGE


def test_a_store_that_cannot_be_read_still_gets_the_view_default() -> None:
    def broken() -> dict:
        raise OSError("database is locked")

    app = mlflow_ui.PulseMlflowApp(_Inner(PAGE, b"text/html"), table_metrics=broken)
    defaults = _defaults(_get(app, "/")[2])
    assert defaults["mlflow.workflowType_v1"] == '"machine_learning"'
    assert not any(k.startswith("MLflowLocalStorage") for k in defaults)


def test_the_app_is_registered_for_mlflow_server() -> None:
    """`mlflow server --app-name pulse` finds the app, and runs it as an app (not as a factory to call)."""
    from importlib.metadata import entry_points

    from mlflow.server import _find_app, _is_factory

    [entry] = [ep for ep in entry_points(group="mlflow.app") if ep.name == mlflow_ui.APP_NAME]
    assert entry.value == "pulse.ui.mlflow_ui:app" == _find_app("pulse")
    assert not _is_factory(entry.value)
    assert isinstance(entry.load(), mlflow_ui.PulseMlflowApp)


def test_pulse_mlflow_runs_mlflow_server_with_the_app(monkeypatch, pulse_home, capsys) -> None:
    from pulse.cli import commands as cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: calls.append(argv))
    assert cli.main(["mlflow", "--port", "5123"]) == 0
    [argv] = calls
    assert argv[argv.index("--app-name") + 1] == "pulse" and argv[argv.index("--port") + 1] == "5123"
    assert argv[argv.index("--backend-store-uri") + 1] == tracking.tracking_uri(pulse_home.mlflow_db)
    err = capsys.readouterr().err
    assert "http://127.0.0.1:5123/#/experiments?workflowType=machine_learning" in err
    json.dumps(argv)  # plain strings
