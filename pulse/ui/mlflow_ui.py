"""The MLflow UI as ``pulse mlflow`` serves it: MLflow's own server app, opening pulse's experiments in the
model-training view with their key metrics as columns.

MLflow 3's UI has two views, switched in its sidebar: "GenAI apps & agents" (traces and evaluations; the
runs show no metrics) and "Model training" (the runs table, the model registry). Which one an experiment
opens in is the sidebar's choice (MLflow 3.17 no longer reads the experiment's ``mlflow.experimentKind`` tag
for it): the ``workflowType`` parameter of the page's address, else the choice kept in the browser's local
storage, else GenAI. And the runs table of an experiment shows only Source, Models and Dataset until the
user picks metric columns (kept per experiment in local storage too). So a first visit to pulse's
experiments shows neither the model's nor the baselines' figures.

This app adds to MLflow's page (``/``) one script, run before MLflow's own, that gives a browser which has
not chosen yet the defaults pulse's experiments need: the "Model training" view; for each experiment tagged
with :data:`TABLE_METRICS_TAG` (pulse's tracking code sets it: ``test_roc_auc,rfm_test_roc_auc,...``), a runs
table with those metrics as columns; and the MLflow Assistant panel (which needs an LLM provider) closed
instead of opened on the first visit. Whatever a browser has chosen stays: a default is written only where
its storage has no value. Every other request (API, artifacts, static files) goes to MLflow's app unchanged.

It is registered as the MLflow server app ``pulse`` (``[project.entry-points."mlflow.app"]`` in
pyproject.toml); ``pulse mlflow`` runs ``mlflow server --app-name pulse``. The storage keys and formats are
MLflow 3.17's (tests/unit/test_mlflow_views.py checks them against the installed UI bundle, and
tests/browser/mlflow.test.mjs opens the UI). MLflow's app is imported when the server starts (the first ASGI
call), not when this module is imported.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from pulse.core.mlflow_tags import TABLE_METRICS_TAG

__all__ = [
    "APP_NAME",
    "MODEL_TRAINING_WORKFLOW",
    "PulseMlflowApp",
    "app",
    "defaults_script",
    "experiment_table_metrics",
    "with_defaults",
]

APP_NAME = "pulse"  # the entry point's name in the group "mlflow.app"
MODEL_TRAINING_WORKFLOW = "machine_learning"

# MLflow 3.17's UI: useLocalStorage({key, version}) stores under `${key}_v${version}`, JSON-encoded; the
# experiment page's state under LocalStorageUtils' scope "ExperimentPage" + the sorted experiment ids.
WORKFLOW_KEY = "mlflow.workflowType_v1"
ASSISTANT_AUTO_OPENED_KEY = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"
EXPERIMENT_PAGE_KEY = "MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"
TABLE_ATTRIBUTES = ("Models",)  # beside the metrics: the registered model version of the run

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


def _column(group: str, name: str) -> str:
    return f"{group}.`{name}`"  # the runs table's column ids: attributes.`Models`, metrics.`test_roc_auc`


def defaults_script(table_metrics: Mapping[str, Sequence[str]]) -> bytes:
    """The ``<script>`` that stores pulse's defaults where the browser's local storage has none:
    ``table_metrics`` maps an experiment id to the metrics its runs table shows."""
    defaults = {WORKFLOW_KEY: json.dumps(MODEL_TRAINING_WORKFLOW), ASSISTANT_AUTO_OPENED_KEY: "true"}
    for experiment_id, metrics in sorted(table_metrics.items()):
        columns = [_column("attributes", a) for a in TABLE_ATTRIBUTES] + [_column("metrics", m) for m in metrics]
        key = EXPERIMENT_PAGE_KEY.format(ids=json.dumps([str(experiment_id)], separators=(",", ":")))
        defaults[key] = json.dumps({"selectedColumns": columns}, separators=(",", ":"))
    # "</" cannot end the script early: JSON escapes of "<" keep tag-like text out of the page
    payload = json.dumps(defaults, separators=(",", ":")).replace("<", "\\u003c")
    return (
        "<script>/* pulse: defaults for a browser that has not chosen (pulse/ui/mlflow_ui.py) */"
        f"try{{var d={payload};for(var k in d)if(localStorage.getItem(k)===null)localStorage.setItem(k,d[k])}}"
        "catch(e){}</script>"
    ).encode()


def with_defaults(html: bytes, table_metrics: Mapping[str, Sequence[str]]) -> bytes:
    """MLflow's page with :func:`defaults_script` first in its ``<head>`` (before the app's own scripts, which are
    deferred anyway). A page without a ``<head>`` is returned as it is."""
    lower = html.lower()
    start = lower.find(b"<head")
    end = lower.find(b">", start) if start >= 0 else -1
    if end < 0:
        return html
    return html[: end + 1] + defaults_script(table_metrics) + html[end + 1 :]


def experiment_table_metrics(store: Any) -> dict[str, list[str]]:
    """Experiment id -> metrics, for the active experiments of a tracking store tagged with
    :data:`TABLE_METRICS_TAG`."""
    found: dict[str, list[str]] = {}
    token = None
    while True:
        page = store.search_experiments(
            filter_string=f"tags.`{TABLE_METRICS_TAG}` LIKE '%'", max_results=1000, page_token=token
        )
        for experiment in page:
            metrics = [m.strip() for m in experiment.tags.get(TABLE_METRICS_TAG, "").split(",") if m.strip()]
            if metrics:
                found[str(experiment.experiment_id)] = metrics
        token = getattr(page, "token", None)
        if not token:
            return found


def _server_table_metrics() -> dict[str, list[str]]:
    """:func:`experiment_table_metrics` of the store this MLflow server serves."""
    from mlflow.server.handlers import _get_tracking_store

    return experiment_table_metrics(_get_tracking_store())


class PulseMlflowApp:
    """An ASGI app: ``inner`` (MLflow's server app, loaded on the first call when not given), with the page at
    ``/`` passed through :func:`with_defaults`. ``table_metrics`` reads the experiments' metric columns (default:
    from the server's tracking store); when it fails, the page still gets the other defaults. An instance, not a
    function: MLflow's server treats a function as an app factory."""

    def __init__(
        self, inner: ASGIApp | None = None, table_metrics: Callable[[], Mapping[str, Sequence[str]]] | None = None
    ) -> None:
        self._inner = inner
        self._table_metrics = table_metrics or _server_table_metrics

    @property
    def inner(self) -> ASGIApp:
        if self._inner is None:
            from mlflow.server.fastapi_app import app as mlflow_app  # what `mlflow server` runs without --app-name

            self._inner = mlflow_app
        return self._inner

    async def _metrics(self) -> Mapping[str, Sequence[str]]:
        try:
            return await asyncio.to_thread(self._table_metrics)
        except Exception:  # noqa: BLE001 - defaults are a convenience: the page is served without them
            log.warning("pulse: the experiments' default columns were not read", exc_info=True)
            return {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") != "/":
            await self.inner(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            page = bytes(body)
            if start.get("status") == 200 and content_type.startswith(b"text/html"):
                page = with_defaults(page, await self._metrics())
                # the page changes with the experiments: never reuse a cached copy
                dropped = (b"etag", b"last-modified", b"cache-control")
                headers = [(k, v) for k, v in headers if k.lower() not in dropped]
                headers.append((b"cache-control", b"no-cache"))
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.inner(scope, receive, capture)


app = PulseMlflowApp()
