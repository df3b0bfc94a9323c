"""Run the Great Expectations suites of expectations/suites/ on metrics that DuckDB computes. No Dagster here.

Each suite ``<name>`` is two versioned files:
  - ``suites/<name>.json``: a GX 1.x ExpectationSuite. Every expectation carries GX's own ``severity``:
    ``critical`` (the suite is a blocking gate) or ``warning`` (the suite only warns); a suite does not
    mix them. ``meta.pulse.asset`` names the Dagster asset the suite checks, ``meta.pulse.row_key`` the
    column naming a failing row when the metrics have one row per day.
  - ``metrics/<name>.sql``: one DuckDB query over the warehouse returning a small DataFrame (one row of
    counts, or one row per day). It may use the parameter ``$since`` (first landing day to evaluate).

GX validates that DataFrame through its pandas datasource: the warehouse tables never leave DuckDB (GX's
SQL datasource is broken on DuckDB, and pandas on the full tables costs GBs; see docs/quality.md). One
ephemeral GX context per process is created on first use and cached; Data Docs are written to
``$PULSE_HOME/gx_data_docs`` and validation results (JSON, the Data Docs index reads them) to
``$PULSE_HOME/gx_validations``. A result carries its page as a ``file://`` URL and as a path inside the
site (``docs_page``), which pulse.ui.docs_server serves over http.

    with duckdb.connect("warehouse.duckdb", read_only=True) as con:
        result = run_suite(con, "fct_sessions")
        print(result.passed, result.failures, result.docs_url)
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from pulse.core.warehouse import Warehouse

HERE = Path(__file__).resolve().parent
SUITES_DIR = HERE / "suites"
METRICS_DIR = HERE / "metrics"
DOCS_DIRNAME = "gx_data_docs"
RESULTS_DIRNAME = "gx_validations"
DOCS_SITE = "pulse"
# The Data Docs index lists (and reads) at most this many validation results, so its cost stays flat.
INDEX_LIMIT = 60

BLOCKING = "blocking"
WARNING = "warning"
_SEVERITY_OF_GX = {"critical": BLOCKING, "warning": WARNING}


class SuiteFileError(ValueError):
    """A suite or metrics file that cannot be used: invalid JSON, unknown expectation, mixed severity..."""


# ------------------------------------------------------------------------------------------------- suite files


@dataclass(frozen=True)
class SuiteSpec:
    """What a suite file declares, read without importing GX (the Dagster definitions use this)."""

    name: str
    asset: str
    severity: str  # BLOCKING or WARNING
    notes: str
    row_key: str | None
    path: Path
    metrics_path: Path
    expectations: tuple[dict[str, Any], ...]

    @property
    def blocking(self) -> bool:
        return self.severity == BLOCKING

    def read_sql(self) -> str:
        return self.metrics_path.read_text()


def suite_names(suites_dir: Path = SUITES_DIR) -> list[str]:
    return sorted(p.stem for p in suites_dir.glob("*.json"))


def suite_spec(name: str, suites_dir: Path = SUITES_DIR, metrics_dir: Path = METRICS_DIR) -> SuiteSpec:
    path = suites_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteFileError(f"{path}: {exc}") from exc
    if data.get("name") != name:
        raise SuiteFileError(f"{path}: name {data.get('name')!r} must be the file name {name!r}")
    pulse = (data.get("meta") or {}).get("pulse") or {}
    if not pulse.get("asset"):
        raise SuiteFileError(f"{path}: meta.pulse.asset (the Dagster asset the suite checks) is missing")
    expectations = data.get("expectations") or []
    if not expectations:
        raise SuiteFileError(f"{path}: no expectations")
    severities = {e.get("severity", "critical") for e in expectations}
    unknown = severities - set(_SEVERITY_OF_GX)
    if unknown or len(severities) != 1:
        raise SuiteFileError(
            f"{path}: every expectation must have the same severity, 'critical' (blocking) or 'warning'; "
            f"found {sorted(severities)}"
        )
    metrics_path = metrics_dir / f"{name}.sql"
    if not metrics_path.is_file():
        raise SuiteFileError(f"{path}: its metrics query {metrics_path} is missing")
    notes = data.get("notes") or ""
    return SuiteSpec(
        name=name,
        asset=pulse["asset"],
        severity=_SEVERITY_OF_GX[severities.pop()],
        notes=" ".join(notes) if isinstance(notes, list) else notes,
        row_key=pulse.get("row_key"),
        path=path,
        metrics_path=metrics_path,
        expectations=tuple(expectations),
    )


def suite_specs(suites_dir: Path = SUITES_DIR, metrics_dir: Path = METRICS_DIR) -> list[SuiteSpec]:
    return [suite_spec(n, suites_dir, metrics_dir) for n in suite_names(suites_dir)]


def load_gx_suite(spec: SuiteSpec):  # -> great_expectations.ExpectationSuite
    """The suite as a GX object. GX logs and drops an expectation it cannot build instead of raising: a
    suite that loses one on the way is rejected here."""
    import great_expectations as gx

    data = json.loads(spec.path.read_text())
    try:
        suite = gx.ExpectationSuite(**data)
    except Exception as exc:  # pydantic / marshmallow / GX errors
        raise SuiteFileError(f"{spec.path}: not a valid GX ExpectationSuite: {exc}") from exc
    if len(suite.expectations) != len(spec.expectations):
        raise SuiteFileError(
            f"{spec.path}: GX accepted {len(suite.expectations)} of {len(spec.expectations)} expectations "
            "(see the GX error logged above)"
        )
    return suite


# ------------------------------------------------------------------------------------------------- metrics

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def compute_metrics(
    con: Warehouse | duckdb.DuckDBPyConnection, spec: SuiteSpec, since: date | None = None
) -> pd.DataFrame:
    """Run the suite's metrics query on a warehouse (pulse.core.warehouse: DuckDB or Spark) or a DuckDB connection.
    Only the parameters the query uses are passed (DuckDB rejects others)."""
    sql = spec.read_sql()
    available = {"since": since}
    wanted = set(_PARAM.findall(sql))
    unknown = wanted - set(available)
    if unknown:
        raise SuiteFileError(f"{spec.metrics_path}: unknown parameters {sorted(unknown)}; known: $since")
    from pulse.core.warehouse import as_warehouse

    return as_warehouse(con).frame(sql, {k: available[k] for k in wanted})


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Failure:
    """One failed expectation, readable without Data Docs."""

    expectation: str  # GX type, e.g. expect_column_max_to_be_between
    column: str | None
    expected: str  # e.g. "<= 0", "between -3 and 3"
    observed: Any  # the observed value, or the values outside the band
    rows: tuple[str, ...] = ()  # row_key of the failing rows (e.g. the days), when the metrics have rows
    notes: str | None = None
    error: str | None = None  # GX raised instead of evaluating (a missing column...)

    def describe(self) -> str:
        where = f" on {', '.join(self.rows[:10])}{' ...' if len(self.rows) > 10 else ''}" if self.rows else ""
        if self.error:
            return f"{self.column}: {self.expectation} raised: {self.error}"
        return f"{self.column}: expected {self.expected}, observed {_short(self.observed)}{where}"


@dataclass
class SuiteResult:
    suite: str
    asset: str
    severity: str
    passed: bool
    evaluated: int
    failures: list[Failure]
    metrics: list[dict[str, Any]]
    docs_url: str | None = None  # file:// URL of the validation's Data Docs page
    docs_index_url: str | None = None  # file:// URL of the site's index.html
    docs_page: str | None = (
        None  # the validation page's path inside the site (served over http by pulse.ui.docs_server)
    )
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.severity == BLOCKING

    def summary(self) -> str:
        state = "passed" if self.passed else f"FAILED ({self.severity})"
        lines = [f"{self.suite} on {self.asset}: {state}, {self.evaluated} expectations"]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """numpy / pandas scalars -> JSON-friendly Python values (NaN -> None)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_short(v) for v in value[:10])
        return f"[{shown}{', ...' if len(value) > 10 else ''}]"
    return str(value)


