"""Segments on histories unlike the demo's: a purchase-only log (a shop that exports its orders) and a
browse-only one (a content site, or a shop whose cart is not tracked).

Both come from one small demo shop (400 users x 30 days): its landing files filtered to the purchase events
only, and to everything but add_to_cart / remove_from_cart / checkout / purchase, then ingested with
``pulse.ingest.raw_events.ingest_day`` and modelled with ``dbt run --select +user_features`` (no Dagster, as in
test_segments_on_demo.py). Segmentation runs with the production defaults. On each history the default
per-visit features that no longer vary are dropped and said so, no near-constant feature is clustered on,
the names are unique and every claim a name makes agrees with the segment's means.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_warehouse import ingest_days, read_frame, run_dbt

from ml import naming
from ml.segmentation import (
    DEFAULT_FEATURES,
    PURCHASE_HISTORY_FEATURES,
    SegmentationConfig,
    SegmentationResult,
    TooFewFeaturesError,
    fit_segments,
    most_common_value,
)
from ml.user_segments import segmentation_config
from pulse.demo.generator import generate_demo
from pulse.ingest.raw_events import landed_days

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 400, 30, 11
CART_AND_ORDER = {"add_to_cart", "remove_from_cart", "checkout", "purchase"}


def _filter_landing(source: Path, target: Path, keep: set[str] | None = None, drop: set[str] = frozenset()) -> int:
    """Copy the landing day files of ``source`` to ``target`` with only the events whose type is in ``keep``
    (every type when None) and not in ``drop``; lines that are not JSON (the demo's malformed ones) are left
    out. Returns the number of events kept."""
    kept = 0
    for path in sorted(source.rglob("*.jsonl.gz")):
        lines = []
        for line in gzip.decompress(path.read_bytes()).splitlines():
            try:
                event_type = json.loads(line).get("event_type")
            except (ValueError, AttributeError):
                continue
            if (keep is None or event_type in keep) and event_type not in drop:
                lines.append(line)
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
        kept += len(lines)
    return kept


def _features(home: Path, events: Path) -> pd.DataFrame:
    warehouse = home / "warehouse.duckdb"
    ingest_days(warehouse, events, landed_days(events))
    run_dbt(home, warehouse, "run", "--select", "+user_features")
    return read_frame(warehouse, "select * from user_features order by user_key")


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes_demo")
    generate_demo(root / "landing", users=USERS, days=DAYS, seed=SEED, progress=False)
    return root / "landing" / "events"


@pytest.fixture(scope="module")
def purchase_only(demo_events: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    home = tmp_path_factory.mktemp("purchase_only")
    assert _filter_landing(demo_events, home / "landing" / "events", keep={"purchase"}) > 50
    return _features(home, home / "landing" / "events")


@pytest.fixture(scope="module")
def browse_only(demo_events: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    home = tmp_path_factory.mktemp("browse_only")
    assert _filter_landing(demo_events, home / "landing" / "events", drop=CART_AND_ORDER) > 1000
    return _features(home, home / "landing" / "events")


def _check_segments(
    result: SegmentationResult, features: pd.DataFrame, configured: tuple[str, ...], dropped: set[str]
) -> None:
    model = result.model
    summary = f"dropped {result.features_dropped}; names {model.names}\n{result.profile.to_string()}"
    # the features that do not vary are dropped, and said so (the warning names each, with its reason)
    assert set(result.features_dropped) == dropped, summary
    assert model.transform.features == tuple(f for f in configured if f not in dropped), summary
    assert model.info["features_dropped"] == result.features_dropped
    [warning] = result.warnings
    for feature, why in result.features_dropped.items():
        assert f"{feature}: {why}" in warning
    assert result.metrics()["features_dropped"] == len(dropped)
    # no column the segments live in is (nearly) constant
    raw = model.transform.raw(features)
    for column in model.columns:
        _, share = most_common_value(raw[column].to_numpy())
        assert share < result.config.near_constant_share, f"{column}: {share:.3f} of users at one value; {summary}"
    # names: unique, no numbered copies, and each claim agrees with the segment means the profile prints
    assert len(set(model.names)) == len(model.names) == result.chosen_k, summary
    assert not any(name.rstrip(")").split()[-1].isdigit() for name in model.names), summary
    profile = result.profile.set_index("segment_id")
    everyone = profile.loc[-1]
    segments = profile.drop(index=-1)
    names = segments["segment_name"].tolist()
    means = segments[[f"{c}_mean" for c in model.columns]].to_numpy(dtype=float)
    population = everyone[[f"{c}_mean" for c in model.columns]].to_numpy(dtype=float)
    spread = raw.to_numpy(dtype=float).std(axis=0)  # any positive scale per column: only signs and order matter
    z = np.nan_to_num((means - population) / np.where(spread > 0, spread, 1.0))
    assert naming.contradictions(names, model.columns, z, segments["bought_share"].to_numpy()) == [], summary
    _check_claims_by_hand(names, segments, everyone, summary)


# What each base name says, for the columns of these tests, written out here rather than taken from ml.naming so
# that the test reads the names independently: per-visit columns above (+) or below (-) the average user.
SAYS = {
    "Browsers": {"page_views_per_session": +1},
    "Passive visitors": {"page_views_per_session": -1},
    "Searchers": {"searches_per_session": +1},
    "Intent shoppers": {"searches_per_session": +1},
    "Cart abandoners": {"cart_adds_per_session": +1, "purchases_per_session": -1},
}
# qualifier -> (column, level): more / fewer than the segments it is told apart from, the most / the fewest
PHRASES = {
    f"{word} {what}": (column, level)
    for what, column in (
        ("orders per visit", "purchases_per_session"),
        ("pages per visit", "page_views_per_session"),
        ("searches per visit", "searches_per_session"),
        ("orders", "purchases"),
    )
    for word, level in (("more", 1), ("fewer", -1), ("most", 2), ("fewest", -2))
}
PHRASES |= {
    f"{word} {what}": (column, level)
    for what, column in (("spend", "revenue"), ("baskets", "avg_order_value"))
    for word, level in zip(
        ("higher", "lower", "highest", "lowest") if what == "spend" else ("larger", "smaller", "largest", "smallest"),
        (1, -1, 2, -2),
        strict=True,
    )
}
PHRASES |= {
    "bought longer ago": ("days_since_last_purchase", 1),
    "bought more recently": ("days_since_last_purchase", -1),
    "bought longest ago": ("days_since_last_purchase", 2),
    "bought most recently": ("days_since_last_purchase", -2),
}


def _check_claims_by_hand(names: list[str], segments: pd.DataFrame, everyone: pd.Series, summary: str) -> None:
    by_name = segments.set_index("segment_name")
    for name in names:
        base = name.split(" (")[0]
        for column, sign in SAYS.get(base, {}).items():
            if f"{column}_mean" in by_name:  # a dropped column is cited by no one
                difference = by_name.loc[name, f"{column}_mean"] - everyone[f"{column}_mean"]
                assert np.sign(difference) == sign, f"{name!r} vs all users on {column}; {summary}"
        if base == "Buyers":  # most of them bought, or they buy more per visit than the average user
            per_visit = "purchases_per_session_mean"
            assert by_name.loc[name, "bought_share"] >= 0.5 or (
                per_visit in by_name and by_name.loc[name, per_visit] > everyone[per_visit]
            ), f"{name!r}; {summary}"

    def qualifiers(name: str) -> list[tuple[str, int]]:
        if "(" not in name:
            return []
        return [PHRASES[w] for w in name.split(" (", 1)[1].rstrip(")").split(", ")]

    compared = 0
    for a in names:
        for b in names:
            if a == b or a.split(" (")[0] != b.split(" (")[0]:
                continue
            qa, qb = qualifiers(a), qualifiers(b)
            d = 0
            while d < min(len(qa), len(qb)) and qa[d] == qb[d]:
                d += 1
            if d < min(len(qa), len(qb)) and qa[d][0] == qb[d][0] and qa[d][1] > qb[d][1]:
                column = qa[d][0]
                assert by_name.loc[a, f"{column}_mean"] > by_name.loc[b, f"{column}_mean"], f"{a!r} vs {b!r}; {summary}"
                compared += 1
    print(f"{compared} qualifier comparisons checked")


def test_a_purchase_only_history_falls_back_from_the_per_visit_defaults_to_its_orders_and_says_so(
    purchase_only: pd.DataFrame,
) -> None:
    """Every default feature is a per-visit rate; on an order log each is constant (0 pages, searches and cart
    adds, 1 order per visit). Nobody chose them, so the fit segments on the purchase history instead, and the
    warning says why and how to choose."""
    result = fit_segments(purchase_only, SegmentationConfig())
    [warning] = result.warnings
    print(warning, result.model.names, sep="\n")
    for feature in DEFAULT_FEATURES:
        assert f"{feature}: " in warning
    assert "page_views_per_session: 0 for every user" in warning
    assert "Segmenting on the purchase history instead" in warning and "segmentation_features" in warning
    assert set(result.model.transform.features) <= set(PURCHASE_HISTORY_FEATURES)
    _check_segments(result, purchase_only, PURCHASE_HISTORY_FEATURES, {"has_purchased"})
    assert result.chosen_k >= 2 and all(naming.is_buyer_name(name) for name in result.model.names)


def test_chosen_features_that_do_not_vary_are_refused_and_the_refusal_says_what_varies(
    purchase_only: pd.DataFrame,
) -> None:
    """Features someone chose are never swapped: when none of them varies the fit refuses, naming each and
    the columns that do vary."""
    chosen = ("page_views_per_session", "searches_per_session")
    with pytest.raises(TooFewFeaturesError) as refused:
        fit_segments(purchase_only, SegmentationConfig(features=chosen))
    message = str(refused.value)
    print(message)
    assert "0 of the 2 segmentation features vary" in message
    assert "page_views_per_session: 0 for every user" in message
    assert "segmentation_features" in message
    assert "purchases,revenue,avg_order_value,days_since_last_purchase" in message
    varying = message.split("Columns that vary here: ")[1]
    assert "purchases" in varying and "page_views" not in varying


def test_a_purchase_only_history_segments_on_its_orders(purchase_only: pd.DataFrame) -> None:
    config = segmentation_config(",".join(PURCHASE_HISTORY_FEATURES))
    assert config.features == PURCHASE_HISTORY_FEATURES
    result = fit_segments(purchase_only, config)
    print(result.warnings, result.model.names, result.profile.to_string(), sep="\n")
    # every user bought: the has_purchased flag beside days_since_last_purchase is constant, and dropped
    _check_segments(result, purchase_only, PURCHASE_HISTORY_FEATURES, {"has_purchased"})
    assert "has_purchased" not in result.model.columns
    assert result.chosen_k >= 2 and all(naming.is_buyer_name(name) for name in result.model.names)


def test_a_browse_only_history_segments_on_what_varies(browse_only: pd.DataFrame) -> None:
    result = fit_segments(browse_only, SegmentationConfig())
    print(result.warnings, result.model.names, result.profile.to_string(), sep="\n")
    _check_segments(result, browse_only, DEFAULT_FEATURES, {"cart_adds_per_session", "purchases_per_session"})
    assert not any(naming.is_buyer_name(name) for name in result.model.names)  # nobody bought anything
