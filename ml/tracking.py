"""MLflow bookkeeping for segmentation: one run per fit, a registered pyfunc model, the ``champion`` alias.

With :mod:`ml.intent_tracking` (which reuses its store helpers: :func:`using_store`, :func:`experiment_id_for`)
this is the only code in pulse that imports MLflow, and it does so inside functions: ``import mlflow``
costs ~1.4 s here, which code that only segments (or a Dagster definitions load) should not pay.

Layout
  * Tracking store: SQLite, ``tracking_uri(mlflow_db)`` -> ``sqlite:///<abs path>/mlflow.db`` (the file
    store is refused by MLflow 3). Experiments this module creates keep their artifacts beside the database,
    in ``<db dir>/mlartifacts/`` (:func:`artifact_location`). Against an HTTP tracking server the server's
    default artifact root is used.
  * Experiments are marked as model training (tag ``mlflow.experimentKind = custom_model_development``,
    :func:`experiment_id_for`; also on experiments created before), not GenAI, and tagged with the metrics
    their runs table shows by default in ``pulse mlflow`` (``pulse.runs_table_metrics``, pulse.ui.mlflow_ui).
  * Experiment ``pulse-segmentation``, one run per :func:`~ml.segmentation.fit_segments`, named
    ``segments k=4 as of 2026-10-31 v3`` (:func:`segmentation_run_name`; the version is added once registered):
      params    the config (features, k range, seed, n_init, silhouette sample, tolerance, fill/cap,
                matching thresholds, near-constant share, min features), users, as_of_date, the previous
                champion version, ``features_used`` and ``features_dropped`` (features on which (nearly)
                every user has one value; the reasons are the run tag ``pulse.features_dropped``, and the
                run's warning the tag ``pulse.warning``)
      metrics   ``silhouette_by_k`` and ``inertia_by_k`` as step metrics (step = k, for the chart), and
                ``silhouette_k{k}``, ``chosen_k``, ``silhouette``, ``ward_silhouette``, ``ward_kmeans_ari``,
                ``n_users``, ``silhouette_sample_size``, ``fit_seconds``; with a previous champion
                ``segments_kept/new/retired``, ``id_agreement_vs_previous`` and, when the caller passes it,
                ``ari_vs_previous``
      artifacts ``silhouette_vs_k.png``, ``segment_sizes.png``, ``segment_profile.csv``,
                ``segment_model.json``, and ``segment_matching.csv`` when matched to a previous model
  * Registered model ``pulse_segments``: every refit registers a new version of a pyfunc model
    (:class:`SegmentPyfunc`: ``predict(frame of the features) -> segment_id, segment_name, distance``; the
    segments themselves travel as the ``segment_model.json`` model artifact, nothing of them is pickled).
    Loading the pyfunc needs the ``ml`` package importable (it is part of the pulse distribution); the
    model's pip requirements list numpy, pandas, scikit-learn and scipy at the versions that wrote it.

Registration, one path for every model (:func:`register_version`, also used by :mod:`ml.intent_tracking`):
the caller decides before logging whether the new version replaces the champion (segments:
ml.segment_promotion's refit rule; purchase intent: :func:`ml.intent_tracking.decide_promotion`); the decision
and its reason are run tags (``pulse.decision``, ``pulse.decision_reason``) and version tags (``decision``
promoted / not_promoted, ``decision_reason``); every new version gets ``challenger``, and ``champion`` moves
to it as the *last* step, only when promoted, so a version only becomes champion if the run, its artifacts and
the model were all logged; a failure anywhere leaves the previous champion in place (and the run marked
FAILED). ``models:/pulse_segments@champion`` is what assignment uses (aliases, never stages). Moving the alias
back to an older version is a rollback, moving it to a refused challenger a promotion by hand; versions are
never deleted here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.segmentation import SegmentationResult, SegmentModel
from pulse.core.mlflow_tags import TABLE_METRICS_TAG

__all__ = [
    "CHAMPION",
    "alias_version",
    "CHALLENGER",
    "EXPERIMENT",
    "EXPERIMENT_KIND_TAG",
    "MODEL_TRAINING_KIND",
    "REGISTERED_MODEL",
    "TrackedRun",
    "VersionInfo",
    "artifact_location",
    "champion_version",
    "load_champion",
    "champion_info",
    "experiment_id_for",
    "latest_version",
    "log_segmentation_run",
    "register_version",
    "decision_run_tags",
    "now_ms",
    "segmentation_run_name",
    "tracking_uri",
    "ui_run_url",
    "using_store",
]

EXPERIMENT = "pulse-segmentation"
# How MLflow marks an experiment's kind. MLflow 3's UI offers "GenAI apps & agents" (traces, no metric
# columns) and "Machine learning" / "Model training" (the runs table with params and metrics): pulse's
# experiments are model training. MLflow 3.17's UI takes the view from its sidebar switch, whose default
# pulse's own server sets (pulse.ui.mlflow_ui); the tag says the same for the UIs that read it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# The segmentation runs table's default metric columns in `pulse mlflow` (pulse.ui.mlflow_ui).
TABLE_METRICS = ("chosen_k", "silhouette", "ward_silhouette", "n_users", "id_agreement_vs_previous", "ari_vs_previous")
REGISTERED_MODEL = "pulse_segments"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_NAME = "segment_model"  # the logged model's name within the run
MODEL_ARTIFACT = "segment_model.json"


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    model_version: str
    model_uri: str  # models:/<name>/<version>
    alias: str  # champion, or challenger when not promoted
    url: str | None  # the run in the MLflow UI, when its address is known


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version: its number, its tags and when it was registered (UTC, naive, to the second)."""

    version: str
    tags: dict[str, str]
    created_at: datetime | None


