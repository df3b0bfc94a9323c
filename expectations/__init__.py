"""Great Expectations suites (versioned files) and the runner used by Dagster asset checks and tests.

Filled in by the data-quality issue: GX's SQL datasource returns empty results on DuckDB (GX issues
#10738, #11579), so suites will run on DataFrames read from the warehouse.
"""
