"""pulse's Python, one subpackage per stage (docs/architecture.md has the map and the import rules):

- ``core``: what every stage shares (settings, the event contract, the warehouses, small utilities);
- ``collector``, ``importers``, ``demo``: the three ways events reach the landing zone;
- ``ingest``: landing files -> the raw tables, and how far the rest of the pipeline got;
- ``activation``: publishing the profiles and serving them;
- ``ui``: the docs server and the MLflow UI beside Dagster's;
- ``cli``: the ``pulse`` command, the one package that imports ``orchestration`` and Dagster.
"""