def tracking_uri(store: Path | str) -> str:
    """The tracking URI of ``store``: a URI (``http://mlflow.internal:5000``, ``postgresql://...``) as is, a path
    as ``sqlite:///<absolute path>`` of that tracking database (four slashes on POSIX: an absolute path)."""
    if isinstance(store, str) and "://" in store:
        return store
    return f"sqlite:///{Path(store).expanduser().resolve()}"


def artifact_location(uri: str) -> str | None:
    """Where experiments created here keep artifacts: ``<db dir>/mlartifacts`` for SQLite, else the server's."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :])
    return (db.parent / "mlartifacts").as_uri()


def _drop_cloudpickle_advice(record: logging.LogRecord) -> bool:
    return "CloudPickle" not in record.getMessage()


@contextmanager
def using_store(uri: str) -> Iterator[Any]:
    """Point MLflow's process-wide tracking and registry URIs at ``uri`` (MLflow's API; pulse writes no
    environment variable); restore them afterwards."""
    import mlflow

    had_tracking = mlflow.is_tracking_uri_set()
    saved_tracking = mlflow.get_tracking_uri() if had_tracking else None
    saved_registry = mlflow.get_registry_uri()
    registry_was_explicit = saved_registry != mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow chats on stderr (database migrations, "Successfully registered model", a CloudPickle advisory
    # about python_model objects): keep its warnings and errors, drop the rest from pulse's output.
    mlflow_logger = logging.getLogger("mlflow")
    saved_level = mlflow_logger.level
    mlflow_logger.setLevel(logging.WARNING)
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    pyfunc_logger.addFilter(_drop_cloudpickle_advice)
    chatter = io.StringIO()  # also takes MLflow's artifact progress bars (tqdm writes to stderr)
    try:
        with contextlib.redirect_stderr(chatter):
            yield mlflow
    finally:
        mlflow_logger.setLevel(saved_level)
        pyfunc_logger.removeFilter(_drop_cloudpickle_advice)
        mlflow.set_tracking_uri(saved_tracking)
        mlflow.set_registry_uri(saved_registry if registry_was_explicit else None)


def experiment_id_for(client: Any, name: str, uri: str, table_metrics: Sequence[str] = ()) -> str:
    """The id of the experiment ``name``, created if need be, with the tags that make the MLflow UI show it as a
    model-training experiment (:data:`EXPERIMENT_KIND_TAG`) and, when given, ``table_metrics`` as the runs
    table's default columns (:data:`pulse.core.mlflow_tags.TABLE_METRICS_TAG`). An experiment created before gets
    them now."""
    tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
    if table_metrics:
        tags[TABLE_METRICS_TAG] = ",".join(table_metrics)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location(uri), tags=tags)
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def segmentation_run_name(chosen_k: int, as_of_date: object, version: str | None = None) -> str:
    """``segments k=4 as of 2026-10-31 v3``: what the run found, on which data, and the registered version
    (known only once the model is registered; the run is renamed then)."""
    name = f"segments k={chosen_k}"
    if as_of_date:
        name += f" as of {as_of_date}"
    return f"{name} v{version}" if version else name


def _pyfunc_class() -> type:
    """The PythonModel subclass, defined on first use so that importing this module does not import MLflow.

    It is published as the module attribute ``SegmentPyfunc`` (see ``__getattr__``) with a matching
    ``__qualname__``, so cloudpickle stores it *by reference* (``ml.tracking.SegmentPyfunc``), not by value.
    """
    cls = globals().get("SegmentPyfunc")
    if cls is not None:
        return cls
    import mlflow.pyfunc

    class SegmentPyfunc(mlflow.pyfunc.PythonModel):
        """Assigns users to the segments of the ``segment_model`` artifact (a SegmentModel as JSON)."""

        def __init__(self) -> None:
            self.model: SegmentModel | None = None

        def load_context(self, context: Any) -> None:
            self.model = SegmentModel.from_json(Path(context.artifacts["segment_model"]).read_text())

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            if self.model is None:
                raise RuntimeError("the segment model was not loaded (load_context not called)")
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return self.model.predict_frame(frame).reset_index(drop=True)

    SegmentPyfunc.__module__ = __name__
    SegmentPyfunc.__qualname__ = "SegmentPyfunc"
    globals()["SegmentPyfunc"] = SegmentPyfunc
    return SegmentPyfunc


def __getattr__(name: str) -> Any:  # PEP 562: ml.tracking.SegmentPyfunc resolves lazily (unpickling uses it)
    if name == "SegmentPyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _signature(model: SegmentModel, df: pd.DataFrame) -> Any:
    """Inputs inferred from the whole feature frame, so its dtypes (int64, nullable Int64, float64) and its
    nullable columns are what the model expects later; outputs segment_id (long), segment_name, distance."""
    from mlflow.models import infer_signature

    features = df[list(model.features)]
    output = model.predict_frame(features.head(20)).reset_index(drop=True)
    with warnings.catch_warnings():  # "integer columns cannot hold missing values": they are counts, by design
        warnings.simplefilter("ignore", UserWarning)
        return infer_signature(features, output)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")]


def _plot_silhouette(result: SegmentationResult, path: Path) -> None:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend switch

    ks = sorted(result.silhouettes)
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    ax.plot(ks, [result.silhouettes[k] for k in ks], marker="o", label="K-Means silhouette")
    ax.scatter(
        [result.chosen_k], [result.silhouette], s=160, facecolors="none", edgecolors="C3", zorder=3, label="chosen k"
    )
    ax.scatter(
        [result.chosen_k], [result.ward_silhouette], marker="x", s=60, color="C2", zorder=4, label="Ward, chosen k"
    )
    ax.set_xlabel("k (segments)")
    ax.set_ylabel(f"silhouette (sample of {result.sample_size:,} users)")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"Choosing k: {result.n_users:,} users, k = {result.chosen_k}")
    fig.tight_layout()
    fig.savefig(path)


def _plot_sizes(result: SegmentationResult, path: Path) -> None:
    from matplotlib.figure import Figure

    prof = result.profile[result.profile["segment_id"] >= 0].sort_values("users")
    labels = [f"{sid}: {name}" for sid, name in zip(prof["segment_id"], prof["segment_name"], strict=True)]
    fig = Figure(figsize=(6.4, 0.5 * len(prof) + 1.4), dpi=100)
    ax = fig.add_subplot()
    bars = ax.barh(labels, prof["users"], color="C0")
    for bar, share in zip(bars, prof["share"], strict=True):
        ax.annotate(
            f" {share:.1%}",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            va="center",
            fontsize="small",
        )
    ax.set_xlabel("users")
    ax.set_xlim(0, prof["users"].max() * 1.15)
    ax.set_title("Segment sizes")
    fig.tight_layout()
    fig.savefig(path)


def ui_run_url(ui_url: str | None, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI at ``ui_url``, in the model-training view (``workflowType``)."""
    if not ui_url:
        return None
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def log_segmentation_run(
    result: SegmentationResult,
    df: pd.DataFrame,
    tracking_uri: str,
    experiment: str = EXPERIMENT,
    registered_model: str = REGISTERED_MODEL,
    *,
    ari_vs_previous: float | None = None,
    previous_version: str | None = None,
    promote: bool = True,
    decision_reason: str | None = None,
    ui_url: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    version_tags: Mapping[str, str] | None = None,
    extra_metrics: Mapping[str, float | None] | None = None,
) -> TrackedRun:
    """Log one fit as a run, register its model as a new version (``challenger``) and, when ``promote``, point
    ``champion`` at it (:func:`register_version`, the registration path both models share).

    ``df`` is the feature frame the result was fitted on (it provides the model signature). ``promote`` and
    ``decision_reason`` are the caller's decision (ml.segment_promotion: the refit rule), tagged on the run and
    the version. ``ui_url`` (e.g. ``http://127.0.0.1:5000``) only builds the returned link. ``version_tags`` are
    set on the new version (e.g. ``input_fingerprint``, which the next run compares its inputs with);
    ``extra_metrics`` are logged on the run (e.g. the champion's silhouette on the same sample).
    """
    if decision_reason is None:
        decision_reason = "promoted by the caller" if promote else "registered as challenger by the caller"
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    with using_store(tracking_uri) as mlflow:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = experiment_id_for(client, experiment, tracking_uri, TABLE_METRICS)
        model = result.model
        as_of_date = model.info.get("as_of_date")
        run_tags = {
            "pulse.model": "segmentation",
            "pulse.as_of_date": str(as_of_date),
            **decision_run_tags(promote, decision_reason),
        }
        if result.features_dropped:  # the run's warning, where the MLflow UI shows it
            run_tags["pulse.features_dropped"] = "; ".join(f"{f}: {why}" for f, why in result.features_dropped.items())
            run_tags["pulse.warning"] = " | ".join(result.warnings)
        run_tags.update(tags or {})
        name = run_name or segmentation_run_name(result.chosen_k, as_of_date)
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=run_tags) as run:
            run_id = run.info.run_id
            params = dict(result.config.params())
            params.update(
                {
                    "n_users": result.n_users,
                    "as_of_date": model.info.get("as_of_date"),
                    "previous_version": previous_version,
                    "features_used": ",".join(model.transform.features),
                    "features_dropped": ",".join(result.features_dropped) or "none",
                }
            )
            metrics = dict(result.metrics())
            if ari_vs_previous is not None:
                metrics["ari_vs_previous"] = float(ari_vs_previous)
            metrics.update({k: float(v) for k, v in (extra_metrics or {}).items() if v is not None})
            now = now_ms()
            batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and np.isfinite(v)]
            for k in sorted(result.silhouettes):
                if np.isfinite(result.silhouettes[k]):
                    batch.append(Metric("silhouette_by_k", result.silhouettes[k], now, k))
                batch.append(Metric("inertia_by_k", result.inertias[k], now, k))
            client.log_batch(
                run_id,
                metrics=batch,
                params=[Param(k, str(v)) for k, v in params.items() if v is not None],
            )

            with tempfile.TemporaryDirectory(prefix="pulse-seg-") as tmp, warnings.catch_warnings():
                out = Path(tmp)
                _plot_silhouette(result, out / "silhouette_vs_k.png")
                _plot_sizes(result, out / "segment_sizes.png")
                result.profile.to_csv(out / "segment_profile.csv", index=False)
                (out / MODEL_ARTIFACT).write_text(model.to_json())
                if result.match is not None:
                    result.match.to_frame().to_csv(out / "segment_matching.csv", index=False)
                client.log_artifacts(run_id, str(out))

                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    python_model=_pyfunc_class()(),
                    artifacts={"segment_model": str(out / MODEL_ARTIFACT)},
                    signature=_signature(model, df),
                    pip_requirements=_pip_requirements(),
                    registered_model_name=registered_model,
                )
        version = str(info.registered_model_version)
        if run_name is None:  # the version is part of the name: known only now
            client.update_run(run_id, name=segmentation_run_name(result.chosen_k, as_of_date, version))
        register_version(
            client,
            registered_model,
            version,
            run_id=run_id,
            promote=promote,
            reason=decision_reason,
            tags={
                "chosen_k": result.chosen_k,
                "silhouette": round(result.silhouette, 4),
                "n_users": result.n_users,
                "as_of_date": model.info.get("as_of_date"),
                "segments": "; ".join(f"{i}={n}" for i, n in zip(model.segment_ids, model.names, strict=True)),
                "features_used": ",".join(model.transform.features),
                "features_dropped": ",".join(result.features_dropped) or "none",
                "previous_champion_version": previous_version,
                **(version_tags or {}),
            },
        )
        alias = CHAMPION if promote else CHALLENGER
    return TrackedRun(
        run_id=run_id,
        experiment_id=experiment_id,
        model_version=version,
        model_uri=f"models:/{registered_model}/{version}",
        alias=alias,
        url=ui_run_url(ui_url, experiment_id, run_id),
    )


