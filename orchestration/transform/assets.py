import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field

from ml.feature_snapshots import SNAPSHOT_DATES, SnapshotCoverage, snapshot_coverage
from orchestration.resources import PulseSettings, PulseStorage, dbt_for_run
from orchestration.transform.project import pulse_dbt_project
from pulse.core.kill_points import DBT_RUNNING, kill_point
from pulse.core.relations import RelationFigures, relation_figures
from pulse.core.settings import Settings
from pulse.core.warehouse import Warehouse
from pulse.ingest.batches import BatchReport, batch_report
from pulse.ingest.watermark import batch_committed, record_modelled
from pulse.ui.dbt_docs import DbtDocsError, generate_dbt_docs, project_stamp
from pulse.ui.docs_server import DocsAddress, docs_address_for_links

# Their materializations carry the batch's figures (docs/incremental.md).
BATCH_ASSETS = (dg.AssetKey("int_batch"), dg.AssetKey("qa_late_events"))
# Its materialization says how many snapshot dates feature_snapshots_max kept and dropped.
SNAPSHOT_ASSETS = (dg.AssetKey(SNAPSHOT_DATES), dg.AssetKey("user_feature_snapshots"))


class PulseDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:  # noqa: ANN001 - dagster-dbt's signature
        # models/ml/ (features and rule-based types) sit with the models that use them in the UI; the profiles
        # and audiences with publishing
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        if "ml" in folders:
            return "ml"
        return "activation" if {"profiles", "audiences"} & set(folders) else "transform"


class DbtBuildConfig(dg.Config):
    """How `dbt build` runs: incremental by default (only what was ingested since the last committed run). dbt
    vars (reprocess_from included) are settings: the `settings` resource's overrides set them per run."""

    full_refresh: bool = Field(default=False, description="Rebuild every model from raw.events.")

    def dbt_args(self, dbt_vars: dict | None = None, log_path: Path | None = None) -> list[str]:
        # dbt's unit tests check the SQL against fixed rows, not the data: they run in `make test`
        # (tests/integration/test_pipeline.py), not in every build (dbt's advice for production runs).
        args = ["build", "--exclude-resource-type", "unit_test"]
        if self.full_refresh:
            args.append("--full-refresh")
        if dbt_vars is not None:
            args += ["--vars", json.dumps(dbt_vars, sort_keys=True)]
        if log_path is not None:
            args += ["--log-path", str(log_path)]
        return args


def batch_metadata(report: BatchReport) -> dict[dg.AssetKey, dict[str, dg.MetadataValue]]:
    return {
        dg.AssetKey("int_batch"): {
            "batch_rows": dg.MetadataValue.int(report.batch_rows),
            "first_load_date": dg.MetadataValue.text(str(report.first_load_date or "")),
            "last_load_date": dg.MetadataValue.text(str(report.last_load_date or "")),
            "full_build": dg.MetadataValue.bool(report.is_full),
            "users_recomputed": dg.MetadataValue.int(report.users_recomputed),
        },
        dg.AssetKey("qa_late_events"): {
            "late_events": dg.MetadataValue.int(report.late_events),
            "late_events_from": dg.MetadataValue.text(str(report.late_events_from or "")),
            "reprocess_command": dg.MetadataValue.text(
                f"pulse reprocess --from {report.late_events_from}" if report.late_events else ""
            ),
        },
    }


def snapshot_metadata(coverage: SnapshotCoverage) -> dict[dg.AssetKey, dict[str, dg.MetadataValue]]:
    figures = {
        "snapshots_kept": dg.MetadataValue.int(coverage.kept),
        "snapshots_dropped": dg.MetadataValue.int(coverage.dropped),
        "dropped_from": dg.MetadataValue.text(str(coverage.dropped_from or "")),
        "dropped_to": dg.MetadataValue.text(str(coverage.dropped_to or "")),
        "kept_from": dg.MetadataValue.text(str(coverage.kept_from or "")),
    }
    return {key: figures for key in SNAPSHOT_ASSETS}


