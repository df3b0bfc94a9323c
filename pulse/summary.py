"""The summary printed after `make run`: what came in, what was kept, what the models hold."""

from __future__ import annotations

import duckdb

from pulse.settings import PulsePaths

_COUNTS = {
    "lines_read": "select coalesce(sum(lines_read), 0) from raw.ingested_files",
    "accepted": "select count(*) from raw.events",
    "quarantined": "select count(*) from raw.events_quarantine",
    "events": "select count(*) from main.stg_events",
    "users": "select count(*) from main.dim_users",
    "identified_users": "select count_if(is_identified) from main.dim_users",
    "sessions": "select count(*) from main.fct_sessions",
    "engaged_sessions": "select count_if(is_engaged) from main.fct_sessions",
    "page_views": "select count(*) from main.fct_page_views",
    "user_days": "select count(*) from main.fct_user_daily",
    "sessions_cut": "select count(*) from main.qa_sessions_cut",
}


def warehouse_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {name: int(con.execute(sql).fetchall()[0][0]) for name, sql in _COUNTS.items()}


def render_summary(paths: PulsePaths) -> str:
    if not paths.warehouse.exists():
        return f"no warehouse yet at {paths.warehouse}: run `make run`"
    try:
        con = duckdb.connect(str(paths.warehouse), read_only=True)
    except duckdb.IOException as exc:
        return f"the warehouse {paths.warehouse} is being written by another process (a run?): {exc}"
    try:
        c = warehouse_counts(con)
        first, last = con.execute("select min(event_time), max(event_time) from main.stg_events").fetchall()[0]
        reasons = con.execute(
            """select split_part(split_part(reason, '; ', 1), ':', 1) as kind, count(*)
            from raw.events_quarantine group by all order by 2 desc limit 6"""
        ).fetchall()
        segments = user_types = []
        published = con.execute(
            "select count(*) from information_schema.tables where table_name = 'user_segments'"
        ).fetchall()[0][0]
        if published:
            segments = con.execute(
                """select segment_name, count(*), min(model_version), min(as_of_date)
                from main.user_segments group by 1 order by 2 desc"""
            ).fetchall()
            user_types = con.execute(
                "select user_type, count(*) from main.user_segments group by 1 order by 2 desc"
            ).fetchall()
        profiles = None
        if con.execute("select count(*) from information_schema.tables where table_name = 'user_profiles'").fetchall()[
            0
        ][0]:
            profiles = con.execute(
                "select count(*), count_if(consent_personalization) from main.user_profiles"
            ).fetchall()[0]
        intent = None
        scored = con.execute(
            "select count(*) from information_schema.tables where table_name = 'user_intent_scores'"
        ).fetchall()[0][0]
        if scored:
            intent = con.execute(
                """select count(*), min(model_version), min(as_of_date), min(probability) filter (where decile = 1),
                    avg(probability)
                from main.user_intent_scores"""
            ).fetchall()[0]
    finally:
        con.close()
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
    lines.extend(_activation_lines(paths, profiles))
    if intent:
        users, version, as_of, top_min, mean = intent
        if users:
            lines.append(
                f"intent scores (as of {as_of}, model v{version})  {users:,} active users, mean probability "
                f"{mean:.3f}, top decile >= {top_min:.3f}"
            )
            lines.extend(_intent_model_lines(paths))
        else:
            lines.append("intent scores            none yet: no purchase-intent model is champion")
    lines += [
        "",
        f"warehouse: {paths.warehouse}",
        f"  open it: .venv/bin/python -c \"import duckdb; duckdb.connect('{paths.warehouse}', read_only=True)"
        ".sql('from fct_sessions limit 5').show()\"",
        "UI:        make ui   then open http://127.0.0.1:3000 (assets, runs, checks, schedule)",
        "MLflow:    make mlflow   then open http://127.0.0.1:5000 (segmentation and intent runs, registered models)",
        "",
    ]
    return "\n".join(lines)


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

    from pulse.publish import current_snapshot

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