DECISION_TAG = "decision"  # on a model version: promoted / not_promoted
DECISION_REASON_TAG = "decision_reason"
PROMOTED, NOT_PROMOTED = "promoted", "not_promoted"


def decision_run_tags(promote: bool, reason: str) -> dict[str, str]:
    """The decision as run tags (``pulse.decision``, ``pulse.decision_reason``), where the MLflow UI's runs show it."""
    return {"pulse.decision": PROMOTED if promote else NOT_PROMOTED, "pulse.decision_reason": reason}


def register_version(
    client: Any,
    registered_model: str,
    version: str,
    *,
    run_id: str,
    promote: bool,
    reason: str,
    tags: Mapping[str, object] | None = None,
) -> str | None:
    """The one way a logged model version joins the registry, for every pulse model (segments, purchase intent):

    1. its tags: ``tags`` (the model's own facts), ``run_id``, and the decision (:data:`DECISION_TAG` promoted /
       not_promoted, :data:`DECISION_REASON_TAG` why: the caller's rule decided before logging);
    2. the alias ``challenger`` (the latest candidate, promoted or not);
    3. last, only when ``promote``: the alias ``champion``, so a version is champion only once completely logged
       and tagged; a failure anywhere before leaves the champion where it was.

    Returns the champion version after this step (None: none)."""
    values = {
        **{key: str(value) for key, value in (tags or {}).items() if value is not None},
        "run_id": run_id,
        DECISION_TAG: PROMOTED if promote else NOT_PROMOTED,
        DECISION_REASON_TAG: reason,
    }
    for key, value in values.items():
        client.set_model_version_tag(registered_model, version, key, value)
    client.set_registered_model_alias(registered_model, CHALLENGER, version)
    if promote:
        client.set_registered_model_alias(registered_model, CHAMPION, version)
        return version
    return alias_version(client, registered_model)


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def champion_version(tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> str | None:
    """The version number ``champion`` points at, or None (no registered model, or no champion yet)."""
    from mlflow import MlflowClient

    return alias_version(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), registered_model)


