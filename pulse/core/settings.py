"""The settings door: every setting pulse reads, declared once (:data:`SETTINGS`), typed and validated.

Precedence, later wins::

    defaults  <  $PULSE_HOME/settings.toml  <  PULSE_* environment  <  per-run overrides

Per-run overrides are ``pulse materialize --var name=value`` (``--test-as-of D`` is ``--var
intent_test_as_of=D``) and, in Dagster, the run config of the ``settings`` resource
(orchestration/resources.py). :func:`load_settings` resolves them into a :class:`Settings`; an error names
the file and key, the environment variable or the ``--var``, and the bad value, and an unknown name lists the
nearest known ones. ``pulse settings`` prints every effective value and where it came from.

Adding a setting is one :class:`Setting` in :data:`SETTINGS`; code reads ``settings.<name>``.

dbt vars: ``dbt_project/dbt_project.yml`` keeps their defaults (so dbt run by hand, and dbt's unit tests, see
the same ones); the door reads them from there and declares their type, range and description. Every dbt
invocation pulse makes passes every dbt var's effective value (:meth:`Settings.dbt_vars`) as ``--vars``.

Nothing here reads the environment at import time, and nothing in pulse writes it: a child process (dbt, ``dagster
dev``, the MLflow server) gets an explicit environment (:meth:`Settings.dbt_env`, :meth:`Settings.child_env`);
dbt started by dagster-dbt gets its variables as arguments of the ``pulse-dbt`` wrapper (pulse/core/processes.py).
This module is the only one that reads ``os.environ`` (tests/unit/test_environment_access.py). ``.env.example``
is written from :data:`SETTINGS` (:func:`env_example`, ``pulse settings --env-example``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from pulse.core.file_access import UMASKS

DEFAULT_HOME = ".data"
SETTINGS_FILE = "settings.toml"
DBT_PROJECT_YML = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"

ENGINES = ("duckdb", "spark")
TRIGGERS = ("cart_abandonment", "frequent_visitor", "high_intent", "low_engagement", "returning_browser")

# Where a value came from (Settings.sources)
DEFAULT = "default"
OVERRIDE = "--var"

# kind -> what a value must be, for messages
_EXPECTED = {
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "text": "text",
    "date": "a date YYYY-MM-DD",
    "path": "a path",
    "choice": "one of {choices}",
    "list": "a list of {choices} (comma-separated)",
}
# scope: where a setting may be set
HOME = "home"  # settings.toml or the environment: it describes the home (paths, engine), not a run
RUN = "run"  # settings.toml, the environment or --var
PER_RUN = "per-run"  # --var only: it describes one run (a reprocessing start, a replay cut-off)


@dataclass(frozen=True)
class Setting:
    """One setting. ``default`` is a value, or for paths a function of the home; dbt vars leave it unset (their
    default is dbt_project.yml's). ``env``: the environment variable (``""``: ``PULSE_<NAME>``; ``None``: none).
    ``reader``: code that still reads the environment variable itself: the door lists it but neither validates
    it nor takes it from settings.toml or --var until that code reads it here."""

    name: str
    kind: str
    description: str
    default: Any = None
    group: str = "general"
    env: str | None = ""
    scope: str = RUN
    dbt_var: bool = False
    dbt_profile: bool = False  # read from the environment by dbt_project/profiles.yml or a dbt macro
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # may be empty (None)
    reader: str = ""
    pattern: str = ""  # text: a regular expression the whole value must match (case-insensitive)
    example: str = ""  # text: what a value looks like, for messages
    # text: a further rule on a value that matched ``pattern`` (a real date, an http address, a profiles.yml
    # output): returns what is wrong and what was expected, or None
    check: Callable[[str], str | None] | None = None
    # a secret (webhook_secrets): its value is never shown (`pulse settings`, error messages), only whether it is set
    secret: bool = False

    @property
    def env_var(self) -> str | None:
        if self.env is None or self.scope == PER_RUN:
            return None
        return self.env or f"PULSE_{self.name.upper()}"

    def expected(self) -> str:
        text = _EXPECTED[self.kind].format(choices=", ".join(self.choices))
        if self.example:
            text += f" like {self.example}"
        if self.minimum is not None and self.maximum is not None:
            text += f" from {_num(self.minimum)} to {_num(self.maximum)}"
        elif self.minimum is not None:
            text += f" >= {_num(self.minimum)}"
        elif self.maximum is not None:
            text += f" <= {_num(self.maximum)}"
        return text + (" (or empty)" if self.optional else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _home_path(*parts: str) -> Callable[[Path], Path]:
    return lambda home: home.joinpath(*parts)


def _dbt(name: str, kind: str, group: str, description: str, **rules: Any) -> Setting:
    return Setting(name, kind, description, group=group, dbt_var=True, **rules)


def docs_url_problem(value: str) -> str | None:
    """What is wrong with a docs_url (the docs server speaks plain http at the root of HOST:PORT), or None."""
    from urllib.parse import urlsplit

    expected = "expected http://HOST:PORT, e.g. http://127.0.0.1:3001"
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        return f"{expected} ({exc})"
    if parts.scheme != "http" or not parts.hostname or port is None or port == 0:
        return f"{expected} (the scheme, host and port are required; the server speaks plain http)"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return f"{expected} (no path, query or user: the server serves at the root)"
    return None


def _real_time(value: str) -> str | None:
    from datetime import datetime

    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError as exc:
        return f"not a real date and time ({exc}): expected a date YYYY-MM-DD or a time like 1997-01-01T00:00:00Z"
    return None


PROFILES_YML = DBT_PROJECT_YML.parent / "profiles.yml"


def profiles_outputs(path: Path = PROFILES_YML) -> tuple[str, ...]:
    """The outputs (targets) of dbt_project/profiles.yml's ``pulse`` profile."""
    import yaml

    return tuple(((yaml.safe_load(path.read_text()) or {}).get("pulse") or {}).get("outputs") or {})


def _profiles_output(value: str) -> str | None:
    outputs = profiles_outputs()
    return None if value in outputs else f"no such output in {PROFILES_YML}: expected one of {', '.join(outputs)}"


WEBHOOK_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MIN_WEBHOOK_SECRET_LENGTH = 32
_SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=-]+")