def _expected(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and high is not None:
        return f"= {_short(low)}" if low == high else f"between {_short(low)} and {_short(high)}"
    if high is not None:
        return f"<= {_short(high)}"
    if low is not None:
        return f">= {_short(low)}"
    return json.dumps({k: _plain(v) for k, v in kwargs.items() if k not in ("batch_id", "column")})


def _error_message(exception_info: Any) -> str | None:
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    messages = [i.get("exception_message") for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    return "; ".join(m for m in messages if m) or None


def _failures(validation, spec: SuiteSpec) -> list[Failure]:
    out = []
    for r in validation.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kwargs = dict(cfg.kwargs)
        result = r.result or {}
        rows: tuple[str, ...] = ()
        if spec.row_key and result.get("unexpected_index_list"):
            rows = tuple(str(_plain(i.get(spec.row_key))) for i in result["unexpected_index_list"])
        observed = result["observed_value"] if "observed_value" in result else result.get("unexpected_list")
        out.append(
            Failure(
                expectation=cfg.type,
                column=kwargs.get("column"),
                expected=_expected(kwargs),
                observed=_plain(observed),
                rows=rows,
                notes=cfg.notes if isinstance(cfg.notes, str) else None,
                error=_error_message(r.exception_info),
            )
        )
    return out


# ------------------------------------------------------------------------------------------------- GX context


def default_home() -> Path:
    from pulse.core.settings import paths_from_env

    return paths_from_env().home


class _Gx:
    """One ephemeral GX context with every suite, its pandas asset, validation definition and checkpoint.
    Results go to a file store under ``home`` so the Data Docs index lists past runs too (the last
    INDEX_LIMIT); home None: nothing is written (no Data Docs)."""

    def __init__(self, home: Path | None) -> None:
        # analytics off through the context's own config (analytics_enabled=False below), not the environment
        started = time.perf_counter()
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self.import_seconds = time.perf_counter() - started
        started = time.perf_counter()
        defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
        stores = defaults.stores
        sites = {}
        self.home = home
        if home is not None:
            stores[defaults.validation_results_store_name]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(home / RESULTS_DIRNAME),
            }
            sites[DOCS_SITE] = {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(home / DOCS_DIRNAME),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": INDEX_LIMIT,
                },
            }
        config = DataContextConfig(
            stores=stores,
            expectations_store_name=defaults.expectations_store_name,
            validation_results_store_name=defaults.validation_results_store_name,
            checkpoint_store_name=defaults.checkpoint_store_name,
            data_docs_sites=sites,
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        source = self.context.data_sources.add_pandas("pulse_metrics")
        self.specs: dict[str, SuiteSpec] = {}
        self.checkpoints: dict[str, Any] = {}
        for spec in suite_specs():
            suite = self.context.suites.add(load_gx_suite(spec))
            batch = source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe("metrics")
            validation = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
            )
            result_format: dict[str, Any] = {"result_format": "COMPLETE"}
            if spec.row_key:
                result_format["unexpected_index_column_names"] = [spec.row_key]
            self.checkpoints[spec.name] = self.context.checkpoints.add(
                gx.Checkpoint(name=spec.name, validation_definitions=[validation], result_format=result_format)
            )
            self.specs[spec.name] = spec
        self.context_seconds = time.perf_counter() - started
        self.lock = threading.Lock()


