"""End to end: demo data in a temporary PULSE_HOME, every asset materialized by Dagster, counts reconciled."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.materialize import materialize_range
from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

SNAPSHOT_TABLES = {
    "raw.events": "ingested_at",
    "raw.events_quarantine": "quarantined_at",
    "main.stg_events": None,
    "main.int_events_sessionized": None,
    "main.fct_page_views": None,
    "main.fct_sessions": None,
    "main.qa_sessions_cut": None,
    "main.dim_users": None,
    "main.fct_user_daily": None,
}


def snapshot(paths) -> dict[str, list[tuple]]:
    out = {}
    with warehouse(paths) as con:
        for table, volatile in SNAPSHOT_TABLES.items():
            cols = f"* exclude ({volatile})" if volatile else "*"
            out[table] = con.execute(f"select {cols} from {table} order by all").fetchall()
    return out


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]


@contextmanager
def warehouse(paths) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, isolated_pulse_home):
    with isolated_pulse_home(tmp_path_factory.mktemp("pulse") / "home") as paths:
        demo = generate_demo(paths.landing, users=120, days=4, seed=11, start=date(2026, 9, 1), progress=False)
        days = landed_days(paths.events_landing)
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range(days[0], days[-1], instance=instance, quiet=True)
        yield paths, demo, days, instance, result


def test_every_asset_and_check_succeeds(pipeline) -> None:
    _, _, days, _, result = pipeline
    assert result.success
    materialized = {
        m.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
    assert {
        "raw_events",
        "stg_events",
        "int_events_sessionized",
        "fct_page_views",
        "fct_sessions",
        "qa_sessions_cut",
        "dim_users",
        "fct_user_daily",
    } <= materialized
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 20
    failed = [c.check_name for c in checks if not c.passed]
    assert failed == []
    assert "raw_events_reconcile" in {c.check_name for c in checks}


def _dbt_models() -> dict[str, dict]:
    """The dbt project's models (manifest nodes) by name."""
    import json

    from orchestration.transform.project import pulse_dbt_project

    nodes = json.loads(pulse_dbt_project.manifest_path.read_text())["nodes"].values()
    return {n["name"]: n for n in nodes if n["resource_type"] == "model"}


def _relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = 'main' "
        "and table_name = ? order by ordinal_position",
        [relation],
    ).fetchall()


def test_dbt_assets_carry_their_row_count_and_every_column(pipeline) -> None:
    """The dbt assets' materializations show the built relation: its row count (tables; views are not counted)
    and every column with its type and the description from the model's YAML (dagster/column_schema)."""
    paths, _, _, _, result = pipeline
    models = _dbt_models()
    metadata = {
        m.asset_key.to_user_string(): m.metadata
        for e in result.get_asset_materialization_events()
        for m in [e.event_specific_data.materialization]
        if m.asset_key.to_user_string() in models
    }
    assert {"stg_events", "int_events_sessionized", "fct_sessions", "fct_page_views", "dim_users"} <= set(metadata)
    with warehouse(paths) as con:
        for name, meta in metadata.items():
            columns = _relation_columns(con, name)
            schema = meta["dagster/column_schema"].value
            assert [(c.name, c.type) for c in schema.columns] == [(n, t.lower()) for n, t in columns], name
            documented = models[name]["columns"]
            assert [c.description for c in schema.columns] == [
                documented.get(n, {}).get("description") or None for n, _ in columns
            ], name
            if models[name]["config"]["materialized"] == "view":
                assert "dagster/row_count" not in meta, name
            else:
                assert meta["dagster/row_count"].value == scalar(con, f"select count(*) from {name}"), name
        sessions = metadata["fct_sessions"]["dagster/column_schema"].value.columns
        assert {c.name: c.type for c in sessions}["session_start"].startswith("timestamp")
        assert metadata["fct_sessions"]["dagster/row_count"].value > 0


