"""pulse/live/features.py and scoring.py on hand-made events: the formulas and edges of
user_feature_snapshots (docs/features.md) one by one. The parity with dbt on whole histories is
tests/integration/test_live_features.py."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pulse.live.features import (
    FEATURE_COLUMNS,
    FeatureRules,
    LiveFeatureError,
    apply,
    as_of_date,
    features_as_of,
    new_state,
    seed_state,
)

RULES = FeatureRules()
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ids = iter(range(10**6))


def event(event_type: str, at: datetime, session: str = "s1", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}",
        "event_type": event_type,
        "event_time": at,
        "user_key": "u",
        "session_key": session,
        **fields,
    }


def feed(*events: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    state = state or new_state()
    for e in events:
        apply(state, e, RULES)
    return state


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def test_rules_come_from_the_dbt_vars_and_name_a_bad_one() -> None:
    from pulse.core.settings import load_settings

    rules = FeatureRules.from_dbt_vars(load_settings(environ={}).dbt_vars())
    assert rules == FeatureRules()  # dbt_project.yml's defaults
    with pytest.raises(ValueError, match="heartbeat_seconds"):
        FeatureRules.from_dbt_vars({**load_settings(environ={}).dbt_vars(), "heartbeat_seconds": "ten"})


def test_as_of_date_is_the_instant_at_midnight_else_the_next_midnight() -> None:
    assert as_of_date(datetime(2026, 1, 1, tzinfo=UTC)) == date(2026, 1, 1)
    assert as_of_date(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)) == date(2026, 1, 2)


def test_engaged_seconds_count_distinct_heartbeat_buckets_of_the_page_views_own_session() -> None:
    state = feed(
        event("page_view", T0, page_view_id="p1"),
        event("page_ping", T0 + timedelta(seconds=10), page_view_id="p1"),
        event("page_ping", T0 + timedelta(seconds=12), page_view_id="p1"),  # same bucket
        event("page_ping", T0 + timedelta(seconds=25), page_view_id="p1"),
        event("page_ping", T0 + timedelta(seconds=30), page_view_id="p-none"),  # no page view: ignored
        event("page_ping", T0 + timedelta(seconds=40), "s2", page_view_id="p1"),  # other session: a stray
    )
    f = features_as_of(state, T0 + timedelta(hours=2), RULES)
    # s1: 2 buckets -> 10 * (2 - 1) + 5 = 15; s2 has no page view
    assert f["sessions_total"] == 2 and f["avg_engaged_seconds"] == 15 / 2
    assert f["page_views"] == 1 and f["bounce_rate"] == 0.5  # s1 one page view; s2 none (not a bounce)
    assert f["engaged_session_rate"] == 0.5  # 15 s > engaged_session_seconds (10)


def test_scroll_depth_from_pixels_rounds_half_away_from_zero_and_unknown_depths_are_left_out() -> None:
    state = feed(
        event("page_view", T0, page_view_id="p1", doc_height_px=1000, viewport_height_px=200),
        event("page_ping", T0 + timedelta(seconds=10), page_view_id="p1", scroll_depth_px=105),  # 30.5 -> 31
        event("page_view", T0 + timedelta(minutes=1), page_view_id="p2"),  # unknown depth
        event("page_view", T0 + timedelta(minutes=2), page_view_id="p3", scroll_depth_pct=60),
        event("page_view", T0 + timedelta(minutes=3), page_view_id="p4", doc_height_px=500),  # no viewport: 100
    )
    f = features_as_of(state, T0 + timedelta(hours=1), RULES)
    assert f["avg_scroll_depth_pct"] == pytest.approx((31 + 60 + 100) / 3)
    no_depth = feed(event("page_view", T0, page_view_id="p1"))
    assert features_as_of(no_depth, T0 + timedelta(hours=1), RULES)["avg_scroll_depth_pct"] is None


def test_a_page_view_id_sent_twice_in_a_session_is_one_page_view() -> None:
    state = feed(
        event("page_view", T0, page_view_id="p1"),
        event("page_view", T0 + timedelta(seconds=5), page_view_id="p1"),
    )
    assert features_as_of(state, T0 + timedelta(hours=1), RULES)["page_views"] == 1


def test_only_sessions_over_at_the_instant_count_with_the_30_minute_margin() -> None:
    end = datetime(2026, 3, 9, 23, 40, tzinfo=UTC)  # 20 minutes before midnight: still open at it
    state = feed(event("page_view", end, page_view_id="p1"))
    assert features_as_of(state, midnight(date(2026, 3, 10)), RULES) is None
    early = feed(event("page_view", end - timedelta(minutes=15), page_view_id="p1"))  # 35 minutes before
    assert features_as_of(early, midnight(date(2026, 3, 10)), RULES)["sessions_total"] == 1


def test_day_windows_seven_days_ago_is_in_eight_is_out() -> None:
    as_of = date(2026, 3, 20)
    state = feed(
        *(event("page_view", midnight(as_of - timedelta(days=d)) + timedelta(hours=9), f"s{d}") for d in (31, 30, 8, 7))
    )
    f = features_as_of(state, midnight(as_of), RULES)
    assert (f["sessions_7d"], f["sessions_30d"], f["sessions_total"], f["active_days_30d"]) == (1, 3, 4, 3)
    assert f["days_since_first_visit"] == 31 and f["days_since_last_visit"] == 7


def test_cart_abandonment_purchases_and_categories_are_distinct_over_sessions() -> None:
    state = feed(
        event("product_view", T0, "s1", category="shoes"),
        event("add_to_cart", T0 + timedelta(minutes=1), "s1"),
        event("purchase", T0 + timedelta(minutes=1), "s1", revenue=30.0),  # same instant: bought
        event("product_view", T0 + timedelta(hours=3), "s2", category="shoes"),
        event("product_view", T0 + timedelta(hours=3, minutes=1), "s2", category="hats"),
        event("add_to_cart", T0 + timedelta(hours=3, minutes=2), "s2"),
        event("product_view", T0 + timedelta(hours=3, minutes=3), "s2"),  # no category
    )
    f = features_as_of(state, T0 + timedelta(days=1), RULES)
    assert f["cart_abandonment_rate"] == 0.5 and f["categories_viewed"] == 2 and f["product_views"] == 4
    assert f["avg_order_value"] == 30.0 and f["days_since_last_purchase"] == 2  # as of the next midnight, 03-12


def test_old_sessions_fold_into_totals_and_a_later_event_for_them_is_left_to_the_batch() -> None:
    state = feed(*(event("page_view", T0 + timedelta(days=d), f"s{d}", page_view_id=f"p{d}") for d in range(60)))
    assert len(state["open"]) <= 2 and len(state["counted"]["session_days"]) <= 31
    before = json.dumps(state, sort_keys=True)
    assert apply(state, event("page_view", T0 + timedelta(days=3), "s3", page_view_id="late"), RULES) is False
    assert state["late_events"] == 1
    state["late_events"] = 0
    assert json.dumps(state, sort_keys=True) == before
    f = features_as_of(state, T0 + timedelta(days=61), RULES)
    assert f["sessions_total"] == 60 and f["sessions_30d"] == 28 and f["sessions_per_active_day"] == 1.0
    with pytest.raises(LiveFeatureError, match="folded sessions up to"):
        features_as_of(state, T0 + timedelta(days=30), RULES)


def test_state_is_json_and_order_of_events_within_the_fold_does_not_matter() -> None:
    events = [
        event("page_view", T0 + timedelta(minutes=m), f"s{m // 60}", page_view_id=f"p{m}", scroll_depth_pct=m % 100)
        for m in range(0, 600, 7)
    ]
    forward, backward = feed(*events), feed(*reversed(events))
    instant = T0 + timedelta(days=1)
    assert features_as_of(forward, instant, RULES) == features_as_of(backward, instant, RULES)
    again = json.loads(json.dumps(forward))
    assert features_as_of(again, instant, RULES) == features_as_of(forward, instant, RULES)
    assert set(features_as_of(forward, instant, RULES)) == set(FEATURE_COLUMNS)


def test_bad_events_and_instants_name_the_event_and_field() -> None:
    state = new_state()
    with pytest.raises(LiveFeatureError, match="e-naive.*event_time"):
        apply(
            state,
            {"event_id": "e-naive", "event_type": "page_view", "event_time": datetime(2026, 1, 1), "session_key": "s"},
            RULES,
        )
    with pytest.raises(LiveFeatureError, match="e-nosession.*session_key"):
        apply(state, {"event_id": "e-nosession", "event_type": "page_view", "event_time": T0}, RULES)
    with pytest.raises(LiveFeatureError, match="UTC-aware"):
        features_as_of(state, datetime(2026, 1, 1), RULES)


SEED = {
    "user_key": "u",
    "as_of_date": date(2026, 3, 1),
    "first_session_start": datetime(2026, 1, 5, 10),
    "last_session_end": datetime(2026, 2, 27, 10),
    "last_purchase_session_end": None,
    "sessions_total": 4,
    "bounced_sessions": 1,
    "engaged_sessions": 3,
    "cart_sessions": 2,
    "abandoned_cart_sessions": 1,
    "duration_seconds": 400,
    "engaged_seconds": 120,
    "page_views": 9,
    "product_views": 3,
    "searches": 0,
    "cart_adds": 2,
    "purchases": 0,
    "revenue": 0.0,
    "scroll_depth_sum": 150.0,
    "scroll_depth_count": 3,
    "active_days_total": 4,
}
SEED_DAYS = [
    {"activity_date": date(2026, 2, 27), "sessions_started": 1},
    {"activity_date": date(2026, 2, 20), "sessions_started": 2},
]


def test_a_seeded_state_carries_the_batch_forward_and_skips_the_seeded_events() -> None:
    state = seed_state(SEED, SEED_DAYS, ["shoes"])
    assert apply(state, event("page_view", datetime(2026, 2, 27, 9, tzinfo=UTC), "old"), RULES) is False
    feed(
        event("product_view", datetime(2026, 3, 2, 10, tzinfo=UTC), "new", category="hats"),
        event("page_view", datetime(2026, 3, 2, 10, 1, tzinfo=UTC), "new", page_view_id="p", scroll_depth_pct=90),
        state=state,
    )
    at_seed = features_as_of(state, midnight(date(2026, 3, 1)), RULES)
    assert (at_seed["sessions_total"], at_seed["sessions_7d"], at_seed["active_days_30d"]) == (4, 1, 2)
    assert at_seed["avg_scroll_depth_pct"] == 50.0 and at_seed["sessions_per_active_day"] == 1.0
    later = features_as_of(state, midnight(date(2026, 3, 3)), RULES)
    assert (later["sessions_total"], later["categories_viewed"], later["page_views"]) == (5, 2, 10)
    assert later["avg_scroll_depth_pct"] == 60.0 and later["sessions_per_active_day"] == 1.0


def test_a_bad_seed_row_names_the_user_and_column() -> None:
    with pytest.raises(LiveFeatureError, match="'u'.*page_views is null"):
        seed_state({**SEED, "page_views": None}, SEED_DAYS, [])
    with pytest.raises(LiveFeatureError, match="active_days_total 1"):
        seed_state({**SEED, "active_days_total": 1}, SEED_DAYS, [])


def test_the_scorer_uses_the_champions_features_and_writes_live_scores_rows() -> None:
    import xgboost as xgb

    from ml.intent_tracking import IntentChampion
    from ml.purchase_intent import predict_proba
    from pulse.live.scoring import LIVE_SCORES_COLUMNS, LiveIntentScorer, in_scoring_population

    names = ["sessions_30d", "days_since_last_purchase"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, size=(200, 2)).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(x, label=(x[:, 0] > 4).astype(np.float32), feature_names=names),
        5,
    )
    scorer = LiveIntentScorer(IntentChampion(model=booster, version="12", features=tuple(names)))
    vectors = [
        ("a", {"sessions_30d": 7, "days_since_last_purchase": None, "other": 1}, T0),
        ("b", {"sessions_30d": 1, "days_since_last_purchase": 3}, T0),
    ]
    scores = scorer.score(vectors, scored_at=T0)
    expected = predict_proba(booster, pd.DataFrame([v[1] for v in vectors]), names)
    assert [s.probability for s in scores] == pytest.approx(list(expected), abs=0)
    assert scores[0].probability != scores[1].probability
    row = scores[0].row()
    assert tuple(row) == LIVE_SCORES_COLUMNS and row["model_version"] == "12"
    assert json.loads(row["features"]) == {"sessions_30d": 7.0, "days_since_last_purchase": None}
    assert row["scored_at"] == "2026-03-10T12:00:00.000000+00:00"
    with pytest.raises(KeyError, match="'c'.*days_since_last_purchase"):
        scorer.score([("c", {"sessions_30d": 1}, T0)])
    assert in_scoring_population({"sessions_30d": 1}, 1) and not in_scoring_population({"sessions_30d": 0}, 1)
    assert not in_scoring_population(None, 0)
