import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field, field_validator

from orchestration.resources import PulseStorage
from orchestration.transform.project import pulse_dbt_project
from pulse.batches import BatchReport, batch_report
from pulse.dbt_docs import DbtDocsError, generate_dbt_docs, project_stamp
from pulse.docs_server import DocsAddress, docs_address_for_links
from pulse.settings import PulsePaths

# Their materializations carry the batch's figures (docs/incremental.md).
BATCH_ASSETS = (dg.AssetKey("int_batch"), dg.AssetKey("qa_late_events"))


class PulseDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:  # noqa: ANN001 - dagster-dbt's signature
        # models/ml/ (features and rule-based types) sit with the models that use them in the UI
        return "ml" if "ml" in dbt_resource_props.get("fqn", [])[1:-1] else "transform"


class DbtBuildConfig(dg.Config):
    """How `dbt build` runs: incremental by default (only what was ingested since the last committed run)."""

    reprocess_from: str = Field(
        default="",
        description="YYYY-MM-DD: also recompute every user with an event from that day on (folds in the events "
        "qa_late_events lists). Empty: only the new batch.",
    )
    full_refresh: bool = Field(default=False, description="Rebuild every model from raw.events.")

    @field_validator("reprocess_from")
    @classmethod
    def _a_date(cls, value: str) -> str:
        if value:
            date.fromisoformat(value)  # raises naming the bad value
        return value

    def dbt_args(self) -> list[str]:
        # dbt's unit tests check the SQL against fixed rows, not the data: they run in `make test`
        # (tests/integration/test_pipeline.py), not in every build (dbt's advice for production runs).
        args = ["build", "--exclude-resource-type", "unit_test"]
        if self.full_refresh:
            args.append("--full-refresh")
        if self.reprocess_from:
            args += ["--vars", json.dumps({"reprocess_from": self.reprocess_from})]
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


@dbt_assets(
    manifest=pulse_dbt_project.manifest_path,
    project=pulse_dbt_project,
    pool="warehouse",
    dagster_dbt_translator=PulseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def pulse_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, storage: PulseStorage, config: DbtBuildConfig
):
    storage.paths()  # exports the resolved PULSE_* paths so dbt's profile sees the same warehouse
    # The batch assets' figures can only be read once dbt has let go of the warehouse (it holds DuckDB's lock),
    # and outputs must keep dbt's order (an asset after its dependencies): the events are yielded at the end.
    events: list = []
    build = dbt.cli(config.dbt_args(), context=context)
    try:
        for event in build.stream():
            events.append(event)
    except Exception:
        yield from events  # what dbt built before it failed is still materialized
        raise
    metadata: dict[dg.AssetKey, dict[str, dg.MetadataValue]] = {}
    if any(isinstance(e, dg.Output) and context.asset_key_for_output(e.output_name) in BATCH_ASSETS for e in events):
        with storage.open_warehouse(read_only=True) as warehouse:
            report = batch_report(warehouse)
        if report:
            metadata = batch_metadata(report)
            (context.log.warning if report.late_events else context.log.info)(report.describe())
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
