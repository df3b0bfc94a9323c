"""The GX suites on tiny hand-built tables: every file is a valid GX suite, every blocking rule catches its
violation and passes on clean data, and the drift band does its arithmetic. No Data Docs are written."""

import statistics
from datetime import date, timedelta

import duckdb
import pytest

from expectations.runner import (
    BLOCKING,
    WARNING,
    SuiteFileError,
    compute_metrics,
    load_gx_suite,
    run_suite,
    suite_spec,
    suite_specs,
)

D0 = date(2026, 1, 1)

CLEAN = """
create schema raw;
create table raw.ingested_files as
    select (date '2026-01-01' + i::integer)::date as load_date, 'f' || i as source_file, 100::bigint as lines_read
    from range(3) t(i);
create table raw.events_quarantine as
    select date '2026-01-03' as load_date, 'f2' as source_file, 7::bigint as line_number, 'x' as reason;
create table stg_events as
    select * from (values
        ('e1', 'u1', timestamp '2026-01-01 10:00:00', 'page_view', null::double, null::double, null::double,
         null::double, 40.0::double),
        ('e2', 'u1', timestamp '2026-01-01 10:05:00', 'click', null, null, null, null, null),
        ('e3', 'u1', timestamp '2026-01-02 09:00:00', 'purchase', 20.0, 20.0, null, null, null),
        ('e4', 'u2', timestamp '2026-01-02 11:00:00', 'page_view', null, null, null, null, 100.0)
    ) t(event_id, user_key, event_time, event_type, price, revenue, value, cart_value, scroll_depth_pct);
create table fct_sessions as
    select * from (values
        ('s1', 'u1', timestamp '2026-01-01 10:00:00', timestamp '2026-01-01 10:05:00', 300, 2),
        ('s2', 'u1', timestamp '2026-01-02 09:00:00', timestamp '2026-01-02 09:00:00', 0, 1),
        ('s3', 'u2', timestamp '2026-01-02 11:00:00', timestamp '2026-01-02 11:00:00', 0, 1)
    ) t(session_key, user_key, session_start, session_end, duration_seconds, events);
create table qa_late_events (event_id varchar, user_key varchar);
create table fct_user_daily as
    select * from (values
        ('u1', date '2026-01-01', 2, 0),
        ('u1', date '2026-01-02', 1, 1),
        ('u2', date '2026-01-02', 1, 0)
    ) t(user_key, activity_date, events, purchases);
create table dim_users as
    select * from (values
        ('u1', 2, timestamp '2026-01-01 10:00:00', timestamp '2026-01-02 09:00:00'),
        ('u2', 1, timestamp '2026-01-02 11:00:00', timestamp '2026-01-02 11:00:00')
    ) t(user_key, sessions, first_seen_at, last_seen_at);
create table user_features as
    select * from (values
        ('u1', date '2026-01-03', 2, 2, 2, 1, 3, 0, 0, 1, 20.0::double, 150.0::double, 30.0::double, 1, 0.0, 0.5, 1.0),
        ('u2', date '2026-01-03', 1, 1, 1, 1, 1, 0, 0, 0, 0.0, 0.0, 0.0, 1, 0.0, 1.0, 0.0)
    ) t(user_key, as_of_date, sessions_total, sessions_7d, sessions_30d, page_views, product_views, searches,
        cart_adds, purchases, revenue, avg_session_seconds, avg_engaged_seconds, days_since_last_visit,
        cart_abandonment_rate, bounce_rate, engaged_session_rate);
create table purchase_intent_training_set as
    select *, as_of_date + 7 as label_window_end_date, user_key = 'u1' as purchased_within_horizon
    from user_features;
"""

GATES = [
    "raw_events",
    "stg_events",
    "fct_sessions",
    "fct_user_daily",
    "dim_users",
    "user_features",
    "purchase_intent_training_set",
]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(CLEAN)
    yield con
    con.close()


