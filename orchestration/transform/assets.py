import json
import os
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field

from ml.feature_snapshots import SNAPSHOT_DATES, SnapshotCoverage, snapshot_coverage
from orchestration.resources import PulseSettings, PulseStorage
from orchestration.transform.project import pulse_dbt_project
from pulse.batches import BatchReport, batch_report
from pulse.dbt_docs import DbtDocsError, generate_dbt_docs, project_stamp
from pulse.docs_server import DocsAddress, docs_address_for_links
from pulse.settings import PulsePaths

# Their materializations carry the batch's figures (docs/incremental.md).
BATCH_ASSETS = (dg.AssetKey("int_batch"), dg.AssetKey("qa_late_events"))
# Its materialization says how many snapshot dates feature_snapshots_max kept and dropped.
SNAPSHOT_ASSETS = (dg.AssetKey(SNAPSHOT_DATES), dg.AssetKey("user_feature_snapshots"))


class PulseDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:  # noqa: ANN001 - dagster-dbt's signature
        # models/ml/ (features and rule-based types) sit with the models that use them in the UI
        return "ml" if "ml" in dbt_resource_props.get("fqn", [])[1:-1] else "transform"


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


@dbt_assets(
    manifest=pulse_dbt_project.manifest_path,
    project=pulse_dbt_project,
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
    resolved = settings.resolve()
    paths = storage.paths()  # exports the resolved values dbt's profile reads (the warehouse, the engine...)
    # Every dbt var's effective value (settings.toml, environment, this run's overrides); dbt's artifacts and log
    # under PULSE_HOME, never in the checkout (its target/ holds only the manifest built at install time).
    args = config.dbt_args(resolved.dbt_vars(), log_path=paths.dbt_logs)
    # The batch assets' figures can only be read once dbt has let go of the warehouse (it holds DuckDB's lock),
    # and outputs must keep dbt's order (an asset after its dependencies): the events are yielded at the end.
    events: list = []
    build = dbt.cli(args, context=context, target_path=paths.dbt_target)
    try:
        for event in build.stream():
            events.append(event)
    except Exception:
        yield from events  # what dbt built before it failed is still materialized
        raise
    metadata: dict[dg.AssetKey, dict[str, dg.MetadataValue]] = {}
    built = {context.asset_key_for_output(e.output_name) for e in events if isinstance(e, dg.Output)}
    if built & {*BATCH_ASSETS, *SNAPSHOT_ASSETS}:
        with storage.open_warehouse(read_only=True) as warehouse:
            report = batch_report(warehouse) if built & set(BATCH_ASSETS) else None
            coverage = snapshot_coverage(warehouse) if built & set(SNAPSHOT_ASSETS) else None
        if report:
            metadata |= batch_metadata(report)
            (context.log.warning if report.late_events else context.log.info)(report.describe())
        if coverage:
            metadata |= snapshot_metadata(coverage)
            (context.log.warning if coverage.dropped else context.log.info)(coverage.describe())
    docs = docs_address_for_links(os.environ, context.log.warning)
    for event in events:
        extra = metadata.get(context.asset_key_for_output(event.output_name)) if isinstance(event, dg.Output) else None
        extra = {**(extra or {}), **(dbt_docs_metadata(docs, event) if isinstance(event, dg.Output) else {})}
        yield event.with_metadata({**event.metadata, **extra}) if extra else event
    # dbt has let go of the warehouse and this step still holds the `warehouse` pool: the docs' catalog cannot
    # collide with a writer here. Only when the project changed (pulse/dbt_docs.py); never fails the step.
    refresh_dbt_docs(storage.paths(), dbt.dbt_executable, build.target_path, context.log)


def dbt_docs_metadata(docs: DocsAddress | None, output: dg.Output) -> dict[str, dg.MetadataValue]:
    """A link from the model's materialization to its page in the dbt docs (served by `pulse ui`)."""
    unique_id = output.metadata.get("unique_id")
    value = getattr(unique_id, "value", unique_id)
    if docs is None or not isinstance(value, str):
        return {}
    return {"dbt_docs": dg.MetadataValue.url(docs.dbt_url(value))}


def refresh_dbt_docs(paths: PulsePaths, dbt_executable: str, build_target: Path, log: dg.DagsterLogManager) -> None:
    """The dbt docs the docs server serves, generated when the project changed; a failure is a warning."""
    try:
        stamp = project_stamp(pulse_dbt_project.manifest_path, paths.engine)
        docs = generate_dbt_docs(
            paths.home,
            dbt_executable=dbt_executable,
            project_dir=pulse_dbt_project.project_dir,
            profiles_dir=pulse_dbt_project.profiles_dir,
            stamp=stamp,
            build_target=build_target,
        )
    except (DbtDocsError, OSError) as exc:
        log.warning(f"dbt docs not generated (the run goes on; the docs server keeps the previous ones): {exc}")
        return
    if docs.generated:
        log.info(f"dbt docs generated in {docs.seconds:.1f} s into {docs.site}")