def webhook_pairs(value: str) -> list[tuple[str, str]]:
    """``NAME=VALUE,NAME=VALUE`` as pairs, in order; a malformed item raises ValueError naming it (by position and
    name, never by value: the value may be a secret)."""
    pairs: list[tuple[str, str]] = []
    if not value.strip():
        return pairs
    for i, item in enumerate(value.split(","), 1):
        name, sep, rest = item.partition("=")
        name, rest = name.strip(), rest.strip()
        if not sep or not WEBHOOK_NAME.fullmatch(name) or not rest:
            shown = name if WEBHOOK_NAME.fullmatch(name) else "?"
            raise ValueError(
                f"item {i} ({shown}): expected NAME=VALUE with NAME lowercase letters, digits, - or _ "
                f"(starting with a letter, at most 32)"
            )
        if name in dict(pairs):
            raise ValueError(f"item {i}: {name} is named twice")
        pairs.append((name, rest))
    return pairs


def webhooks_problem(value: str) -> str | None:
    """What is wrong with a ``webhooks`` value (names, http(s) URLs with a host, no user or password), or None."""
    from urllib.parse import urlsplit

    try:
        pairs = webhook_pairs(value)
    except ValueError as exc:
        return str(exc)
    for name, url in pairs:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            return f"{name}: not a URL ({exc})"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{name}: expected an http:// or https:// URL with a host, got {url!r}"
        if parts.username or parts.password:
            return f"{name}: no user or password in the URL (`pulse settings` shows URLs); the signature is the proof"
        if any(c.isspace() for c in url):
            return f"{name}: a URL without spaces (percent-encode them), got {url!r}"
    return None


def webhook_secrets_problem(value: str) -> str | None:
    """What is wrong with a ``webhook_secrets`` value, naming the webhook and never showing a secret, or None."""
    try:
        pairs = webhook_pairs(value)
    except ValueError as exc:
        return str(exc)
    for name, secret in pairs:
        if len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
            return f"{name}: the secret has {len(secret)} characters, at least {MIN_WEBHOOK_SECRET_LENGTH} needed"
        if not _SECRET_CHARACTERS.fullmatch(secret):
            return f"{name}: the secret may hold letters, digits and - _ . ~ + / = only"
    return None


