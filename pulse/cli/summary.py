"""The summary printed after `make run`: what came in, what was kept, what the models hold."""

from __future__ import annotations

import duckdb

from pulse.activation.consent import read_consent_counts
from pulse.core.settings import PulsePaths
from pulse.core.warehouse import DuckDBWarehouse, Warehouse, open_warehouse
from pulse.ingest.batches import late_events

_RAW_COUNTS = {  # ingestion's tables: DuckDB on every engine
    "lines_read": "select coalesce(sum(lines_read), 0) from raw.ingested_files",
    "accepted": "select count(*) from raw.events",
    "quarantined": "select count(*) from raw.events_quarantine",
}
_MODEL_COUNTS = {  # dbt's tables, on PULSE_ENGINE's warehouse
    "events": "select count(*) from stg_events",
    "users": "select count(*) from dim_users",
    "identified_users": "select count_if(is_identified) from dim_users",
    "sessions": "select count(*) from fct_sessions",
    "engaged_sessions": "select count_if(is_engaged) from fct_sessions",
    "page_views": "select count(*) from fct_page_views",
    "user_days": "select count(*) from fct_user_daily",
    "sessions_cut": "select count(*) from qa_sessions_cut",
}


def render_summary(paths: PulsePaths) -> str:
    if not paths.warehouse.exists():
        return f"no warehouse yet at {paths.warehouse}: run `make run`"
    try:
        con = duckdb.connect(str(paths.warehouse), read_only=True)
    except duckdb.IOException as exc:
        return f"the warehouse {paths.warehouse} is being written by another process (a run?): {exc}"
    try:
        c = {name: int(con.execute(sql).fetchall()[0][0]) for name, sql in _RAW_COUNTS.items()}
        reasons = con.execute(
            """select split_part(split_part(reason, '; ', 1), ':', 1) as kind, count(*)
            from raw.events_quarantine group by all order by 2 desc limit 6"""
        ).fetchall()
        if paths.engine == "duckdb":
            models = _model_figures(DuckDBWarehouse(con))
    finally:
        con.close()
    if paths.engine != "duckdb":
        with open_warehouse(paths, read_only=True) as warehouse:
            models = _model_figures(warehouse)
    c |= models["counts"]
    first, last = models["event_times"]
    segments, user_types, profiles, intent, status = (
        models["segments"],
        models["user_types"],
        models["profiles"],
        models["intent"],
        models["model_status"],
    )
    duplicates = c["accepted"] - c["events"]
    reconciles = "yes" if c["lines_read"] == c["accepted"] + c["quarantined"] else "NO"
    lines = [
        "",
        "pulse summary",
        "=============",
        f"events in (lines read)   {c['lines_read']:>12,}",
        f"  accepted               {c['accepted']:>12,}",
        f"  quarantined            {c['quarantined']:>12,}   (raw.events_quarantine; reconciles: {reconciles})",
        f"  duplicates removed     {duplicates:>12,}",
        f"events after dedup       {c['events']:>12,}   {first:%Y-%m-%d} .. {last:%Y-%m-%d}",
        f"users                    {c['users']:>12,}   ({c['identified_users']:,} identified)",
        f"sessions                 {c['sessions']:>12,}   ({c['engaged_sessions']:,} engaged, "
        f"{c['sessions_cut']:,} overlong visits cut)",
        *_late_lines(models["late_events"]),
        f"page views               {c['page_views']:>12,}",
        f"user-days                {c['user_days']:>12,}",
    ]
    if reasons:
        lines.append("quarantine reasons       " + ", ".join(f"{k} {n:,}" for k, n in reasons))
    if segments:
        lines.append(
            f"segments (as of {segments[0][3]}, model v{segments[0][2]})  "
            + ", ".join(f"{name} {n:,}" for name, n, _, _ in segments)
        )
        lines.append("user types               " + ", ".join(f"{t} {n:,}" for t, n in user_types))
    lines.extend(_status_lines(status, "segments", "segment model"))
    lines.extend(_activation_lines(paths, profiles))
    lines.extend(models["consent"].lines() if models["consent"] else [])
    if intent:
        users, version, as_of, top_min, mean = intent
        if users:
            lines.append(
                f"intent scores (as of {as_of}, model v{version})  {users:,} active users, mean probability "
                f"{mean:.3f}, top decile >= {top_min:.3f}"
            )
            lines.extend(_intent_model_lines(paths))
        elif "purchase_intent" not in status:
            lines.append("intent scores            none yet: no purchase-intent model is champion")
    lines.extend(_status_lines(status, "purchase_intent", "intent model"))
    lines += [
        "",
        *_warehouse_lines(paths),
        "UI:        make ui   then open http://127.0.0.1:3000 (assets, runs, checks, schedule)",
        "MLflow:    make mlflow   then open http://127.0.0.1:5000 (segmentation and intent runs, registered models)",
        "",
    ]
    return "\n".join(lines)