_CONTEXTS: dict[Path | None, _Gx] = {}
_CONTEXTS_LOCK = threading.Lock()


def _gx(home: Path | None) -> _Gx:
    with _CONTEXTS_LOCK:
        if home not in _CONTEXTS:
            _CONTEXTS[home] = _Gx(home)
        return _CONTEXTS[home]


def prepare(home: Path | None = None, docs: bool = True) -> dict[str, float]:
    """Create the GX context for this process and home now rather than on the first validation. Returns
    the seconds the GX import and the context set-up took, zeros when the context already existed."""
    key = _resolve_home(home, docs)
    fresh = key not in _CONTEXTS
    g = _gx(key)
    return {"import": g.import_seconds, "context": g.context_seconds} if fresh else {"import": 0.0, "context": 0.0}


def _resolve_home(home: Path | None, docs: bool) -> Path | None:
    if not docs:
        return None
    return Path(home).resolve() if home is not None else default_home()


# ------------------------------------------------------------------------------------------------- running


def run_suites(
    con: Warehouse | duckdb.DuckDBPyConnection,
    names: Iterable[str] | None = None,
    *,
    since: date | None = None,
    home: Path | None = None,
    docs: bool = True,
    run_name: str | None = None,
) -> list[SuiteResult]:
    """Validate the named suites (default: all) and build their Data Docs once.

    since: first landing day to evaluate, for the suites whose metrics depend on days (see each .sql);
    None: the latest day. home: where gx_data_docs/ and gx_validations/ go (default PULSE_HOME).
    docs False: validate only (nothing written). run_name: names the run in Data Docs (the Dagster run id).
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    g = _gx(_resolve_home(home, docs))
    names = list(names) if names is not None else list(g.specs)
    missing = [n for n in names if n not in g.specs]
    if missing:
        raise KeyError(f"no suite {missing} in {SUITES_DIR} (have {sorted(g.specs)})")
    run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    results: list[SuiteResult] = []
    identifiers = []
    with g.lock:
        for name in names:
            spec = g.specs[name]
            started = time.perf_counter()
            frame = compute_metrics(con, spec, since)
            sql_seconds = time.perf_counter() - started
            started = time.perf_counter()
            checkpoint_result = g.checkpoints[name].run(batch_parameters={"dataframe": frame}, run_id=run_id)
            ((identifier, validation),) = checkpoint_result.run_results.items()
            identifiers.append(identifier)
            results.append(
                SuiteResult(
                    suite=name,
                    asset=spec.asset,
                    severity=spec.severity,
                    passed=bool(validation.success),
                    evaluated=len(validation.results),
                    failures=_failures(validation, spec),
                    metrics=[{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")],
                    seconds={"sql": sql_seconds, "validate": time.perf_counter() - started},
                )
            )
        if g.home is not None and results:
            started = time.perf_counter()
            g.context.build_data_docs(
                site_names=[DOCS_SITE],
                resource_identifiers=identifiers + [ExpectationSuiteIdentifier(name=n) for n in names],
            )
            site = g.home / DOCS_DIRNAME
            index = (site / "index.html").as_uri()
            for result, identifier in zip(results, identifiers, strict=True):
                urls = g.context.get_docs_sites_urls(resource_identifier=identifier, site_name=DOCS_SITE)
                result.docs_url = urls[0]["site_url"] if urls else None
                result.docs_page = _page_in_site(result.docs_url, site)
                result.docs_index_url = index
            docs_seconds = time.perf_counter() - started
            for result in results:  # one build for all: each suite carries its share
                result.seconds["docs"] = docs_seconds / len(results)
    return results


def _page_in_site(file_url: str | None, site: Path) -> str | None:
    """``file:///.../gx_data_docs/validations/x/y.html`` -> ``validations/x/y.html``; None outside the site."""
    if not file_url or not file_url.startswith("file://"):
        return None
    path = Path(url2pathname(urlsplit(file_url).path))
    try:
        return path.resolve().relative_to(site.resolve()).as_posix()
    except ValueError:
        return None


def run_suite(
    con: Warehouse | duckdb.DuckDBPyConnection,
    name: str,
    *,
    since: date | None = None,
    home: Path | None = None,
    docs: bool = True,
    run_name: str | None = None,
) -> SuiteResult:
    """Validate one suite; see :func:`run_suites`."""
    (result,) = run_suites(con, [name], since=since, home=home, docs=docs, run_name=run_name)
    return result