def failing(con: duckdb.DuckDBPyConnection, suite: str, **kwargs) -> set[str]:
    result = run_suite(con, suite, docs=False, **kwargs)
    assert result.passed == (not result.failures)
    return {f.column for f in result.failures}


# ------------------------------------------------------------------------------------------------- suite files


def test_every_suite_file_is_a_valid_gx_suite_with_its_metrics_query() -> None:
    specs = suite_specs()
    assert {s.name for s in specs} >= {*GATES, "fct_user_daily_drift"}
    for spec in specs:
        suite = load_gx_suite(spec)  # raises if GX drops or rejects an expectation
        assert suite.name == spec.name
        assert len(suite.expectations) == len(spec.expectations) > 0
        assert {e.severity.value for e in suite.expectations} == {"critical" if spec.blocking else "warning"}
        assert spec.metrics_path.is_file()


def test_every_suite_checks_an_asset_of_the_dagster_graph() -> None:
    import dagster as dg

    from orchestration.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    for spec in suite_specs():
        assert graph.has(dg.AssetKey(spec.asset)), spec.name


def test_every_expectation_reads_a_column_its_query_returns(con) -> None:
    for spec in suite_specs():
        columns = set(compute_metrics(con, spec).columns)
        for e in spec.expectations:
            assert e["kwargs"]["column"] in columns, (spec.name, e["kwargs"]["column"])
        if spec.row_key:
            assert spec.row_key in columns


def test_severities(con) -> None:
    assert {s.name: s.severity for s in suite_specs()} == {
        **dict.fromkeys(GATES, BLOCKING),
        "fct_user_daily_drift": WARNING,
    }