def _late_lines(late: tuple[int, object]) -> list[str]:
    """The events kept aside because they arrived later than the lookback (qa_late_events), when there are any."""
    count, since = late
    if not count:
        return []
    return [
        f"late events kept aside   {count:>12,}   (qa_late_events, the earliest on {since}: not in the sessions yet; "
        f"`pulse reprocess --from {since}` folds them in)"
    ]


def _status_lines(status: dict[str, tuple[str, str]], model: str, label: str) -> list[str]:
    """What the profiles' `model_status` says of ``model`` when its fields are not the champion's current
    values: carried from an earlier champion (its training refused), or empty (refused, or no champion)."""
    if model not in status or status[model][0] == "current":
        return []
    state, reason = status[model]
    shown = {"carried": "values carried", "refused": "REFUSED, fields empty", "no_model": "no model, fields empty"}
    return [f"{label:<25}{shown.get(state, state)}: {reason}"]


def _intent_model_lines(paths: PulsePaths) -> list[str]:
    """The champion's test figures from the MLflow registry (tags written at training)."""
    from ml.intent_tracking import champion_tags
    from ml.tracking import tracking_uri

    try:
        tags = champion_tags(tracking_uri(paths.mlflow_store))
    except Exception as exc:  # noqa: BLE001 - the summary still prints without the registry
        return [f"intent model             (MLflow registry unreadable: {exc})"]
    if not tags:
        return []
    return [
        f"intent model             champion v{tags['version']}: test ROC-AUC {tags.get('test_roc_auc', '?')} vs "
        f"RFM logistic {tags.get('rfm_test_roc_auc', '?')}, recency {tags.get('recency_test_roc_auc', '?')} "
        f"(test snapshot {tags.get('test_dates', '?')})"
    ]


def _activation_lines(paths: PulsePaths, profiles: tuple[int, int] | None) -> list[str]:
    """Profiles and the published audiences (from the published manifest, not the warehouse)."""
    import json

    from pulse.activation.publish import current_snapshot

    lines = []
    if profiles:
        lines.append(f"profiles                 {profiles[0]:>12,}   ({profiles[1]:,} consented to personalization)")
    snapshot = current_snapshot(paths.exports)
    if snapshot is not None and (snapshot / "manifest.json").exists():
        manifest = json.loads((snapshot / "manifest.json").read_text())
        audiences = ", ".join(f"{name} {a['rows']:,}" for name, a in manifest["audiences"].items())
        lines.append(f"audiences (consented)    {audiences}")
        lines.append(f"  published: {snapshot} (Parquet + CSV, manifest.json); serve it: make serve")
    return lines


def _model_figures(warehouse: Warehouse) -> dict:
    """What the summary shows of dbt's and the ML steps' tables."""
    figures: dict = {
        "counts": {name: int(warehouse.rows(sql)[0][0]) for name, sql in _MODEL_COUNTS.items()},
        "event_times": warehouse.rows("select min(event_time), max(event_time) from stg_events")[0],
        "segments": [],
        "user_types": [],
        "profiles": None,
        "intent": None,
        "consent": read_consent_counts(warehouse),  # who publishing leaves out and why (pulse/activation/consent.py)
        "model_status": {},
        "late_events": (0, None),
    }
    if warehouse.table_exists("qa_late_events"):
        figures["late_events"] = late_events(warehouse)
    if warehouse.table_exists("user_segments"):
        figures["segments"] = warehouse.rows(
            """select segment_name, count(*), min(model_version), min(as_of_date)
            from user_segments group by segment_name order by 2 desc"""
        )
        figures["user_types"] = warehouse.rows(
            "select user_type, count(*) from user_segments group by user_type order by 2 desc"
        )
    if warehouse.table_exists("user_profiles"):
        figures["profiles"] = warehouse.rows("select count(*), count_if(consent_personalization) from user_profiles")[0]
    if warehouse.table_exists("model_status"):  # the dbt model (models/profiles/model_status.sql)
        figures["model_status"] = {
            model: (status, reason)
            for model, status, reason in warehouse.rows("select model, status, reason from model_status")
        }
    if warehouse.table_exists("user_intent_scores"):
        figures["intent"] = warehouse.rows(
            """select count(*), min(model_version), min(as_of_date), min(case when decile = 1 then probability end),
                avg(probability)
            from user_intent_scores"""
        )[0]
    return figures


def _warehouse_lines(paths: PulsePaths) -> list[str]:
    if paths.engine == "spark":
        return [
            f"warehouse: Spark (PULSE_ENGINE=spark), schema pulse in {paths.spark_home / 'warehouse'}; "
            f"raw events and quarantine in {paths.warehouse}",
            "  read it: pulse.core.warehouse.open_warehouse() with PULSE_ENGINE=spark, or its Parquet files under "
            f"{paths.spark_home / 'warehouse' / 'pulse.db'} (docs/spark.md)",
        ]
    return [
        f"warehouse: {paths.warehouse}",
        f"  open it: .venv/bin/python -c \"import duckdb; duckdb.connect('{paths.warehouse}', read_only=True)"
        ".sql('from fct_sessions limit 5').show()\"",
    ]