SETTINGS: tuple[Setting, ...] = (
    # ---- the home: where things are (settings.toml or the environment; PULSE_HOME itself only the environment)
    Setting(
        "landing",
        "path",
        "Landing zone: events/<YYYY-MM-DD>/*.jsonl[.gz]|csv|parquet.",
        _home_path("landing"),
        "paths",
        scope=HOME,
    ),
    Setting(
        "warehouse",
        "path",
        "The DuckDB file (raw tables; the models with engine duckdb).",
        _home_path("warehouse.duckdb"),
        "paths",
        scope=HOME,
        dbt_profile=True,
    ),
    Setting("mlflow_db", "path", "MLflow tracking store (SQLite).", _home_path("mlflow.db"), "paths", scope=HOME),
    Setting(
        "mlflow_uri",
        "text",
        "An MLflow tracking server instead of the SQLite file (docs/deployment.md).",
        None,
        "paths",
        scope=HOME,
        optional=True,
        pattern=r"(https?|file|sqlite|postgresql|mysql|mssql)(\+\w+)?://\S+|databricks(://\S*)?",
        example="http://mlflow.internal:5000, sqlite:///path/mlflow.db or databricks",
    ),
    Setting(
        "dagster_home",
        "path",
        "Dagster's instance: run history, schedules, dagster.yaml.",
        _home_path("dagster_home"),
        "paths",
        env="DAGSTER_HOME",
        scope=HOME,
    ),
    Setting(
        "exports",
        "path",
        "Published snapshots: audience exports and profiles for the read API.",
        _home_path("exports"),
        "paths",
        scope=HOME,
    ),
    Setting(
        "collector",
        "path",
        "`pulse collect`: spool/ (the open log segment) and dead-letter/.",
        _home_path("collector"),
        "paths",
        scope=HOME,
    ),
    Setting(
        "live_dir",
        "path",
        "Real time: state.sqlite, the live state (SQLite in WAL mode: `pulse stream` writes it; the read API, "
        "`pulse deliver` and the firings feed read it).",
        _home_path("live"),
        "paths",
        scope=HOME,
    ),
    # ---- who may read the files pulse writes (pulse/core/file_access.py, docs/deployment.md)
    Setting(
        "file_access",
        "choice",
        "Who may read what pulse writes: owner (files 0600, folders 0700), or the group too (group-read: "
        "0640/0750, group-write: 0660/0770). pulse's processes run with that umask; a wider PULSE_HOME is tightened.",
        "owner",
        "paths",
        scope=HOME,
        choices=tuple(UMASKS),
    ),
    Setting(
        "engine",
        "choice",
        "Where dbt builds the models and the Python steps read them (docs/spark.md).",
        "duckdb",
        "engine",
        scope=HOME,
        choices=ENGINES,
        dbt_profile=True,
    ),
    Setting(
        "dbt_target",
        "text",
        "Names a profiles.yml output directly (a cluster); wins over engine.",
        None,
        "engine",
        scope=HOME,
        optional=True,
        dbt_profile=True,
        pattern=r"[A-Za-z0-9_-]+",
        example="an output of dbt_project/profiles.yml",
        check=lambda value: _profiles_output(value),
    ),
    Setting(
        "dbt_threads",
        "int",
        "dbt's threads (empty: the target's own, 2 on DuckDB, 4 on Spark).",
        None,
        "engine",
        scope=HOME,
        optional=True,
        minimum=1,
        dbt_profile=True,
    ),
    Setting(
        "duckdb_memory",
        "text",
        "DuckDB's memory limit for ingestion, dbt and readers; it spills beyond it.",
        "2GB",
        "engine",
        scope=HOME,
        dbt_profile=True,
        pattern=r"\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)",
        example="2GB or 512MB",
    ),
    Setting(
        "spark_raw",
        "path",
        "Where the raw tables are exported as Parquet for Spark.",
        _home_path("spark", "raw"),
        "engine",
        scope=HOME,
        dbt_profile=True,
    ),
    Setting(
        "spark_master",
        "text",
        "Spark master of the local target.",
        "local[2]",
        "engine",
        scope=HOME,
        dbt_profile=True,
        pattern=r"local(\[(\d+|\*)(,\s*\d+)?\])?|(spark|mesos|k8s)://\S+|yarn",
        example="local[2], local[*], spark://HOST:7077, yarn or k8s://https://HOST:443",
    ),
    Setting(
        "spark_driver_memory",
        "text",
        "Spark driver memory of the local target.",
        "2g",
        "engine",
        scope=HOME,
        dbt_profile=True,
        pattern=r"\d+[kmgt]?",
        example="2g",
    ),
    Setting(
        "spark_shuffle_partitions",
        "int",
        "spark.sql.shuffle.partitions of the local target.",
        4,
        "engine",
        scope=HOME,
        minimum=1,
        dbt_profile=True,
    ),
    Setting(
        "spark_log_level",
        "choice",
        "Spark's log level in pulse's own processes (its WARN lines about the local metastore drown a run's log).",
        "ERROR",
        "engine",
        choices=("all", "debug", "info", "warn", "error", "fatal", "off"),
    ),
    Setting(
        "partitions_start",
        "date",
        "Pins the first daily partition (landing days before it are not materialized). Empty: the first landing "
        "day, or today while the landing zone is empty.",
        None,
        "partitions",
        scope=HOME,
        optional=True,
    ),
    Setting(
        "docs_url",
        "text",
        "The docs server (`pulse ui`, `pulse docs`): where it listens and where the Data Docs / dbt docs links "
        "written by runs point.",
        "http://127.0.0.1:3001",
        "UIs",
        scope=HOME,
        example="http://HOST:PORT (plain http, no path)",
        check=lambda value: docs_url_problem(value),
    ),
    # ---- ingestion (pulse/ingest/raw_events.py IngestOptions.from_settings)
    Setting(
        "earliest_event_time",
        "text",
        "Events before this (UTC) are quarantined; set it earlier to import an older history (`pulse import` "
        "says so with counts).",
        "2000-01-01",
        "ingestion",
        pattern=r"\d{4}-\d{2}-\d{2}([tT ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([zZ]|[+-]\d{2}:\d{2})?)?",
        example="1997-01-01 or 1997-01-01T00:00:00Z",
        check=lambda value: _real_time(value),
    ),
    Setting(
        "future_tolerance_hours",
        "number",
        "How far after its landing day an event may be.",
        24,
        "ingestion",
        minimum=0.001,
    ),
    Setting("max_row_bytes", "int", "Longer lines are quarantined.", 65536, "ingestion", minimum=1),
    Setting(
        "max_file_bytes",
        "int",
        "A landing file larger than this once decompressed fails the run naming it, read no further (a gzip bomb "
        "stops here). Ingesting a file of this size peaks at about 5 times it in memory, DuckDB's included.",
        256 << 20,
        "ingestion",
        minimum=1,
    ),
    Setting(
        "max_file_lines",
        "int",
        "A landing file with more lines (CSV records, Parquet rows) fails the run naming it.",
        5_000_000,
        "ingestion",
        minimum=1,
    ),
    # ---- the stream processor (pulse/live/processor.py, docs/realtime.md)
    Setting(
        "stream_batch_size",
        "int",
        "`pulse stream`: at most this many events per micro-batch (one transaction).",
        5000,
        "stream",
        minimum=1,
    ),
    Setting(
        "stream_max_wait_ms",
        "int",
        "`pulse stream`: with nothing to read, look again after this many milliseconds (the longest an event "
        "waits before its batch starts).",
        50,
        "stream",
        minimum=1,
        maximum=10000,
    ),
    Setting(
        "stream_cached_users",
        "int",
        "`pulse stream`: user states kept in memory (the others are read from the live state when needed).",
        100_000,
        "stream",
        minimum=1,
    ),
    Setting(
        "live_late_days",
        "int",
        "An event up to this many UTC days before the day of its user's latest event still changes the live "
        "counters; an older one is too late (counted, and left to the nightly batch).",
        1,
        "stream",
        minimum=0,
        maximum=30,
    ),
    # ---- dbt: incremental processing (docs/incremental.md)
    _dbt(
        "incremental_lookback_days",
        "int",
        "incremental",
        "Events of a batch earlier than its first landing day minus this many days are late (qa_late_events).",
        minimum=0,
    ),
    _dbt(
        "reprocess_from",
        "date",
        "incremental",
        "Recompute every user with an event from this day on (`pulse reprocess --from D`).",
        scope=PER_RUN,
        optional=True,
    ),
    # ---- dbt: sessions and page views
    _dbt("session_timeout_minutes", "int", "sessions", "A gap longer than this starts a new session.", minimum=1),
    _dbt("max_session_hours", "int", "sessions", "Longer sessions are cut (qa_sessions_cut).", minimum=1),
    _dbt("heartbeat_seconds", "int", "sessions", "The tracker's page ping interval (engaged time).", minimum=1),
    _dbt("min_visit_seconds", "int", "sessions", "Engaged seconds credited to every page view.", minimum=0),
    _dbt(
        "engaged_session_seconds",
        "int",
        "sessions",
        "GA4's engaged session: more engaged seconds than this, a conversion, or 2+ page views.",
        minimum=0,
    ),
    # ---- dbt: feature snapshots and the intent label
    _dbt(
        "features_as_of",
        "date",
        "features",
        "The latest snapshot date (profiles, segments, scores). Empty: the day after the latest event.",
        optional=True,
    ),
    _dbt("feature_snapshot_interval_days", "int", "features", "Days between feature snapshots.", minimum=1),
    _dbt(
        "feature_snapshots_max",
        "int",
        "features",
        "At most this many snapshots, the latest included; older ones are dropped with a warning.",
        minimum=1,
    ),
    _dbt(
        "purchase_horizon_days",
        "int",
        "features",
        "The intent label: a purchase within this many days from the snapshot date.",
        minimum=1,
    ),
    _dbt(
        "intent_scoring_min_sessions_30d",
        "int",
        "features",
        "The intent model scores users with at least this many sessions in the 30 days before the latest "
        "snapshot (0: everyone).",
        minimum=0,
    ),
    # ---- purchase intent (Python)
    Setting(
        "intent_test_as_of",
        "date",
        "The intent model's evaluation date (`--test-as-of`): the test snapshot is the latest labelled one on or "
        "before it; later snapshots are not used. Profiles and scores keep the latest snapshot. Empty: the latest.",
        group="intent",
        optional=True,
    ),
    Setting(
        "intent_min_positives",
        "int",
        "Sufficiency gate: positives needed in train and in test (below it training refuses, with the reason).",
        100,
        "intent",
        minimum=1,
    ),
    Setting(
        "intent_min_negatives",
        "int",
        "Sufficiency gate: negatives needed in train and in test.",
        100,
        "intent",
        minimum=1,
    ),
    Setting("intent_test_snapshots", "int", "Latest labelled snapshots in the test part.", 1, "intent", minimum=1),
    Setting(
        "intent_validation_snapshots",
        "int",
        "Snapshots in the validation part (early stopping).",
        1,
        "intent",
        minimum=1,
    ),
    Setting(
        "intent_promotion_tolerance",
        "number",
        "A challenger within this ROC-AUC of the champion is promoted (negative: it must beat it by that much).",
        0.005,
        "intent",
        minimum=-1,
        maximum=1,
    ),
    Setting("segmentation_seed", "int", "K-Means seed of the segment model.", 0, "segments", minimum=0),
    Setting(
        "segment_promotion_tolerance",
        "number",
        "A segment refit replaces the champion only if its silhouette, on the same sample of users, is not below "
        "the champion's by more than this (and at least 90 % of the users keep their segment id).",
        0.02,
        "segments",
        minimum=0,
        maximum=1,
    ),
    Setting(
        "segmentation_features",
        "text",
        "The segment model's features, comma-separated user_features or derived columns (e.g. purchases,revenue,"
        "avg_order_value,days_since_last_purchase). Empty: what a visit consists of, falling back to the purchase "
        "history when those do not vary (an order log).",
        None,
        "segments",
        optional=True,
        pattern=r"[a-z_][a-z0-9_]*(\s*,\s*[a-z_][a-z0-9_]*)*",
        example="purchases,revenue (column names, comma-separated)",
    ),
    # ---- dbt: rule-based user types (docs/features.md)
    _dbt("intent_min_cart_adds", "int", "user types", "Intent-driven: cart adds and no purchase ever.", minimum=1),
    _dbt("intent_min_searches", "int", "user types", "Intent-driven: searches...", minimum=1),
    _dbt("intent_min_searches_per_session", "number", "user types", "...in most visits.", minimum=0),
    _dbt("intent_min_product_views", "int", "user types", "...leading to product pages.", minimum=0),
    _dbt("active_min_sessions_per_active_day", "number", "user types", "Active: visits per active day...", minimum=0),
    _dbt("active_min_sessions_7d", "int", "user types", "...on several days this week.", minimum=0),
    _dbt("active_min_sessions_30d", "int", "user types", "Active: or returning this often in 30 days...", minimum=0),
    _dbt(
        "active_min_avg_engaged_seconds", "number", "user types", "...with this much engaged time per visit.", minimum=0
    ),
    _dbt("passive_max_sessions_30d", "int", "user types", "Passive: at most this many visits in 30 days.", minimum=0),
    _dbt(
        "passive_max_avg_session_seconds",
        "number",
        "user types",
        "Passive: or visits this short on average.",
        minimum=0,
    ),
    # ---- dbt: engagement score (docs/features.md)
    _dbt("engagement_weight_frequency", "number", "engagement", "Weight of sessions in the past 7 days.", minimum=0),
    _dbt("engagement_weight_duration", "number", "engagement", "Weight of engaged seconds per session.", minimum=0),
    _dbt("engagement_weight_recency", "number", "engagement", "Weight of days since the last visit.", minimum=0),
    _dbt("engagement_weight_depth", "number", "engagement", "Weight of page views per session.", minimum=0),
    _dbt(
        "engagement_frequency_cap",
        "number",
        "engagement",
        "Sessions in 7 days at which frequency is full.",
        minimum=0.001,
    ),
    _dbt(
        "engagement_duration_cap_seconds",
        "number",
        "engagement",
        "Engaged seconds per visit at which duration is full.",
        minimum=0.001,
    ),
    _dbt("engagement_recency_window_days", "number", "engagement", "No visit for this long: recency 0.", minimum=0.001),
    _dbt(
        "engagement_depth_cap_pages", "number", "engagement", "Pages per visit at which depth is full.", minimum=0.001
    ),
    # ---- dbt: behavioral triggers (docs/triggers.md)
    _dbt("cart_abandonment_minutes", "int", "triggers", "An add with no purchase this long after it.", minimum=1),
    _dbt("frequent_visitor_sessions_per_day", "int", "triggers", "More sessions than this in a UTC day.", minimum=1),
    _dbt("high_intent_product_views", "int", "triggers", "This many product views and an add...", minimum=1),
    _dbt("high_intent_window_hours", "int", "triggers", "...within this many hours.", minimum=1),
    _dbt("low_engagement_max_seconds", "int", "triggers", "A first session shorter than this...", minimum=0),
    _dbt("low_engagement_max_page_views", "int", "triggers", "...with at most this many page views...", minimum=0),
    _dbt("low_engagement_wait_days", "int", "triggers", "...and no new session for this many days.", minimum=1),
    _dbt(
        "returning_browser_days", "int", "triggers", "A new session at most this many days after browsing.", minimum=1
    ),
    _dbt("triggers_enabled", "list", "triggers", "The triggers emitted.", choices=TRIGGERS),
    _dbt(
        "triggers_through",
        "date",
        "triggers",
        "A replay: read events and emit firings before this day.",
        scope=PER_RUN,
        optional=True,
    ),
    # ---- delivery of trigger firings to webhooks (pulse/live/delivery.py, docs/realtime.md "Delivery")
    Setting(
        "webhooks",
        "text",
        "Where `pulse deliver` POSTs every live trigger firing: comma-separated NAME=URL (http or https; a comma "
        "in a URL as %2C). Each needs a secret in webhook_secrets. Empty: no webhook.",
        None,
        "delivery",
        optional=True,
        pattern=r".+",
        example="cms=https://cms.example.com/hooks/pulse,email=https://mail.example.com/in",
        check=lambda value: webhooks_problem(value),
    ),
    Setting(
        "webhook_secrets",
        "text",
        f"The webhooks' HMAC-SHA256 keys: comma-separated NAME=SECRET, one per webhook, each at least "
        f"{MIN_WEBHOOK_SECRET_LENGTH} characters (letters, digits, - _ . ~ + / =). Never shown.",
        None,
        "delivery",
        optional=True,
        pattern=r".+",
        example="cms=<64 hex digits: python -c 'import secrets; print(secrets.token_hex(32))'>",
        check=lambda value: webhook_secrets_problem(value),
        secret=True,
    ),
    Setting(
        "webhook_max_attempts",
        "int",
        "Attempts per firing and webhook; after the last failed one the firing is a dead letter.",
        8,
        "delivery",
        minimum=1,
        maximum=100,
    ),
    Setting(
        "webhook_timeout_seconds",
        "number",
        "Connecting, and waiting for each read of the answer, at most this long (then retried).",
        10,
        "delivery",
        minimum=0.01,
    ),
    Setting(
        "webhook_backoff_seconds",
        "number",
        "Retry n waits a random time from 0 to this times 2^(n-1) (full jitter), capped; Retry-After wins.",
        1,
        "delivery",
        minimum=0.001,
    ),
    Setting(
        "webhook_backoff_max_seconds",
        "number",
        "The cap of that wait.",
        600,
        "delivery",
        minimum=0.001,
    ),
)


