"""Live features and scores equal the batch's (issue 22, point 3): pulse/live/features.py fed the events one by
one gives, at every feature snapshot date, exactly the row dbt's ``user_feature_snapshots`` computes (floats to
1e-9; a user with no session over yet has no row and no live vector), both from an empty state and from a
state seeded by dbt's ``live_feature_seed*`` tables at an earlier date and then fed the events after it; the
live scorer gives the batch's scores (``score_users``, ``purchase_intent_scores``) with the same model, to the
same users (``intent_scoring_population``).

Two shapes: a small demo shop (120 users, 29 days) and a hand-made history crossing a year end (a session over
midnight on New Year's Eve, a purchase-only user, a user with no scroll data and one whose scroll depth comes
from pixels only, a page_view_id sent twice, a session still open at a snapshot).

The stream processor is not built here: its place is taken by ``int_events_sessionized``, which gives each
event the user_key and session_key the processor computes. Events are fed a little out of order (jittered by
up to 10 minutes), snapshot by snapshot: every event before a snapshot date, then the check.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from demo_warehouse import ingest_days, ingest_demo, read_frame, run_dbt

from ml.intent_tracking import IntentChampion
from ml.purchase_intent import FEATURES, feature_matrix
from ml.user_intent import score_users
from pulse.core.settings import load_settings
from pulse.ingest.raw_events import landed_days
from pulse.live.features import (
    FEATURE_COLUMNS,
    FeatureRules,
    apply,
    features_as_of,
    new_state,
    seed_state,
)
from pulse.live.scoring import LiveIntentScorer, in_scoring_population

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 120, 29, 11
EVENT_COLUMNS = (
    "event_id, event_type, event_time, user_key, session_key, page_view_id, category, revenue, "
    "scroll_depth_pct, scroll_depth_px, doc_height_px, viewport_height_px"
)
SEED_MODELS = ("live_feature_seeds", "live_feature_seed_days", "live_feature_seed_categories")
BATCH_MODELS = ("+user_feature_snapshots", "+intent_scoring_population", *SEED_MODELS)


def _dbt_vars(home: Path) -> dict[str, Any]:
    return load_settings(environ={"PULSE_HOME": str(home)}).dbt_vars()


def _aware(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=UTC)


def _value(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _events(warehouse: Path) -> list[dict[str, Any]]:
    frame = read_frame(warehouse, f"select {EVENT_COLUMNS} from int_events_sessionized")
    events = []
    for row in frame.to_dict("records"):
        event = {k: _value(v) for k, v in row.items() if k != "event_time"}
        event["event_time"] = _aware(row["event_time"])
        events.append(event)
    return events


def _jittered(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """In time order, give or take up to 10 minutes (a stream is not perfectly ordered)."""
    keyed = [(e["event_time"] + timedelta(seconds=rng.uniform(0, 600)), e["event_id"], e) for e in events]
    return [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _snapshots(warehouse: Path) -> dict[date, dict[str, dict[str, Any]]]:
    frame = read_frame(warehouse, "select * from user_feature_snapshots")
    out: dict[date, dict[str, dict[str, Any]]] = {}
    for row in frame.to_dict("records"):
        values = {k: _value(v) for k, v in row.items()}
        values["as_of_date"] = _day(values["as_of_date"])
        out.setdefault(values["as_of_date"], {})[values["user_key"]] = values
    return out


def _differences(live: dict[str, Any] | None, batch: dict[str, Any] | None) -> list[str]:
    if live is None or batch is None:
        return (
            []
            if live is batch
            else [f"live {'no row' if live is None else 'a row'}, dbt {'no row' if batch is None else 'a row'}"]
        )
    out = []
    for column in FEATURE_COLUMNS:
        a, b = live[column], batch[column]
        if a is None or b is None:
            same = a is None and b is None
        elif isinstance(a, float) or isinstance(b, float):
            same = math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
        else:
            same = a == b
        if not same:
            out.append(f"{column}: live {a!r}, dbt {b!r}")
    return out


def _replay_and_compare(
    states: dict[str, dict[str, Any]],
    events: list[dict[str, Any]],
    snapshots: dict[date, dict[str, dict[str, Any]]],
    dates: list[date],
    rules: FeatureRules,
    seed: int,
) -> tuple[list[str], int, dict[date, dict[str, dict[str, Any] | None]]]:
    """Feed the events snapshot by snapshot; (every difference, rows compared, the live vectors per date)."""
    rng = random.Random(seed)
    problems, compared, vectors = [], 0, {}
    users = sorted({e["user_key"] for e in events} | set(states))
    pending = sorted(events, key=lambda e: e["event_time"])
    position = 0
    for as_of in dates:
        instant = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
        chunk = []
        while position < len(pending) and pending[position]["event_time"] < instant:
            chunk.append(pending[position])
            position += 1
        for event in _jittered(chunk, rng):
            apply(states.setdefault(event["user_key"], new_state()), event, rules)
        batch = snapshots.get(as_of, {})
        vectors[as_of] = {}
        for user in users:
            live = features_as_of(states[user], instant, rules) if user in states else None
            vectors[as_of][user] = live
            compared += 1
            for problem in _differences(live, batch.get(user)):
                problems.append(f"{as_of} {user}: {problem}")
        extra = set(batch) - set(users)
        problems += [f"{as_of} {user}: dbt row, no events fed" for user in sorted(extra)]
    return problems, compared, vectors


def _seeded_states(warehouse: Path) -> tuple[dict[str, dict[str, Any]], date]:
    seeds = read_frame(warehouse, "select * from live_feature_seeds")
    days = read_frame(warehouse, "select * from live_feature_seed_days").to_dict("records")
    categories = read_frame(warehouse, "select * from live_feature_seed_categories").to_dict("records")
    days_by_user: dict[str, list[dict[str, Any]]] = {}
    for row in days:
        days_by_user.setdefault(row["user_key"], []).append(row)
    categories_by_user: dict[str, list[str]] = {}
    for row in categories:
        categories_by_user.setdefault(row["user_key"], []).append(row["category"])
    states = {
        row["user_key"]: seed_state(
            {k: _value(v) for k, v in row.items()},
            days_by_user.get(row["user_key"], []),
            categories_by_user.get(row["user_key"], []),
        )
        for row in seeds.to_dict("records")
    }
    [as_of] = {_day(_value(v)) for v in seeds["as_of_date"]}
    return states, as_of


def _check_shape(home: Path, warehouse: Path, seed_as_of: date, jitter_seed: int) -> dict[str, Any]:
    """Both parity checks of the features on one warehouse; returns what the score check needs."""
    rules = FeatureRules.from_dbt_vars(_dbt_vars(home))
    run_dbt(home, warehouse, "run", "--select", *BATCH_MODELS)
    run_dbt(home, warehouse, "test", "--select", *SEED_MODELS)
    snapshots = _snapshots(warehouse)
    dates = sorted(snapshots)
    assert len(dates) >= 3, dates
    events = _events(warehouse)

    # (1) From an empty state: every event, every snapshot date.
    problems, compared, vectors = _replay_and_compare({}, events, snapshots, dates, rules, jitter_seed)
    assert not problems, f"{len(problems)} differences in {compared} rows:\n" + "\n".join(problems[:40])
    assert sum(len(rows) for rows in snapshots.values()) > 0
    no_row = sum(1 for d in dates for v in vectors[d].values() if v is None)

    # (2) Seeded by the batch at an earlier date, then fed the events after it (from two days before it: the
    # events of the seeded sessions are skipped, those of sessions open at the seed are counted).
    latest = dates[-1]
    vector_users = {u for d in dates for u, v in vectors[d].items() if v is not None}
    run_dbt(
        home,
        warehouse,
        "build",
        "--select",
        "feature_snapshot_dates",
        *SEED_MODELS,
        "--vars",
        json.dumps({"features_as_of": seed_as_of.isoformat()}),
    )
    seeded, as_of = _seeded_states(warehouse)
    assert as_of == seed_as_of and seeded
    after = [
        e
        for e in events
        if e["event_time"] >= datetime.combine(seed_as_of - timedelta(days=2), datetime.min.time(), UTC)
    ]
    later = [d for d in dates if d >= seed_as_of]
    problems, compared_seeded, _ = _replay_and_compare(seeded, after, snapshots, later, rules, jitter_seed + 1)
    assert not problems, f"seeded: {len(problems)} differences in {compared_seeded} rows:\n" + "\n".join(problems[:40])
    skipped = sum(state["late_events"] for state in seeded.values())
    assert skipped > 0, "no event of a seeded session was fed: the seeded replay proves nothing about the skip"
    return {"vectors": vectors[latest], "latest": latest, "no_row": no_row, "users": vector_users}


def _champion(warehouse: Path) -> IntentChampion:
    """A small booster fitted on the snapshots (any model will do: the check is that both paths score alike)."""
    frame = read_frame(warehouse, "select * from user_feature_snapshots")
    x = feature_matrix(frame, FEATURES)
    label = (frame["cart_adds"].to_numpy() > frame["purchases"].to_numpy()).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "nthread": 1, "seed": 0},
        xgb.DMatrix(x, label=label, feature_names=list(FEATURES)),
        num_boost_round=8,
    )
    return IntentChampion(model=booster, version="3", features=tuple(FEATURES))


def _check_scores(home: Path, warehouse: Path, checked: dict[str, Any]) -> None:
    champion = _champion(warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        score_users(con, champion)
        batch = dict(con.execute("select user_key, probability from purchase_intent_scores").fetchall())
        population = {u for (u,) in con.execute("select user_key from intent_scoring_population").fetchall()}
    finally:
        con.close()
    minimum = _dbt_vars(home)["intent_scoring_min_sessions_30d"]
    latest = checked["latest"]
    instant = datetime(latest.year, latest.month, latest.day, tzinfo=UTC)
    live_population = {u for u, v in checked["vectors"].items() if in_scoring_population(v, minimum)}
    assert live_population == population and set(batch) == population
    scorer = LiveIntentScorer(champion)
    scores = scorer.score([(u, checked["vectors"][u], instant) for u in sorted(live_population)])
    wrong = [
        (s.user_key, s.probability, batch[s.user_key])
        for s in scores
        if not math.isclose(s.probability, batch[s.user_key], rel_tol=1e-9, abs_tol=1e-12)
    ]
    assert not wrong, f"{len(wrong)} of {len(scores)} live scores differ from the batch's: {wrong[:10]}"
    assert len({round(s.probability, 6) for s in scores}) > 1, "every score alike: the check would not see a swap"
    row = scores[0].row()
    assert row["model_version"] == "3" and row["features_as_of"] == instant.isoformat(timespec="microseconds")
    assert json.loads(row["features"]).keys() == set(FEATURES)


def test_live_features_and_scores_equal_the_batch_on_the_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _, warehouse = ingest_demo(home, users=USERS, days=DAYS, seed=SEED)
    last_day = max(landed_days(home / "landing" / "events"))
    checked = _check_shape(home, warehouse, seed_as_of=last_day - timedelta(days=9), jitter_seed=1)
    assert checked["no_row"] > 0, "no user without a finished session at some snapshot: that case went unchecked"
    _check_scores(home, warehouse, checked)


# ------------------------------------------------------------------------------------------------ year end


def _year_end_events() -> list[dict[str, Any]]:
    start = datetime(2025, 12, 20, tzinfo=UTC)
    events: list[dict[str, Any]] = []

    def add(at: datetime, event_type: str, anonymous_id: str, user_id: str | None = None, **fields: Any) -> None:
        event = {
            "event_id": f"ye-{len(events):04d}",
            "event_type": event_type,
            "event_time": at.isoformat().replace("+00:00", "Z"),
            "anonymous_id": anonymous_id,
            **({"user_id": user_id} if user_id else {}),
            **fields,
        }
        events.append(event)

    def visit(
        at: datetime,
        anonymous_id: str,
        user_id: str | None,
        pages: int,
        *,
        pct: bool,
        px: bool,
        pings: int,
        products: tuple[str, ...] = (),
        cart: bool = False,
        buy: float | None = None,
        pv_prefix: str = "pv",
    ) -> None:
        t = at
        for page in range(pages):
            pv = f"{pv_prefix}-{anonymous_id}-{at:%m%d%H%M}-{page}"
            add(
                t,
                "page_view",
                anonymous_id,
                user_id,
                page_view_id=pv,
                page_url=f"https://shop.example/p{page}",
                # the first page reports no viewport height (its depth is then the whole page, as SQL least()
                # skips a null); 4 pings reach 1220 px + 800 = 50.5 % of 4000 px, which SQL rounds to 51
                **({"doc_height_px": 4000, **({"viewport_height_px": 800} if page else {})} if px else {}),
            )
            for ping in range(pings):
                add(
                    t + timedelta(seconds=10 * ping + 7),
                    "page_ping",
                    anonymous_id,
                    user_id,
                    page_view_id=pv,
                    **({"scroll_depth_pct": 20 + 15 * ping} if pct else {}),
                    **({"scroll_depth_px": 305 * (ping + 1), "doc_height_px": 4000} if px else {}),
                )
            t += timedelta(minutes=3)
        for category in products:
            add(t, "product_view", anonymous_id, user_id, product_id=f"sku-{category}", category=category, price=12.5)
            t += timedelta(minutes=1)
        if cart:
            add(t, "add_to_cart", anonymous_id, user_id, product_id="sku-x", price=12.5, quantity=1)
            t += timedelta(minutes=1)
        if buy is not None:
            add(t, "purchase", anonymous_id, user_id, order_id=f"o-{at:%m%d%H%M}", revenue=buy)

    for day in range(0, 24):
        base = start + timedelta(days=day)
        if day % 2 == 0:  # across the year end, pixel-only scroll depth, carts, two categories
            visit(
                base + timedelta(hours=10),
                "a-year",
                "u-year",
                3,
                pct=False,
                px=True,
                pings=4,
                products=("shoes", "hats") if day % 4 == 0 else ("shoes",),
                cart=day % 3 == 0,
                buy=19.99 if day % 6 == 0 else None,
            )
        if day % 5 == 1:  # purchase-only: no page view, no scroll, no session activity but orders
            add(
                base + timedelta(hours=15, minutes=day),
                "purchase",
                "a-buyer",
                "u-buyer",
                order_id=f"b-{day}",
                revenue=10.0 + day / 3,
            )
        if day % 3 == 2:  # anonymous, no scroll data at all, a page_view_id sent twice in one session
            visit(base + timedelta(hours=20), "a-noscroll", None, 2, pct=False, px=False, pings=2, products=("books",))
            add(
                base + timedelta(hours=20, minutes=1),
                "page_view",
                "a-noscroll",
                page_view_id=f"pv-a-noscroll-{base + timedelta(hours=20):%m%d%H%M}-0",
            )
    # a session over midnight on New Year's Eve (open at the seed, 2026-01-01), one open at the snapshot of
    # 2026-01-06 (23:50 .. 00:20)
    visit(
        datetime(2025, 12, 31, 23, 50, tzinfo=UTC),
        "a-year",
        "u-year",
        4,
        pct=True,
        px=False,
        pings=3,
        products=("toys",),
    )
    visit(datetime(2026, 1, 5, 23, 50, tzinfo=UTC), "a-night", "u-night", 2, pct=True, px=True, pings=2, cart=True)
    visit(datetime(2026, 1, 6, 0, 5, tzinfo=UTC), "a-night", "u-night", 2, pct=True, px=True, pings=2, buy=42.0)
    visit(datetime(2025, 12, 21, 9, 0, tzinfo=UTC), "a-night", "u-night", 1, pct=False, px=False, pings=0)
    return events


def test_live_features_equal_the_batch_across_a_year_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    landing = home / "landing" / "events"
    by_day: dict[str, list[dict[str, Any]]] = {}
    for event in _year_end_events():
        by_day.setdefault(event["event_time"][:10], []).append(event)
    for day, events in by_day.items():
        folder = landing / day
        folder.mkdir(parents=True)
        (folder / "hand.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    warehouse = home / "warehouse.duckdb"
    ingest_days(warehouse, landing, landed_days(landing))
    checked = _check_shape(home, warehouse, seed_as_of=date(2026, 1, 1), jitter_seed=5)
    assert {"u-year", "u-buyer", "a-noscroll", "u-night"} <= checked["users"]
    vectors = checked["vectors"]
    assert vectors["u-buyer"]["page_views"] == 0 and vectors["u-buyer"]["avg_scroll_depth_pct"] is None
    assert vectors["a-noscroll"]["avg_scroll_depth_pct"] is None
    assert vectors["u-year"]["avg_scroll_depth_pct"] is not None
