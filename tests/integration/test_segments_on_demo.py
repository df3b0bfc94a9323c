"""Segments on the demo shop recover its planted personas, name the buyers and the cart abandoners, and keep
their ids when refitted on features a few days later.

A fresh demo (2 000 users x 30 days) in a temporary folder: the landing files are ingested with
``pulse.ingest.raw_events.ingest_day`` and ``dbt run --select +user_features`` builds the features (no Dagster: the
job's other assets and checks are covered by test_pipeline.py, and skipping them keeps this test at ~20 s).
``user_features`` is built twice, as of the day after the last event and, with the ``features_as_of`` var,
a few days earlier. Segmentation runs with the production defaults (k chosen by silhouette, never forced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from demo_warehouse import ingest_demo, read_frame, run_dbt
from sklearn.metrics import adjusted_rand_score

from ml import matching, naming
from ml.segment_promotion import compare_with_champion, decide_segment_promotion
from ml.segmentation import SegmentationConfig, SegmentationResult, choose_k, fit_segments
from ml.user_segments import DEFAULT_PROMOTION_TOLERANCE
from pulse.demo.generator import PERSONAS_FILE_NAME

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 2000, 30, 7
SHIFT_DAYS = 3  # the earlier snapshot, for the refit


@dataclass(frozen=True)
class DemoFeatures:
    now: pd.DataFrame  # user_features as of the day after the last event
    earlier: pd.DataFrame  # user_features as of SHIFT_DAYS before that
    personas: pd.Series  # user_key -> planted persona
    as_of: date


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFeatures:
    home = tmp_path_factory.mktemp("segments_on_demo")
    landing, warehouse = ingest_demo(home, USERS, DAYS, SEED)
    run_dbt(home, warehouse, "run", "--select", "+user_features")
    now = read_frame(warehouse, "select * from user_features order by user_key")
    as_of = pd.Timestamp(now["as_of_date"].iloc[0]).date()
    earlier_as_of = (as_of - timedelta(days=SHIFT_DAYS)).isoformat()
    run_dbt(
        home,
        warehouse,
        "run",
        "--select",
        "feature_snapshot_dates",
        "user_feature_snapshots",
        "user_features",
        "--vars",
        json.dumps({"features_as_of": earlier_as_of}),
    )
    earlier = read_frame(warehouse, "select * from user_features order by user_key")
    personas = pd.read_csv(landing / PERSONAS_FILE_NAME).set_index("user_key")["persona"]
    return DemoFeatures(now=now, earlier=earlier, personas=personas, as_of=as_of)


@pytest.fixture(scope="module")
def fitted(demo: DemoFeatures) -> SegmentationResult:
    return fit_segments(demo.now, SegmentationConfig())


def _crosstab(result: SegmentationResult, personas: pd.Series) -> pd.DataFrame:
    a = result.assignments
    return pd.crosstab(a["segment_name"], a["user_key"].map(personas).rename("persona"))


def _summary(result: SegmentationResult, personas: pd.Series) -> str:
    sil = ", ".join(f"k={k}: {v:.3f}" for k, v in sorted(result.silhouettes.items()))
    return f"chosen k={result.chosen_k}; silhouette {sil}\n{_crosstab(result, personas).to_string()}"


def test_snapshots_are_a_few_days_apart(demo: DemoFeatures) -> None:
    assert len(demo.now) > 0.95 * USERS
    assert set(demo.now["user_key"]) <= set(demo.personas.index)
    assert pd.Timestamp(demo.earlier["as_of_date"].iloc[0]).date() == demo.as_of - timedelta(days=SHIFT_DAYS)
    assert set(demo.earlier["user_key"]) <= set(demo.now["user_key"])
    assert len(demo.earlier) < len(demo.now)


def test_silhouette_chosen_segments_recover_the_planted_personas(demo: DemoFeatures, fitted) -> None:
    config = fitted.config
    assert (config.k_min, config.k_max) == (2, 10)  # the production range: k is not forced
    assert fitted.chosen_k == choose_k(fitted.silhouettes, config.k_tolerance)
    truth = fitted.assignments["user_key"].map(demo.personas)
    ari = adjusted_rand_score(truth, fitted.assignments["segment_id"])
    print(f"ARI vs personas {ari:.3f}; {_summary(fitted, demo.personas)}")
    assert ari >= 0.5, f"ARI vs personas {ari:.3f}; {_summary(fitted, demo.personas)}"


def test_buyers_and_cart_abandoners_are_named(demo: DemoFeatures, fitted) -> None:
    table = _crosstab(fitted, demo.personas)
    buyers, abandoners = str(table["buyer"].idxmax()), str(table["cart_abandoner"].idxmax())
    message = f"most buyers in {buyers!r}, most cart abandoners in {abandoners!r}; {_summary(fitted, demo.personas)}"
    assert naming.is_buyer_name(buyers), message
    assert abandoners == "Cart abandoners", message


def test_refit_a_few_days_later_keeps_segment_ids(demo: DemoFeatures) -> None:
    before = fit_segments(demo.earlier, SegmentationConfig())
    after = fit_segments(demo.now, SegmentationConfig(), previous=before.model)
    agreement, common = matching.id_agreement_on_common(before.assignments, after.assignments)
    ari, _ = matching.adjusted_rand_on_common(before.assignments, after.assignments)
    assert after.match is not None
    message = (
        f"id agreement {agreement:.3f} on {common} common users (ARI {ari:.3f}); k {before.chosen_k} -> "
        f"{after.chosen_k}; ids {before.model.name_by_id()} -> {after.model.name_by_id()}; match distances "
        f"{np.round(after.match.distances, 3).tolist()}"
    )
    print(message)
    assert common == len(demo.earlier), message
    assert agreement >= 0.9, message
    # the weekly refit's rule promotes it: on the same users and silhouette sample it is as good, ids kept
    promotion = decide_segment_promotion(
        compare_with_champion(after, demo.now, before.model), "1", DEFAULT_PROMOTION_TOLERANCE
    )
    assert promotion.promote, promotion.reason
    # the refit, matched to the earlier model, still names the buyers' and the abandoners' segments
    table = _crosstab(after, demo.personas)
    assert naming.is_buyer_name(str(table["buyer"].idxmax())), message
    assert table["cart_abandoner"].idxmax() == "Cart abandoners", message