def _engagement_weights(values: Mapping[str, Any]) -> str | None:
    names = [n for n in values if n.startswith("engagement_weight_")]
    if names and not any(values[n] for n in names):
        return f"{', '.join(names)}: all 0; the engagement score divides by their sum, at least one must be above 0"
    return None


def _webhooks_have_secrets(values: Mapping[str, Any]) -> str | None:
    if "webhooks" not in values or "webhook_secrets" not in values:
        return None
    urls = dict(webhook_pairs(values["webhooks"] or ""))
    secrets = dict(webhook_pairs(values["webhook_secrets"] or ""))
    problems = [f"webhooks: {name} has no secret in webhook_secrets" for name in urls if name not in secrets]
    problems += [
        f"webhook_secrets: {name} is not a webhook (webhooks names {', '.join(urls) or 'none'})"
        for name in secrets
        if name not in urls
    ]
    return "; ".join(problems) or None


# Rules across settings: each returns a problem or None.
CHECKS: tuple[Callable[[Mapping[str, Any]], str | None], ...] = (_engagement_weights, _webhooks_have_secrets)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# What a home is (paths, engine, dbt's profile): all that readers of paths need (paths_from_env).
HOME_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.scope == HOME)
BY_ENV: dict[str, Setting] = {s.env_var: s for s in SETTINGS if s.env_var}