def test_every_column_of_every_model_is_described_in_its_yaml(pipeline) -> None:
    """Every column of every model, as built in the warehouse, has a description in the model's YAML (the
    Dagster UI and dbt docs show them), and the YAML documents no column the model does not have. A new
    column without a description fails here."""
    import yaml

    project = Path(__file__).resolve().parents[2] / "dbt_project"
    documented: dict[str, dict[str, str]] = {}
    model_descriptions: dict[str, str] = {}
    for path in sorted((project / "models").rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            model_descriptions[model["name"]] = (model.get("description") or "").strip()
            documented[model["name"]] = {
                c["name"]: (c.get("description") or "").strip() for c in model.get("columns", [])
            }
    models = sorted(p.stem for p in (project / "models").rglob("*.sql"))
    paths = pipeline[0]
    problems = []
    with warehouse(paths) as con:
        for name in models:
            if not model_descriptions.get(name):
                problems.append(f"{name}: no model description")
            columns = [c for c, _ in _relation_columns(con, name)]
            if not columns:
                problems.append(f"{name}: not in the warehouse")
            described = documented.get(name, {})
            problems += [f"{name}.{c}: no description" for c in columns if not described.get(c)]
            problems += [f"{name}.{c}: documented but not a column of the model" for c in described if c not in columns]
    assert problems == [], "\n".join(problems)


def test_lines_read_equal_accepted_plus_quarantined(pipeline) -> None:
    paths, demo, days, _, result = pipeline
    mats = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    raw = [m for m in mats if m.asset_key == dg.AssetKey("raw_events")]
    assert {m.partition for m in raw} == {
        d.isoformat() for d in [days[0] + timedelta(n) for n in range((days[-1] - days[0]).days + 1)]
    }
    meta = raw[0].metadata
    malformed = sum(demo.malformed_injected.values())
    assert malformed > 0 and demo.duplicates_injected > 0
    assert meta["reconciles"].value is True
    assert meta["lines_read"].value == demo.events_written + malformed
    assert meta["accepted"].value + meta["quarantined"].value == meta["lines_read"].value
    # Each malformed line the demo injected is quarantined, and nothing else is.
    assert meta["quarantined"].value == malformed
    with warehouse(paths) as con:
        assert scalar(con, "select count(*) from raw.events") == meta["accepted"].value
        assert scalar(con, "select count(distinct load_date) from raw.events_quarantine") >= 1


def test_deduplicated_events_equal_accepted_minus_duplicates(pipeline) -> None:
    paths, demo, _, _, _ = pipeline
    with warehouse(paths) as con:
        accepted = scalar(con, "select count(*) from raw.events")
        assert scalar(con, "select count(*) from stg_events") == accepted - demo.duplicates_injected
        assert scalar(con, "select count(distinct event_id) from raw.events") == accepted - demo.duplicates_injected


def test_every_event_belongs_to_exactly_one_session(pipeline) -> None:
    paths, _, _, _, _ = pipeline
    with warehouse(paths) as con:
        events = scalar(con, "select count(*) from stg_events")
        assert scalar(con, "select count(*) from int_events_sessionized") == events
        assert scalar(con, "select count(distinct event_id) from int_events_sessionized") == events
        assert scalar(con, "select count(*) from int_events_sessionized where session_key is null") == 0
        assert scalar(con, "select sum(events) from fct_sessions") == events
        orphans = """select count(*) from int_events_sessionized e
                     left join fct_sessions s using (session_key) where s.session_key is null"""
        assert scalar(con, orphans) == 0
        # No session has a gap of more than 30 minutes inside it.
        worst_gap = """select max(gap) from (
            select date_diff('second', lag(event_time) over (partition by session_key order by event_time),
                             event_time) as gap
            from int_events_sessionized)"""
        assert scalar(con, worst_gap) <= 30 * 60
        assert scalar(con, "select count(*) from fct_sessions where page_views > 0") > 0
        assert scalar(con, "select sum(engaged_seconds) from fct_page_views") > 0


def test_rematerializing_a_partition_changes_nothing(pipeline) -> None:
    paths, _, days, instance, _ = pipeline
    before = snapshot(paths)
    again = materialize_range(days[1], days[1], instance=instance, quiet=True)
    assert again.success
    after = snapshot(paths)
    for table in SNAPSHOT_TABLES:
        assert after[table] == before[table], table


def test_dbt_unit_tests_for_sessionization_edges_pass(pipeline, tmp_path) -> None:
    """The YAML unit tests (gap of exactly 30 min / 30 min + 1 s, midnight, out of order, duplicates, ...)
    run inside `dbt build` above; run them once more on their own so a failure names the test."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    paths = pipeline[0]
    project = Path(__file__).parents[2] / "dbt_project"
    target = tmp_path / "target"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "test",
            "--select",
            "test_type:unit",
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=project,
        env={**os.environ, "PULSE_WAREHOUSE": str(paths.warehouse)},
        capture_output=True,
        text=True,
    )
    results = json.loads((target / "run_results.json").read_text())["results"]
    # (run_results also lists the project's on-run-start / on-run-end hooks)
    statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {
        "gap_of_exactly_the_timeout_stays_in_the_visit",
        "a_visit_crossing_midnight_is_one_visit",
        "events_arriving_out_of_order_are_ordered_by_event_time",
        "a_new_client_session_id_starts_a_visit",
        "duplicate_event_ids_keep_the_copy_received_first",
        "discarded_copies_are_left_out",
        "events_join_the_visit_they_follow",
        "visits_longer_than_the_maximum_are_cut",
        "engaged_time_counts_distinct_heartbeat_buckets",
        "the_latest_user_id_seen_with_an_anonymous_id_wins",
        "anonymous_events_before_and_after_login_get_the_stitched_user",
        "a_cart_add_after_the_last_purchase_is_abandoned",
        "carts_are_counted_from_the_cart_total_as_snowplow_does",
        "engagement_score_parts_caps_and_weights",
        "engagement_weights_are_vars",
        "features_ignore_what_ends_on_or_after_the_snapshot_date",
        "feature_windows_of_7_and_30_days_include_their_first_day",
        "avg_order_value_and_cart_abandonment_rate",
        "snapshots_every_interval_count_only_sessions_over_at_each_date",
        "a_history_longer_than_the_cap_lists_the_dropped_snapshot_dates",
        "an_explicit_latest_date_before_the_history_is_the_only_snapshot",
        "the_label_is_a_purchase_in_the_horizon_and_incomplete_windows_are_left_out",
        "intent_driven_rule_cart_adds_without_purchase",
        "intent_driven_rule_searches_in_most_sessions",
        "active_rule_several_sessions_a_day",
        "active_rule_returning_and_engaged",
        "passive_rule_a_single_visit_in_30_days",
        "passive_rule_short_visits",
        "user_type_precedence_intent_then_active_then_passive",
        "user_type_fallback_is_passive",
        "a_purchase_within_30_minutes_cancels_a_cart_abandonment",
        "cart_abandonment_fires_once_per_session",
        "a_cart_add_at_23_50_is_a_candidate_after_midnight",
        "a_cart_add_at_23_50_fires_in_the_next_days_run",
        "candidates_do_not_wait_for_the_latest_event",
        "without_triggers_through_firings_wait_for_the_latest_event",
        "with_triggers_through_firings_before_it",
        "the_sixth_session_of_a_day_fires_frequent_visitor",
        "high_intent_needs_3_product_views_and_an_add_within_24_hours",
        "high_intent_fires_once_per_user_per_utc_day",
        "low_engagement_fires_7_days_after_a_short_shallow_first_session",
        "returning_browser_fires_when_a_browser_comes_back_within_7_days",
        "the_latest_consent_a_user_sent_holds",
        "an_own_flag_outranks_a_declared_one",
        "profiled_users_by_consent_and_basis",
        "top_three_categories_of_the_last_30_days",
        # the models after the ML steps (models/profiles, models/audiences)
        "without_decisions_the_values_are_the_champions_and_a_refusal_carries_them",
        "a_refusal_without_a_champion_leaves_no_values_and_the_latest_decision_counts",
        "the_latest_decision_is_the_one_that_counts",
        "next_action_triggers_first_then_the_user_type_rules",
        "model_status_reaches_every_profile",
        "only_consented_profiles_are_kept",
        "cart_abandoners_are_consented_users_with_the_trigger_active",
        "high_intent_is_the_top_decile_or_the_trigger",
        "loyal_buyers_bought_twice_the_last_time_within_30_days",
        "win_back_is_past_buyers_away_30_days_or_more",
    } <= set(statuses)
    assert set(statuses.values()) == {"pass"}


def test_segments_are_fitted_registered_and_published(pipeline) -> None:
    from ml.tracking import champion_info, champion_version, tracking_uri

    paths, result = pipeline[0], pipeline[4]
    # a fresh home's daily run: no champion yet, so the first fit is made and becomes champion, and says so
    info = champion_info(tracking_uri(paths.mlflow_db))
    assert info is not None and info.version == "1"
    assert info.tags["decision"] == "promoted" and "the first fit" in info.tags["decision_reason"]
    [shown] = [
        m.event_specific_data.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.event_specific_data.materialization.asset_key.to_user_string() == "segment_model"
    ]
    assert shown["decision"].value == "promoted" and "the first fit" in shown["decision_reason"].value
    # the dbt model user_segments (assignments joined with names and user types) shows its sizes and user types
    [joined] = [
        m.event_specific_data.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.event_specific_data.materialization.asset_key.to_user_string() == "user_segments"
    ]
    assert "| segment_id | name | users | share |" in joined["segments"].value
    with warehouse(paths) as con:
        users = scalar(con, "select count(*) from user_features")
        rows = con.execute(
            """select count(*), count(distinct user_key), count(segment_name), count(user_type),
                min(distance_to_centroid), count(distinct model_version), min(model_version)
            from user_segments"""
        ).fetchall()[0]
        assert users > 50
        assert rows[:4] == (users, users, users, users)  # every user: a segment with a name, and a type
        assert rows[4] >= 0 and rows[5] == 1
        champion = champion_version(tracking_uri(paths.mlflow_db))
        assert champion is not None and rows[6] == champion  # published by the registered champion
        profiles = con.execute(
            """select count(*), sum(users), sum(share), count(distinct segment_name),
                sum(active_users + passive_users + intent_driven_users)
            from segment_profiles"""
        ).fetchall()[0]
        segments = scalar(con, "select count(distinct segment_id) from user_segments")
        assert profiles[0] == segments == profiles[3] and profiles[1] == users == profiles[4]
        by_type = "select coalesce(user_type, 'none'), count(*) from user_segments group by 1"
        types = dict(con.execute(by_type).fetchall())
        assert joined["user_types"].value == types and sum(types.values()) == users
        assert abs(profiles[2] - 1) < 1e-9


def test_the_daily_job_ends_with_profiles_exports_and_their_counts_in_the_summary(pipeline) -> None:
    import json

    from pulse.activation.publish import current_snapshot
    from pulse.cli.summary import render_summary

    paths, _, _, _, result = pipeline
    materialized = {
        m.event_specific_data.materialization.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
    }
    assert {"user_intent_scores", "user_profiles", "audience_exports"} <= materialized
    with warehouse(paths) as con:
        users = scalar(con, "select count(*) from user_features")
        profiles, distinct, consented = con.execute(
            "select count(*), count(distinct user_key), count_if(consent_personalization) from user_profiles"
        ).fetchall()[0]
        assert scalar(con, "select count(*) from user_intent_scores") == 0  # no champion in the daily job alone
    assert profiles == distinct == users > 0
    snapshot = current_snapshot(paths.exports)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["profiles"]["rows"] == consented
    counts = manifest["consent_counts"]  # consent_coverage: who was left out, and why
    assert (counts["profiled_users"], counts["published"]) == (profiles, consented)
    assert counts["published_by_basis"] == {"own_flag": consented, "declared": {}}  # the demo sends its own flags
    assert counts["left_out"] == {"no_signal": 0, "refused": profiles - consented}
    assert set(manifest["audiences"]) == {"cart_abandoners", "high_intent", "loyal_buyers", "win_back"}
    for name, audience in manifest["audiences"].items():
        assert (paths.exports / "audiences" / f"{name}.csv").exists()
        assert (snapshot / audience["parquet"]).exists()
    summary = render_summary(paths)
    [line] = [line for line in summary.splitlines() if line.startswith("profiles ")]
    assert line.split()[1] == f"{profiles:,}" and f"({consented:,} consented" in line
    assert "audiences (consented)" in summary
    assert f"{consented:,} of {profiles:,} profiled users published (their own flag {consented:,})" in summary
    for name, audience in manifest["audiences"].items():
        assert f"{name} {audience['rows']:,}" in summary
