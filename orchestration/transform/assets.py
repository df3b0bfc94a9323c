import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.resources import PulseStorage
from orchestration.transform.project import pulse_dbt_project


class PulseDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:  # noqa: ANN001 - dagster-dbt's signature
        # models/ml/ (features and rule-based types) sit with the models that use them in the UI
        return "ml" if "ml" in dbt_resource_props.get("fqn", [])[1:-1] else "transform"


@dbt_assets(
    manifest=pulse_dbt_project.manifest_path,
    project=pulse_dbt_project,
    pool="warehouse",
    dagster_dbt_translator=PulseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def pulse_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, storage: PulseStorage):
    storage.paths()  # exports the resolved PULSE_* paths so dbt's profile sees the same warehouse
    yield from dbt.cli(["build"], context=context).stream()
