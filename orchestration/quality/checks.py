"""Great Expectations gates as Dagster asset checks, one per suite file in expectations/suites/.

A `critical` suite is a blocking check (severity ERROR): when it fails, its step fails after reporting
every result, and Dagster skips the assets downstream of the checked asset that run in LATER steps. A
`warning` suite (drift) reports with severity WARN and never blocks.

Two steps, because blocking only works across steps:
  - `gx_raw_events_checks` runs after the ingestion and before the dbt step: a failing raw gate stops
    every dbt model in the run.
  - `gx_model_checks` runs after the dbt step (stg_events, fct_sessions, fct_user_daily, dim_users are
    all built inside that one `dbt build` step, where dbt's own tests are the gate). A failing model
    gate stops whatever reads those tables in later steps (features, activation).
Each step opens the warehouse read-only, runs its suites' metrics queries and validates them in one GX
context per process (see expectations/runner.py), and builds Data Docs once. The checks' Data Docs links
point at the docs server (PULSE_DOCS_URL, pulse/ui/docs_server.py) that `pulse ui` starts beside Dagster.
"""

from datetime import date
from urllib.parse import urlsplit
from urllib.request import url2pathname

import dagster as dg

from expectations.runner import BLOCKING, SuiteResult, SuiteSpec, prepare, run_suites, suite_specs
from orchestration.partitions import PARTITION_TAG, RANGE_START_TAG
from orchestration.resources import PulseStorage
from pulse.ui.docs_server import DocsAddress, docs_address_for_links

RAW_ASSETS = frozenset({"raw_events"})
MAX_TABLE_ROWS = 40  # rows of a per-day metrics table shown in the check's metadata


def check_name(spec: SuiteSpec) -> str:
    return f"gx_{spec.name}"


def check_key(spec: SuiteSpec) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(spec.asset), check_name(spec))


def run_since(tags: dict[str, str]) -> date | None:
    """The first landing day of the run (a range backfill or one partition); None: the latest day."""
    for tag in (RANGE_START_TAG, PARTITION_TAG):
        if tags.get(tag):
            return date.fromisoformat(tags[tag])
    return None


def _markdown_table(rows: list[dict], limit: int = MAX_TABLE_ROWS) -> str:
    if not rows:
        return "(no rows evaluated)"
    shown = rows[-limit:]
    columns = list(shown[0])

    def cell(v: object) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in shown]
    if len(rows) > limit:
        lines.append(f"\n(last {limit} of {len(rows)} rows)")
    return "\n".join(lines)


def check_metadata(
    spec: SuiteSpec, result: SuiteResult, since: date | None, docs: DocsAddress | None = None
) -> dict[str, object]:
    """What the Dagster UI shows: the failures and observed values, readable without Data Docs. The Data Docs
    links are http:// links to the docs server at ``docs`` (a browser does not follow a file:// link from the
    UI); without ``docs`` (PULSE_DOCS_URL unusable), the file:// ones."""
    meta: dict[str, object] = {
        "suite": dg.MetadataValue.path(str(spec.path)),
        "metrics_query": dg.MetadataValue.path(str(spec.metrics_path)),
        "severity": spec.severity,
        "expectations": result.evaluated,
        "failed_expectations": len(result.failures),
        "evaluated_from": since.isoformat() if since else "latest day",
        "seconds": round(sum(result.seconds.values()), 3),
    }
    if result.failures:
        rows = [
            f"| {f.column} | {f.expectation} | {f.expected} | {f.error or f.observed} | {', '.join(f.rows[:20])} |"
            for f in result.failures
        ]
        meta["failures"] = dg.MetadataValue.md(
            "\n".join(["| metric | expectation | expected | observed | rows |", "|---|---|---|---|---|", *rows])
        )
    if spec.row_key is None and len(result.metrics) == 1:
        # One row of counts: each is its own entry, so the UI plots it run after run.
        for k, v in result.metrics[0].items():
            if isinstance(v, bool):
                meta[k] = v
            elif isinstance(v, int | float):
                meta[k] = dg.MetadataValue.int(v) if isinstance(v, int) else dg.MetadataValue.float(v)
    else:
        meta["rows_evaluated"] = len(result.metrics)
        meta["metrics"] = dg.MetadataValue.md(_markdown_table(result.metrics))
    if docs is not None and result.docs_page:
        meta["data_docs"] = dg.MetadataValue.url(docs.gx_url(result.docs_page))
        meta["data_docs_index"] = dg.MetadataValue.url(docs.home_url)
    else:
        if result.docs_url:
            meta["data_docs"] = dg.MetadataValue.url(result.docs_url)
        if result.docs_index_url:
            meta["data_docs_index"] = dg.MetadataValue.url(result.docs_index_url)
    if result.docs_url:
        meta["data_docs_file"] = dg.MetadataValue.path(url2pathname(urlsplit(result.docs_url).path))
    return meta


def check_result(
    spec: SuiteSpec, result: SuiteResult, since: date | None, docs: DocsAddress | None = None
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(spec.asset),
        check_name=check_name(spec),
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if spec.severity == BLOCKING else dg.AssetCheckSeverity.WARN,
        description=result.summary(),
        metadata=check_metadata(spec, result, since, docs),
    )


def build_gx_checks(name: str, specs: list[SuiteSpec], description: str) -> dg.AssetChecksDefinition:
    """One step validating these suites; each suite is one check on its asset."""
    raw = all(s.asset in RAW_ASSETS for s in specs)
    by_key = {check_key(s): s for s in specs}

    @dg.multi_asset_check(
        name=name,
        specs=[
            dg.AssetCheckSpec(
                name=check_name(s),
                asset=s.asset,
                blocking=s.blocking,
                description=f"[GX, {s.severity}] {s.notes}",
                metadata={"suite": str(s.path.relative_to(s.path.parents[2]))},
            )
            for s in specs
        ],
        can_subset=True,
        pool="warehouse",
        description=description,
    )
    def _gx_checks(context: dg.AssetCheckExecutionContext, storage: PulseStorage):
        selected = [s for key, s in by_key.items() if key in context.selected_asset_check_keys]
        since = run_since(context.run.tags)
        home = storage.paths().home
        startup = prepare(home)
        if startup["import"] or startup["context"]:
            context.log.info(f"GX import {startup['import']:.2f}s, context {startup['context']:.2f}s")
        # raw.* is ingestion's, in DuckDB on every engine; the models are on PULSE_ENGINE's warehouse
        opened = storage.connect(read_only=True) if raw else storage.open_warehouse(read_only=True)
        with opened as warehouse:
            results = run_suites(
                warehouse, [s.name for s in selected], since=since, home=home, run_name=context.run.run_id
            )
        docs = docs_address_for_links(context.log.warning)
        for spec, result in zip(selected, results, strict=True):
            if not result.passed:
                log = context.log.error if spec.blocking else context.log.warning
                log(result.summary())
            yield check_result(spec, result, since, docs)

    return _gx_checks


_SPECS = suite_specs()

gx_raw_events_checks = build_gx_checks(
    "gx_raw_events_checks",
    [s for s in _SPECS if s.asset in RAW_ASSETS],
    "Great Expectations gates on the landing days just ingested; blocking ones stop the dbt models.",
)
gx_model_checks = build_gx_checks(
    "gx_model_checks",
    [s for s in _SPECS if s.asset not in RAW_ASSETS],
    "Great Expectations gates and drift warnings on the dbt models, after the dbt step.",
)

quality_checks = [gx_raw_events_checks, gx_model_checks]
