"""Great Expectations suites (versioned files) and the runner used by the Dagster asset checks and tests.

suites/<name>.json   a GX 1.x ExpectationSuite; every expectation's GX severity says blocking
                     (``critical``) or warning (``warning``); meta.pulse.asset names the checked asset
metrics/<name>.sql   the DuckDB query computing the small DataFrame the suite validates
runner.py            run_suite / run_suites: metrics query -> GX validation -> Data Docs (no Dagster)

GX's SQL datasource returns empty results on DuckDB (GX issues #10738, #11579) and pandas on the full
tables does not scale, so the warehouse computes aggregates and GX validates those (docs/quality.md).
"""