class SettingsError(ValueError):
    """Settings that cannot be used; ``problems`` lists each one (file and key, variable or --var, and value)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class _Invalid(ValueError):
    """A value that does not fit its setting: the message says what was expected."""


@lru_cache(maxsize=4)
def _dbt_project_vars(path: Path, mtime: float) -> dict[str, Any]:
    import yaml

    return dict((yaml.safe_load(path.read_text()).get("vars") or {}).get("pulse") or {})


def dbt_project_vars(path: Path = DBT_PROJECT_YML) -> dict[str, Any]:
    """The ``vars: pulse:`` block of dbt_project.yml: the dbt vars' defaults."""
    return _dbt_project_vars(path, path.stat().st_mtime)


def _close_names(name: str, names: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(near)}?" if near else "`pulse settings` lists every setting"


# ----------------------------------------------------------------------------------------------- values


def _parse(setting: Setting, raw: Any, base: Path | None = None) -> Any:
    """``raw`` (text from the environment or --var, or a TOML value) as the setting's type, or _Invalid.
    Relative paths are taken from ``base`` (the settings file's folder), else the working directory."""
    kind = setting.kind
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "" or (setting.optional and raw.lower() in ("null", "none")):
            if setting.optional:
                return None
            raise _Invalid(f"needs a value: {setting.expected()}")
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise _Invalid(f"expected {setting.expected()}")
        try:
            value: Any = int(raw)
        except ValueError:
            raise _Invalid(f"expected {setting.expected()}") from None
    elif kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise _Invalid(f"expected {setting.expected()}")
        try:
            value = int(raw) if isinstance(raw, int) or re.fullmatch(r"[+-]?\d+", str(raw)) else float(raw)
        except ValueError:
            raise _Invalid(f"expected {setting.expected()}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise _Invalid(f"expected {setting.expected()}")
    elif kind == "bool":
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            value = raw.lower() in ("true", "1", "yes", "on")
        else:
            raise _Invalid(f"expected {setting.expected()}")
    elif kind == "date":
        if isinstance(raw, date) and not hasattr(raw, "hour"):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                raise _Invalid(f"no such day: expected {setting.expected()}") from None
        else:
            raise _Invalid(f"expected {setting.expected()}")
    elif kind == "path":
        if not isinstance(raw, str | Path):
            raise _Invalid(f"expected {setting.expected()}")
        path = Path(raw).expanduser()
        value = (path if path.is_absolute() or base is None else base / path).resolve()
    elif kind == "choice":
        if not isinstance(raw, str) or raw.lower() not in setting.choices:
            raise _Invalid(f"expected {setting.expected()}")
        value = raw.lower()
    elif kind == "list":
        if isinstance(raw, str):
            items = json.loads(raw) if raw.startswith("[") else [item.strip() for item in raw.split(",")]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            raise _Invalid(f"expected {setting.expected()}")
        unknown = [item for item in items if not isinstance(item, str) or item not in setting.choices]
        if unknown:
            raise _Invalid(f"unknown {', '.join(map(repr, unknown))}: expected {setting.expected()}")
        value = tuple(dict.fromkeys(item for item in items if item))
        if not value:
            raise _Invalid(f"needs at least one: expected {setting.expected()}")
    else:  # text
        if not isinstance(raw, str) or (setting.pattern and not re.fullmatch(setting.pattern, raw, re.IGNORECASE)):
            raise _Invalid(f"expected {setting.expected()}")
        if setting.check is not None and (problem := setting.check(raw)):
            raise _Invalid(problem)  # it says what was expected
        value = raw
    if kind in ("int", "number"):
        if setting.minimum is not None and value < setting.minimum:
            raise _Invalid(f"expected {setting.expected()}")
        if setting.maximum is not None and value > setting.maximum:
            raise _Invalid(f"expected {setting.expected()}")
    return value


def _text(value: Any) -> str:
    """A value as the environment or --var would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(value)
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _shown(setting: Setting, raw: Any) -> str:
    """``raw`` for an error message: a secret setting's value is never shown."""
    return "(a secret, not shown)" if setting.secret else repr(raw)


def _shown_value(setting: Setting, value: Any) -> str:
    """An effective value as `pulse settings` prints it: a secret's only as set or not."""
    if setting.secret:
        return "(set, not shown)" if value is not None else ""
    return _text(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------- resolved


@dataclass(frozen=True)
class PulsePaths:
    """Where a home keeps its state, and how its warehouse is opened."""

    home: Path
    landing: Path
    warehouse: Path
    mlflow_db: Path
    dagster_home: Path
    exports: Path
    collector: Path
    # An MLflow tracking server (``http://mlflow.internal:5000``) instead of the SQLite file: mlflow_uri.
    mlflow_uri: str | None = None
    # Where dbt builds the models and the Python steps read and write them: engine (docs/spark.md).
    engine: str = "duckdb"
    duckdb_memory: str = "2GB"
    # `pulse stream`'s live state (pulse/live/store.py): live_dir; None: <home>/live.
    live_dir: Path | None = None

    @property
    def live_state(self) -> Path:
        """The live state database (SQLite, WAL) that `pulse stream` writes and the read API reads."""
        return (self.live_dir or self.home / "live") / "state.sqlite"

    @property
    def spark_home(self) -> Path:
        """The local Spark target's metastore (Derby) and warehouse folder (dbt_project/profiles.yml)."""
        return self.home / "spark"

    @property
    def events_landing(self) -> Path:
        """Daily contract files: ``landing/events/<YYYY-MM-DD>/*.jsonl[.gz]|*.csv|*.parquet``."""
        return self.landing / "events"

    @property
    def dbt_target(self) -> Path:
        """dbt's artifacts of this home's runs (run_results.json, its partial parse); the checkout's
        dbt_project/target only holds the manifest built at install time (`pulse prepare`)."""
        return self.home / "dbt" / "target"

    @property
    def dbt_logs(self) -> Path:
        """dbt's log file (dbt.log) of this home's runs."""
        return self.home / "dbt" / "logs"

    @property
    def mlflow_store(self) -> Path | str:
        """What the ML code tracks to: ``mlflow_uri`` when set, else the SQLite file ``mlflow_db``."""
        return self.mlflow_uri or self.mlflow_db

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.mlflow_db}"

    def as_env(self) -> dict[str, str]:
        """The variables a child process (dbt, dagster) needs to see the same paths."""
        return {
            "PULSE_HOME": str(self.home),
            "PULSE_LANDING": str(self.landing),
            "PULSE_WAREHOUSE": str(self.warehouse),
            "PULSE_MLFLOW_DB": str(self.mlflow_db),
            "DAGSTER_HOME": str(self.dagster_home),
            "PULSE_EXPORTS": str(self.exports),
            "PULSE_COLLECTOR": str(self.collector),
            "PULSE_LIVE_DIR": str(self.live_dir or self.home / "live"),
            "PULSE_ENGINE": self.engine,
        } | ({"PULSE_MLFLOW_URI": self.mlflow_uri} if self.mlflow_uri else {})

    def ensure(self) -> PulsePaths:
        for p in (self.home, self.landing, self.dagster_home, self.exports, self.warehouse.parent):
            p.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class Settings:
    """Every setting's effective value (``settings.purchase_horizon_days``) and where it came from
    (``sources``: ``default``, the settings file, an environment variable or ``--var``)."""

    home: Path
    file: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    declarations: tuple[Setting, ...] = field(default=SETTINGS, repr=False)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"no setting {name!r}: {_close_names(name, values or ())}")

    def get(self, name: str) -> Any:
        return self.values[name]

    @property
    def paths(self) -> PulsePaths:
        return PulsePaths(
            home=self.home,
            landing=self.landing,
            warehouse=self.warehouse,
            mlflow_db=self.mlflow_db,
            dagster_home=self.dagster_home,
            exports=self.exports,
            collector=self.collector,
            mlflow_uri=self.mlflow_uri,
            engine=self.engine,
            duckdb_memory=self.duckdb_memory,
            live_dir=self.live_dir,
        )

    def dbt_vars(self) -> dict[str, Any]:
        """Every dbt var's effective value, for ``dbt --vars`` (JSON-able; an unset date is null)."""
        return {s.name: _jsonable(self.values[s.name]) for s in self.declarations if s.dbt_var}

    def dbt_vars_json(self) -> str:
        return json.dumps(self.dbt_vars(), sort_keys=True)

    def dbt_profile_env(self) -> dict[str, str]:
        """What dbt_project/profiles.yml and the macros read from the environment, resolved (absolute paths,
        settings.toml's values); an unset optional setting is ``""`` (the child drops it)."""
        env = {"PULSE_HOME": str(self.home)}
        for s in self.declarations:
            if s.dbt_profile and s.env_var:
                env[s.env_var] = _text(self.values[s.name])
        return env

    def dbt_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment, :func:`process_environ`) plus what
        dbt_project/profiles.yml and the macros read from the environment, resolved (absolute paths,
        settings.toml's values): the environment of a dbt process."""
        env = process_environ() if base is None else dict(base)
        env["PULSE_HOME"] = str(self.home)
        for s in self.declarations:
            if s.dbt_profile and s.env_var:
                value = self.values[s.name]
                if value is None:
                    env.pop(s.env_var, None)
                else:
                    env[s.env_var] = _text(value)
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        return env

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` for a child process that reads the settings itself (``dagster dev``, the MLflow server):
        the home and Dagster's instance as absolute paths, the variables set in the environment resolved (a
        relative path means the same folder from any working directory). Settings from the file are not
        copied into variables: the child reads the file, and a later edit of it still counts. ``base``: default
        this process's environment (:func:`process_environ`)."""
        env = process_environ() if base is None else dict(base)
        env["PULSE_HOME"] = str(self.home)
        env["DAGSTER_HOME"] = str(self.dagster_home)
        for s in self.declarations:
            if s.env_var and self.sources.get(s.name) == s.env_var and not s.reader:
                env[s.env_var] = _text(self.values[s.name])
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        return env

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, source) for every setting, in declaration order; a secret's value is not shown."""
        return [(s.name, _shown_value(s, self.values[s.name]), self.sources[s.name]) for s in self.declarations]


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``name=value`` texts (``pulse materialize --var``) as a mapping; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            problems.append(f"--var {pair!r}: expected name=value")
            continue
        out[name.strip()] = value
    if problems:
        raise SettingsError(problems)
    return out


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    declarations: tuple[Setting, ...] = SETTINGS,
    dbt_project: Path = DBT_PROJECT_YML,
    partial: bool = False,
) -> Settings:
    """Resolve every setting: defaults < ``$PULSE_HOME/settings.toml`` < PULSE_* variables of ``environ``
    (default: the process environment) < ``overrides`` (name -> value, text as on the command line). Every
    problem is collected and raised at once as :class:`SettingsError`. ``partial``: resolve ``declarations``
    only and leave the file's other keys to the readers that need them (a bad dbt var does not stop the
    read API or the landing sensor, which need the paths alone)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("PULSE_HOME") or DEFAULT_HOME).expanduser().resolve()
    settings_file = home / SETTINGS_FILE
    by_name = {s.name: s for s in declarations}
    problems: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    dbt_defaults = dbt_project_vars(dbt_project) if any(s.dbt_var for s in declarations) else {}
    for s in declarations:
        if s.dbt_var:
            if s.name not in dbt_defaults:
                problems.append(f"{dbt_project}: vars.pulse lacks {s.name}, declared in pulse/core/settings.py")
                continue
            raw = dbt_defaults[s.name]
            try:
                values[s.name] = _parse(s, raw) if raw is not None else None
            except _Invalid as exc:
                problems.append(f"{dbt_project}: vars.pulse.{s.name} = {raw!r}: {exc}")
                continue
        else:
            values[s.name] = s.default(home) if callable(s.default) else s.default
        sources[s.name] = DEFAULT

    if settings_file.exists():
        try:
            data = tomllib.loads(settings_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{settings_file}: not valid TOML: {exc}")
            data = {}
        for key, raw in data.items():
            s = by_name.get(key)
            where = f"{settings_file}: {key}"
            if s is None and partial:
                continue
            if s is None:
                hint = " (settings are top-level keys, not tables)" if isinstance(raw, dict) else ""
                problems.append(f"{where}: unknown setting{hint}; {_close_names(key, by_name)}")
            elif s.scope == PER_RUN:
                problems.append(f"{where}: set per run only (--var {key}=...)")
            elif s.reader:
                problems.append(f"{where}: read from the environment only for now ({s.env_var}, by {s.reader})")
            else:
                try:
                    values[key], sources[key] = _parse(s, raw, base=home), SETTINGS_FILE
                except _Invalid as exc:
                    problems.append(f"{where} = {_shown(s, raw)}: {exc}")

    for s in declarations:
        var = s.env_var
        raw = env.get(var) if var else None
        if raw is None or raw.strip() == "":
            continue
        if s.reader:  # its reader validates it
            values[s.name], sources[s.name] = raw, var
            continue
        try:
            values[s.name], sources[s.name] = _parse(s, raw), var
        except _Invalid as exc:
            problems.append(f"{var}={_shown(s, raw)}: {exc}")

    for key, raw in (overrides or {}).items():
        s = by_name.get(key)
        where = f"--var {key}"
        if s is None and partial:
            continue
        if s is None:
            problems.append(f"{where}: unknown setting; {_close_names(key, by_name)}")
        elif s.scope == HOME:
            problems.append(f"{where}: describes the home, not a run: set it in {settings_file} or {s.env_var}")
        elif s.reader:
            problems.append(f"{where}: read from the environment only for now ({s.env_var}, by {s.reader})")
        else:
            try:
                values[key], sources[key] = _parse(s, raw), OVERRIDE
            except _Invalid as exc:
                problems.append(f"{where}={_shown(s, raw)}: {exc}")

    if not problems:
        problems += [problem for check in CHECKS if (problem := check(values))]
    if problems:
        raise SettingsError(problems)
    return Settings(home=home, file=settings_file, values=values, sources=sources, declarations=declarations)


def group_settings(names: Iterable[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Only these settings, through the door (settings.toml, environment): for readers that need a few of them
    and must not stop on a problem elsewhere (a bad dbt var does not stop an import)."""
    return load_settings(environ, declarations=tuple(BY_NAME[n] for n in names), partial=True)


# What ingestion reads (pulse/ingest/raw_events.py IngestOptions.from_settings).
INGEST_SETTINGS = ("earliest_event_time", "future_tolerance_hours", "max_row_bytes", "max_file_bytes", "max_file_lines")


def ingest_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Only the ingestion settings, through the door (a bad dbt var does not stop `pulse import`)."""
    return group_settings(INGEST_SETTINGS, environ)


def home_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The home's settings alone (paths, engine, dbt's profile), through the door; other keys are not checked."""
    return load_settings(environ, declarations=HOME_SETTINGS, partial=True)


def paths_from_env(environ: Mapping[str, str] | None = None) -> PulsePaths:
    """Every path, absolute, through the settings door (``environ``: default the process environment)."""
    return home_settings(environ).paths


def engine_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``engine``: ``duckdb`` (default) or ``spark``; anything else is an error naming the value."""
    return home_settings(environ).engine


def process_environ() -> dict[str, str]:
    """A copy of this process's environment: the base of a child process's (dbt, ``dagster dev``, the MLflow
    server), which gets the settings on top of it (:meth:`Settings.dbt_env`, :meth:`Settings.child_env`). With
    :func:`load_settings`, the one reader of ``os.environ`` in pulse (tests/unit/test_environment_access.py)."""
    return dict(os.environ)


# ----------------------------------------------------------------------------------------------- docs


ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
HOME_VARIABLE = "PULSE_HOME"


def environment_variables(declarations: tuple[Setting, ...] = SETTINGS) -> tuple[str, ...]:
    """Every environment variable pulse reads: PULSE_HOME and each setting's."""
    return (HOME_VARIABLE, *(s.env_var for s in declarations if s.env_var))


def env_example(declarations: tuple[Setting, ...] = SETTINGS) -> str:
    """The text of ``.env.example``, written from the declarations: every variable, its default and what it
    does (``pulse settings --env-example`` prints it; tests/unit/test_env_example.py checks the file)."""
    import textwrap

    defaults = dbt_project_vars()
    lines = [
        "# Environment variables pulse reads: written from pulse/core/settings.py by `pulse settings --env-example`",
        "# (`make env-example`); a unit test keeps this file equal to it. All optional: unset, everything lives",
        "# under ./.data. Every setting can also go in $PULSE_HOME/settings.toml, lowercase and without the PULSE_",
        "# prefix (purchase_horizon_days = 14); the environment wins over the file, and `pulse materialize --var",
        "# name=value` over both, for one run. PULSE_HOME itself is only read from the environment.",
        "# dbt_project/profiles.yml reads the variables marked (dbt profile); dbt vars (dbt var) reach dbt as --vars.",
        f"{HOME_VARIABLE}=./.data",
    ]
    for group in dict.fromkeys(s.group for s in declarations if s.env_var):
        lines += ["", f"# ---- {group}"]
        for s in (s for s in declarations if s.group == group and s.env_var):
            if s.dbt_var:
                default = _text(defaults.get(s.name))
            elif callable(s.default):
                default = "./.data/" + s.default(Path()).as_posix()
            else:
                default = _text(s.default)
            marks = [m for m, on in (("dbt profile", s.dbt_profile), ("dbt var", s.dbt_var)) if on]
            text = f"{s.description} Expected: {s.expected()}." + (f" ({', '.join(marks)})" if marks else "")
            lines += textwrap.wrap(text, width=110, initial_indent="# ", subsequent_indent="# ")
            lines.append(f"# {s.env_var}={default}")
    return "\n".join(lines) + "\n"