def relation_name(node: Mapping[str, Any]) -> str:
    """A model's relation as pulse.core.warehouse names tables: without a schema."""
    return node.get("alias") or node["name"]


def relation_metadata(node: Mapping[str, Any], figures: RelationFigures | None) -> dict[str, Any]:
    """Dagster's table metadata for a built model: ``dagster/row_count`` (tables; views are not counted) and
    ``dagster/column_schema`` with every column of the built relation, its type, and its description from the
    model's YAML (the UI shows these on the asset). Empty when the relation was not found."""
    if figures is None:
        return {}
    documented = node.get("columns", {})
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name, type=kind.lower(), description=documented.get(name, {}).get("description") or None
            )
            for name, kind in figures.columns
        ]
    )
    metadata: dict[str, Any] = {"dagster/column_schema": dg.MetadataValue.table_schema(schema)}
    if figures.row_count is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(figures.row_count)
    return metadata


def built_models_metadata(
    manifest: Mapping[str, Any], unique_ids: Iterable[str], warehouse: Warehouse
) -> dict[str, dict[str, Any]]:
    """:func:`relation_metadata` of each built model among ``unique_ids`` (tests and other nodes left out), read
    from ``warehouse`` after dbt has finished."""
    nodes = manifest.get("nodes", {})
    models = {uid: nodes[uid] for uid in unique_ids if nodes.get(uid, {}).get("resource_type") == "model"}
    views = {relation_name(n): n.get("config", {}).get("materialized") == "view" for n in models.values()}
    figures = relation_figures(warehouse, views)
    return {uid: relation_metadata(node, figures.get(relation_name(node))) for uid, node in models.items()}


def unique_id(event: dg.Output) -> str:
    value = event.metadata.get("unique_id")  # dagster-dbt's: the dbt node
    return str(getattr(value, "value", value) or "")


# The models tagged `after_ml` (models/profiles, models/audiences) read the tables the Python model steps write:
# a second definition builds them after those steps (orchestration/activation/assets.py).
AFTER_ML = "tag:after_ml"
# Figures of the built models, read from the warehouse once dbt is done: asset key -> metadata
ModelFigures = Callable[[Warehouse, set[dg.AssetKey], dg.DagsterLogManager], dict[dg.AssetKey, dict[str, Any]]]


@dbt_assets(
    manifest=pulse_dbt_project.manifest_path,
    project=pulse_dbt_project,
    exclude=AFTER_ML,
    pool="warehouse",
    dagster_dbt_translator=PulseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def pulse_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    storage: PulseStorage,
    settings: PulseSettings,
    config: DbtBuildConfig,
):
    yield from build_dbt_models(context, dbt, storage, settings, config, figures=batch_and_snapshot_figures)


def batch_and_snapshot_figures(
    warehouse: Warehouse, built: set[dg.AssetKey], log: dg.DagsterLogManager
) -> dict[dg.AssetKey, dict[str, Any]]:
    """The batch assets' and the snapshot dates' figures, when they were built (logged too)."""
    metadata: dict[dg.AssetKey, dict[str, Any]] = {}
    report = batch_report(warehouse) if built & set(BATCH_ASSETS) else None
    coverage = snapshot_coverage(warehouse) if built & set(SNAPSHOT_ASSETS) else None
    if report:
        metadata |= batch_metadata(report)
        (log.warning if report.late_events else log.info)(report.describe())
    if coverage:
        metadata |= snapshot_metadata(coverage)
        (log.warning if coverage.dropped else log.info)(coverage.describe())
    return metadata