def alias_version(client: Any, registered_model: str, alias: str = CHAMPION) -> str | None:
    """The version ``alias`` points at through an MlflowClient, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(registered_model, alias).version)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(e).lower():
            return None
        raise


def _no_store(uri: str) -> bool:
    """A SQLite store that does not exist yet: nothing was ever logged (and looking must not create it)."""
    return uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists()


def _version_info(version: Any) -> VersionInfo:
    created = version.creation_timestamp
    return VersionInfo(
        version=str(version.version),
        tags=dict(version.tags or {}),
        created_at=None if not created else datetime.fromtimestamp(created // 1000, UTC).replace(tzinfo=None),
    )


def latest_version(tracking_uri: str, registered_model: str) -> VersionInfo | None:
    """The most recently registered version of ``registered_model`` (whatever its aliases), or None."""
    if _no_store(tracking_uri):
        return None
    with using_store(tracking_uri) as mlflow:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        found = client.search_model_versions(
            f"name = '{registered_model}'", max_results=1, order_by=["version_number DESC"]
        )
        return _version_info(found[0]) if found else None


def champion_info(tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> VersionInfo | None:
    """The version ``champion`` points at, with its tags and registration time; None without one."""
    if _no_store(tracking_uri):
        return None
    with using_store(tracking_uri) as mlflow:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = alias_version(client, registered_model)
        return None if version is None else _version_info(client.get_model_version(registered_model, version))


def load_champion(tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> SegmentModel | None:
    """The champion's :class:`SegmentModel` (read from the model's JSON artifact; nothing is unpickled)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///") :]).exists():
        return None  # no database yet: nothing was ever logged (and do not create one by looking)
    version = champion_version(tracking_uri, registered_model)
    if version is None:
        return None
    with using_store(tracking_uri) as mlflow, tempfile.TemporaryDirectory(prefix="pulse-champion-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{registered_model}/{version}", dst_path=tmp)
        found = sorted(Path(local).rglob(MODEL_ARTIFACT))
        if not found:
            raise FileNotFoundError(f"{MODEL_ARTIFACT} missing from models:/{registered_model}/{version}")
        return SegmentModel.from_json(found[0].read_text())