def settings_markdown(declarations: tuple[Setting, ...] = SETTINGS) -> str:
    """The tables of docs/settings.md, one per group: every setting, its default, variable, where it may be set,
    its type (a dbt var or not) and what it does."""
    defaults = dbt_project_vars()

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out: list[str] = []
    for group in dict.fromkeys(s.group for s in declarations):
        out += [f"### {group}", "", "| setting | default | environment | set in | type | what |"]
        out.append("|---|---|---|---|---|---|")
        for s in (s for s in declarations if s.group == group):
            if s.dbt_var:
                default = _text(defaults.get(s.name))
            elif callable(s.default):
                default = "$PULSE_HOME/" + s.default(Path()).as_posix()
            else:
                default = _text(s.default)
            where = {HOME: "file, env", RUN: "file, env, --var", PER_RUN: "--var"}[s.scope]
            if s.reader:
                where = f"env (read by {s.reader.split(' ')[0]})"
            kind = s.expected() + (", dbt var" if s.dbt_var else "")
            env = f"`{s.env_var}`" if s.env_var else ""
            default = f"`{cell(default)}`" if default else ""
            out.append(f"| `{s.name}` | {default} | {env} | {where} | {cell(kind)} | {cell(s.description)} |")
        out.append("")
    return "\n".join(out)