def build_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    storage: PulseStorage,
    settings: PulseSettings,
    config: DbtBuildConfig,
    figures: ModelFigures | None = None,
):
    """`dbt build` of the context's selection (both dbt asset definitions run it): the events of what dbt
    built, with row counts, columns, a link to the dbt docs and ``figures``' metadata."""
    resolved = settings.resolve()
    paths = storage.paths()
    home = storage.settings()  # what dbt's profile reads (the warehouse, the engine...), given to dbt explicitly
    # Every dbt var's effective value (settings.toml, environment, this run's overrides); dbt's artifacts and log
    # under PULSE_HOME, never in the checkout (its target/ holds only the manifest built at install time).
    args = config.dbt_args(resolved.dbt_vars(), log_path=paths.dbt_logs)
    # What dbt built (row counts, columns), the batch assets' and the snapshot dates' figures can only be read
    # once dbt has let go of the warehouse (it holds DuckDB's lock), and outputs must keep dbt's order (an asset
    # after its dependencies): the events are yielded at the end.
    events: list = []
    invocation = dbt_for_run(dbt, home).cli(args, context=context, target_path=paths.dbt_target)
    try:
        for event in invocation.stream():
            events.append(event)
            if isinstance(event, dg.Output):
                kill_point(DBT_RUNNING)
    except Exception:
        yield from events  # what dbt built before it failed is still materialized
        raise
    # dbt committed its batch: the models hold every ingested landing file (pulse/ingest/watermark.py)
    if batch_committed(invocation.manifest, invocation.get_artifact("run_results.json").get("results", [])):
        with storage.connect() as con:
            record_modelled(con)
    outputs = [e for e in events if isinstance(e, dg.Output)]
    built = {context.asset_key_for_output(e.output_name) for e in outputs}
    by_model: dict[str, dict[str, Any]] = {}
    metadata: dict[dg.AssetKey, dict[str, Any]] = {}
    with storage.open_warehouse(read_only=True) as warehouse:
        try:
            by_model = built_models_metadata(invocation.manifest, map(unique_id, outputs), warehouse)
        except Exception as error:  # noqa: BLE001 - figures to look at, never a reason to fail the run
            context.log.warning(f"row counts and column types were not read from the warehouse: {error}")
        if figures is not None:
            metadata |= figures(warehouse, built, context.log)
    docs = docs_address_for_links(context.log.warning)
    for event in events:
        if isinstance(event, dg.Output):
            extra = {
                **by_model.get(unique_id(event), {}),
                **metadata.get(context.asset_key_for_output(event.output_name), {}),
                **dbt_docs_metadata(docs, event),
            }
            event = event.with_metadata({**event.metadata, **extra}) if extra else event
        yield event
    # dbt has let go of the warehouse and this step still holds the `warehouse` pool: the docs' catalog cannot
    # collide with a writer here. Only when the project changed (pulse/ui/dbt_docs.py); never fails the step.
    refresh_dbt_docs(home, dbt.dbt_executable, invocation.target_path, context.log)


def dbt_docs_metadata(docs: DocsAddress | None, output: dg.Output) -> dict[str, dg.MetadataValue]:
    """A link from the model's materialization to its page in the dbt docs (served by `pulse ui`)."""
    unique_id = output.metadata.get("unique_id")
    value = getattr(unique_id, "value", unique_id)
    if docs is None or not isinstance(value, str):
        return {}
    return {"dbt_docs": dg.MetadataValue.url(docs.dbt_url(value))}


def refresh_dbt_docs(settings: Settings, dbt_executable: str, build_target: Path, log: dg.DagsterLogManager) -> None:
    """The dbt docs the docs server serves, generated when the project changed; a failure is a warning."""
    paths = settings.paths
    try:
        stamp = project_stamp(pulse_dbt_project.manifest_path, paths.engine)
        docs = generate_dbt_docs(
            paths.home,
            dbt_executable=dbt_executable,
            project_dir=pulse_dbt_project.project_dir,
            profiles_dir=pulse_dbt_project.profiles_dir,
            stamp=stamp,
            build_target=build_target,
            environ=settings.dbt_env(),
        )
    except (DbtDocsError, OSError) as exc:
        log.warning(f"dbt docs not generated (the run goes on; the docs server keeps the previous ones): {exc}")
        return
    if docs.generated:
        log.info(f"dbt docs generated in {docs.seconds:.1f} s into {docs.site}")