def test_a_suite_mixing_severities_is_rejected(tmp_path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mixed.sql").write_text("select 0 as a")
    (tmp_path / "s" / "mixed.json").write_text(
        """{"name": "mixed", "meta": {"pulse": {"asset": "x"}}, "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "a", "max_value": 0}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "a", "max_value": 0},
         "severity": "warning"}]}"""
    )
    with pytest.raises(SuiteFileError, match="same severity"):
        suite_spec("mixed", tmp_path / "s", tmp_path / "m")


def test_a_suite_with_an_expectation_gx_cannot_build_is_rejected(tmp_path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "bad.sql").write_text("select 0 as a")
    (tmp_path / "s" / "bad.json").write_text(
        """{"name": "bad", "meta": {"pulse": {"asset": "x"}}, "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"max_value": 0}}]}"""
    )
    with pytest.raises(SuiteFileError, match="not a valid GX"):
        load_gx_suite(suite_spec("bad", tmp_path / "s", tmp_path / "m"))


# ------------------------------------------------------------------------------------------------- blocking rules


@pytest.mark.parametrize("suite", GATES)
def test_the_gates_pass_on_clean_data(con, suite) -> None:
    result = run_suite(con, suite, docs=False, since=D0)
    assert result.passed, result.summary()
    assert result.blocking and result.evaluated > 0


# A late event of the returning user u2, in stg_events, kept aside (listed in qa_late_events), in no session.
LATE_U2 = (
    "insert into stg_events (event_id, user_key, event_time, event_type) "
    "values ('late1', 'u2', timestamp '2025-12-28 08:00:00', 'page_view'); "
    "insert into qa_late_events values ('late1', 'u2')"
)

VIOLATIONS = [
    # (suite, what breaks, the metrics that must fail)
    (
        "raw_events",
        "insert into raw.events_quarantine select date '2026-01-03', 'f2', i, 'x' from range(20) t(i)",
        {"quarantined_share"},
    ),
    ("stg_events", "insert into stg_events select * from stg_events where event_id = 'e2'", {"duplicate_event_ids"}),
    ("stg_events", "update stg_events set event_id = null where event_id = 'e2'", {"null_event_ids"}),
    ("stg_events", "update stg_events set user_key = null where event_id = 'e2'", {"null_user_keys"}),
    ("stg_events", "update stg_events set event_time = null where event_id = 'e2'", {"null_event_times"}),
    ("stg_events", "update stg_events set event_type = null where event_id = 'e2'", {"null_event_types"}),
    # NaN passes every range rule and turns every sum into NaN (issue 20); so does infinity into infinity
    ("stg_events", "update stg_events set revenue = 'NaN' where event_id = 'e3'", {"events_with_non_finite_numbers"}),
    (
        "stg_events",
        "update stg_events set price = '-Infinity' where event_id = 'e3'",
        {"events_with_non_finite_numbers"},
    ),
    (
        "stg_events",
        "update stg_events set value = 'Infinity' where event_id = 'e2'",
        {"events_with_non_finite_numbers"},
    ),
    (
        "stg_events",
        "update stg_events set scroll_depth_pct = 'NaN' where event_id = 'e4'",
        {"events_with_non_finite_numbers"},
    ),
    ("fct_sessions", "update fct_sessions set session_key = null where session_key = 's3'", {"null_session_keys"}),
    ("fct_sessions", "update fct_sessions set session_key = 's2' where session_key = 's3'", {"duplicate_session_keys"}),
    ("fct_sessions", "update fct_sessions set user_key = null where session_key = 's3'", {"null_user_keys"}),
    ("fct_sessions", "update fct_sessions set duration_seconds = null where session_key = 's3'", {"null_durations"}),
    ("fct_sessions", "update fct_sessions set duration_seconds = -1 where session_key = 's1'", {"negative_durations"}),
    (
        "fct_sessions",
        "update fct_sessions set session_end = session_start - interval 1 minute where session_key = 's1'",
        {"negative_durations"},
    ),
    # a session without events also leaves its event outside every session
    (
        "fct_sessions",
        "update fct_sessions set events = 0 where session_key = 's3'",
        {"sessions_without_events", "unsessionized_events"},
    ),
    ("fct_sessions", "delete from fct_sessions where session_key = 's3'", {"unsessionized_events"}),
    ("fct_sessions", "update fct_sessions set events = 3 where session_key = 's1'", {"unsessionized_events"}),
    # an event kept aside as late (qa_late_events) excuses only itself: a session lost beside it, a loss of
    # another user's event, or an event counted twice still fail
    ("fct_sessions", f"{LATE_U2}; delete from fct_sessions where session_key = 's3'", {"unsessionized_events"}),
    (
        "fct_sessions",
        f"{LATE_U2}; update fct_sessions set events = 1 where session_key = 's1'",
        {"unsessionized_events"},
    ),
    (
        "fct_sessions",
        f"{LATE_U2}; update fct_sessions set events = 3 where session_key = 's3'",
        {"unsessionized_events"},
    ),
    ("fct_user_daily", "update fct_user_daily set user_key = null where user_key = 'u2'", {"null_user_keys"}),
    ("fct_user_daily", "update fct_user_daily set activity_date = null where user_key = 'u2'", {"null_activity_dates"}),
    (
        "fct_user_daily",
        "insert into fct_user_daily select * from fct_user_daily where user_key = 'u2'",
        {"duplicate_user_days"},
    ),
    ("fct_user_daily", "update fct_user_daily set events = 0 where user_key = 'u2'", {"days_without_events"}),
    ("fct_user_daily", "delete from dim_users where user_key = 'u2'", {"users_missing_from_dim_users"}),
    ("dim_users", "update dim_users set user_key = null where user_key = 'u2'", {"null_user_keys"}),
    ("dim_users", "insert into dim_users select * from dim_users where user_key = 'u2'", {"duplicate_user_keys"}),
    ("dim_users", "update dim_users set sessions = 0 where user_key = 'u2'", {"users_without_sessions"}),
    (
        "dim_users",
        "update dim_users set last_seen_at = first_seen_at - interval 1 second where user_key = 'u1'",
        {"negative_lifetimes"},
    ),
    ("user_features", "delete from user_features", {"users"}),
    ("user_features", "update user_features set user_key = null where user_key = 'u2'", {"null_user_keys"}),
    ("user_features", "update user_features set user_key = 'u1'", {"duplicate_user_keys"}),
    (
        "user_features",
        "update user_features set as_of_date = date '2026-01-04' where user_key = 'u2'",
        {"snapshot_dates"},
    ),
    ("user_features", "update user_features set revenue = -1 where user_key = 'u1'", {"users_with_negative_values"}),
    (
        "user_features",
        "update user_features set revenue = 'NaN' where user_key = 'u1'",
        {"users_with_non_finite_values"},
    ),
    (
        "user_features",
        "update user_features set avg_session_seconds = 'Infinity' where user_key = 'u2'",
        {"users_with_non_finite_values"},
    ),
    (
        "user_features",
        "update user_features set bounce_rate = 1.5 where user_key = 'u1'",
        {"users_with_rates_outside_0_1"},
    ),
    (
        "purchase_intent_training_set",
        "update purchase_intent_training_set set as_of_date = null where user_key = 'u2'",
        {"null_keys"},
    ),
    (
        "purchase_intent_training_set",
        "insert into purchase_intent_training_set select * from purchase_intent_training_set where user_key = 'u2'",
        {"duplicate_rows"},
    ),
    (
        "purchase_intent_training_set",
        "update purchase_intent_training_set set purchased_within_horizon = null where user_key = 'u2'",
        {"null_labels"},
    ),
    (
        "purchase_intent_training_set",
        "update purchase_intent_training_set set label_window_end_date = as_of_date where user_key = 'u2'",
        {"windows_not_after_snapshot"},
    ),
    (
        "purchase_intent_training_set",
        "update purchase_intent_training_set set cart_adds = -1 where user_key = 'u2'",
        {"rows_with_negative_values"},
    ),
    (
        "purchase_intent_training_set",
        "update purchase_intent_training_set set engaged_session_rate = 2 where user_key = 'u2'",
        {"rows_with_rates_outside_0_1"},
    ),
]


@pytest.mark.parametrize(
    ("suite", "corruption", "expected"), VIOLATIONS, ids=[f"{v[0]}-{sorted(v[2])[0]}" for v in VIOLATIONS]
)
def test_each_blocking_rule_catches_its_violation(con, suite, corruption, expected) -> None:
    con.execute(corruption)
    result = run_suite(con, suite, docs=False, since=D0)
    assert not result.passed and result.blocking
    assert {f.column for f in result.failures} == expected
    for f in result.failures:
        assert f.observed is not None, f  # the observed value is reported
        assert f.observed != 0 or f.expected.startswith(">="), f  # 0 is a violation only of a minimum
        assert f.column in result.summary()


@pytest.mark.parametrize(
    ("late", "kept_aside"),
    [
        (LATE_U2, 1),  # a returning user's late event
        (  # a new visitor whose only events are late: no session, not in dim_users
            "insert into stg_events (event_id, user_key, event_time, event_type) "
            "values ('late1', 'u3', timestamp '2025-12-28 08:00:00', 'page_view'), "
            "('late2', 'u3', timestamp '2025-12-28 08:00:10', 'page_ping'); "
            "insert into qa_late_events values ('late1', 'u3'), ('late2', 'u3')",
            2,
        ),
        # listed, yet its session counts it (a repeated delivery): nothing is missing, nothing is excused
        ("insert into qa_late_events values ('e3', 'u1')", 0),
    ],
    ids=["returning-user", "new-visitor", "listed-but-in-its-session"],
)
def test_events_kept_aside_as_late_do_not_block(con, late: str, kept_aside: int) -> None:
    con.execute(late)
    for suite in ("fct_sessions", "dim_users", "fct_user_daily"):
        result = run_suite(con, suite, docs=False, since=D0)
        assert result.passed, result.summary()
    [metrics] = compute_metrics(con, suite_spec("fct_sessions")).to_dict("records")
    assert (metrics["late_events_kept_aside"], metrics["unsessionized_events"]) == (kept_aside, 0)


def test_a_failing_day_is_named_in_the_result(con) -> None:
    con.execute("insert into raw.events_quarantine select date '2026-01-02', 'f1', i, 'x' from range(30) t(i)")
    result = run_suite(con, "raw_events", docs=False, since=D0)
    (failure,) = result.failures
    assert failure.rows == ("2026-01-02",)
    assert failure.expected == "between 0 and 0.1"
    assert failure.observed == [0.3]


def test_the_raw_gate_evaluates_only_the_landing_days_of_the_run(con) -> None:
    con.execute("insert into raw.events_quarantine select date '2026-01-01', 'f0', i, 'x' from range(30) t(i)")
    assert failing(con, "raw_events", since=D0) == {"quarantined_share"}
    assert failing(con, "raw_events", since=D0 + timedelta(days=1)) == set()  # the run started later
    assert failing(con, "raw_events") == set()  # default: the latest landing day only


def test_a_landing_day_under_100_lines_gets_no_share(con) -> None:
    con.execute("insert into raw.ingested_files values (date '2025-12-31', 'small', 99)")
    con.execute("insert into raw.events_quarantine select date '2025-12-31', 'small', i, 'x' from range(99) t(i)")
    assert failing(con, "raw_events", since=D0 - timedelta(days=1)) == set()
    con.execute("update raw.ingested_files set lines_read = 100 where source_file = 'small'")
    con.execute("insert into raw.events_quarantine values (date '2025-12-31', 'small', 99, 'x')")
    assert failing(con, "raw_events", since=D0 - timedelta(days=1)) == {"quarantined_share"}


# ------------------------------------------------------------------------------------------------- drift


def drift_con(volumes: list[int], buyers: list[int] | None = None, users: int = 10) -> duckdb.DuckDBPyConnection:
    """fct_user_daily with `volumes[i]` events on day i spread over `users` users, `buyers[i]` of whom bought;
    landing days up to the day after the last one, so every day is complete."""
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.ingested_files (load_date date, source_file varchar, lines_read bigint)")
    con.execute("insert into raw.ingested_files values (?, 'f', 1)", [D0 + timedelta(days=len(volumes))])
    con.execute("create table fct_user_daily (user_key varchar, activity_date date, events bigint, purchases bigint)")
    rows = []
    for i, volume in enumerate(volumes):
        if volume == 0:
            continue
        n = min(users, volume)
        for u in range(n):
            bought = buyers is not None and u < buyers[i]
            rows.append((f"u{u}", D0 + timedelta(days=i), volume // n + (1 if u < volume % n else 0), int(bought)))
    con.executemany("insert into fct_user_daily values (?, ?, ?, ?)", rows)
    return con


def drift_rows(con, since: date | None = D0) -> dict[str, dict]:
    result = run_suite(con, "fct_user_daily_drift", docs=False, since=since)
    return {row["day"]: row for row in result.metrics}


def test_the_band_is_the_trailing_7_day_mean_and_std() -> None:
    volumes = [100, 110, 90, 105, 95, 100, 120, 80, 130]
    rows = drift_rows(drift_con(volumes))
    day8 = rows[(D0 + timedelta(days=8)).isoformat()]
    previous = volumes[1:8]
    assert day8["history_days"] == 7
    assert day8["events_mean"] == pytest.approx(statistics.mean(previous))
    assert day8["events_std"] == pytest.approx(statistics.stdev(previous))
    assert day8["events_z"] == pytest.approx((130 - statistics.mean(previous)) / statistics.stdev(previous))


def test_no_z_before_7_days_of_history() -> None:
    rows = drift_rows(drift_con([100] * 9))
    assert [r["events_z"] for r in rows.values()][:7] == [None] * 7
    assert rows[(D0 + timedelta(days=7)).isoformat()]["events_z"] == 0


def test_a_flat_history_uses_5_percent_of_the_mean_as_its_std() -> None:
    # std 0 -> floored at 5: 110 is z = 2 (inside the band), 120 is z = 4 (outside)
    assert drift_rows(drift_con([100] * 8 + [110]))["2026-01-09"]["events_z"] == pytest.approx(2)
    con = drift_con([100] * 8 + [120])
    result = run_suite(con, "fct_user_daily_drift", docs=False)  # default: the latest complete day
    assert [r["day"] for r in result.metrics] == ["2026-01-09"]
    assert not result.passed and result.severity == WARNING and not result.blocking
    (failure,) = result.failures
    assert failure.column == "events_z" and failure.rows == ("2026-01-09",)
    assert failure.observed == [pytest.approx(4)]


def test_a_spike_and_a_day_without_events_are_drift() -> None:
    volumes = [100, 104, 96, 100, 102, 98, 100, 100, 400, 100]
    con = drift_con(volumes)
    result = run_suite(con, "fct_user_daily_drift", docs=False, since=D0)
    (failure,) = result.failures
    assert failure.rows == ("2026-01-09",)
    con = drift_con([100, 104, 96, 100, 102, 98, 100, 100, 0])  # the day exists with 0 events
    rows = drift_rows(con)
    assert rows["2026-01-09"]["events"] == 0 and rows["2026-01-09"]["events_z"] < -3


def test_the_purchase_rate_band_is_wider_and_counts_the_days_sampling_noise() -> None:
    volumes = [1000] * 10
    # of 1,000 users: rate 0.2 / 0.3, mean 0.25, std ~0.053; the day's binomial sd sqrt(.25 * .75 / 1000) ~0.014
    steady = [200, 300, 200, 300, 200, 300, 200, 300]
    within = drift_rows(drift_con(volumes[:9], steady + [400], users=1000))["2026-01-09"]  # 0.4: z ~ 2.7
    assert 2 < within["purchase_rate_z"] < 4
    con = drift_con(volumes[:9], steady + [0], users=1000)  # 0.0: z ~ -4.6
    result = run_suite(con, "fct_user_daily_drift", docs=False)
    assert {f.column for f in result.failures} == {"purchase_rate_z"}
    # The same rates over 10 users a day are within the day's own noise: no warning.
    small = drift_con([100] * 9, [2, 3, 2, 3, 2, 3, 2, 3, 0], users=10)
    assert drift_rows(small)["2026-01-09"]["purchase_rate_z"] > -2


def test_drift_evaluates_the_event_days_completed_by_the_run() -> None:
    con = drift_con([100] * 12)  # event days 0..11, landing days up to 12

    def evaluated(since: date | None) -> list[str]:
        return [r["day"] for r in run_suite(con, "fct_user_daily_drift", docs=False, since=since).metrics]

    assert evaluated(None) == ["2026-01-12"]
    assert evaluated(D0 + timedelta(days=12)) == ["2026-01-12"]  # landing day 12 completes event day 11
    assert evaluated(D0 + timedelta(days=10)) == ["2026-01-10", "2026-01-11", "2026-01-12"]


def test_the_runs_first_landing_day_comes_from_its_tags() -> None:
    from orchestration.materialize import RANGE_END_TAG, RANGE_START_TAG
    from orchestration.quality.checks import run_since

    assert run_since({RANGE_START_TAG: "2026-01-03", RANGE_END_TAG: "2026-01-09"}) == date(2026, 1, 3)
    assert run_since({"dagster/partition": "2026-01-05"}) == date(2026, 1, 5)
    assert run_since({}) is None
