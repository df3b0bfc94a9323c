"""The dbt project, in a module of its own: @dbt_assets needs target/manifest.json when definitions load,
and that manifest is built at install time (`pulse prepare`, run by `make`), not here."""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

pulse_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
