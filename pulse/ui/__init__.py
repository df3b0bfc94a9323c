"""The web UIs beside Dagster's: the docs server (Data Docs and dbt docs, ``docs_server``), the dbt docs it
serves (``dbt_docs``) and the MLflow UI of ``pulse mlflow`` (``mlflow_ui``). No Dagster here: orchestration
imports this package for the docs links, so it must not import the CLI."""
