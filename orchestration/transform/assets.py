import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field, field_validator

from orchestration.resources import PulseStorage
from orchestration.transform.project import pulse_dbt_project
from pulse.batches import BatchReport, batch_report
from pulse.relations import RelationFigures, relation_figures
from pulse.warehouse import Warehouse

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


def relation_name(node: Mapping[str, Any]) -> str:
    """A model's relation as pulse.warehouse names tables: without a schema."""
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
    # What dbt built (row counts, columns) and the batch assets' figures can only be read once dbt has let go
    # of the warehouse (it holds DuckDB's lock), and outputs must keep dbt's order (an asset after its
    # dependencies): the events are yielded at the end.
    invocation = dbt.cli(config.dbt_args(), context=context)
    events: list = []
    try:
        for event in invocation.stream():
            events.append(event)
    except Exception:
        yield from events  # what dbt built before it failed is still materialized
        raise
    outputs = [e for e in events if isinstance(e, dg.Output)]
    by_model: dict[str, dict[str, Any]] = {}
    batch: dict[dg.AssetKey, dict[str, dg.MetadataValue]] = {}
    with storage.open_warehouse(read_only=True) as warehouse:
        try:
            by_model = built_models_metadata(invocation.manifest, map(unique_id, outputs), warehouse)
        except Exception as error:  # noqa: BLE001 - figures to look at, never a reason to fail the run
            context.log.warning(f"row counts and column types were not read from the warehouse: {error}")
        if any(context.asset_key_for_output(e.output_name) in BATCH_ASSETS for e in outputs):
            report = batch_report(warehouse)
            if report:
                batch = batch_metadata(report)
                (context.log.warning if report.late_events else context.log.info)(report.describe())
    for event in events:
        if isinstance(event, dg.Output):
            extra = {
                **by_model.get(unique_id(event), {}),
                **batch.get(context.asset_key_for_output(event.output_name), {}),
            }
            event = event.with_metadata({**event.metadata, **extra}) if extra else event
        yield event
