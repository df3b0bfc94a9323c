"""Synthetic ``user_features`` frames with planted personas, for tests and benchmarks.

:func:`synthetic_user_features` draws N users from the five personas of :mod:`ml.personas` (the demo's: same
names, same shares; their :class:`ml.personas.Features`) and derives every column of the dbt
``user_features`` mart from a few per-persona rates, so the columns are consistent with each other
(purchases never exceed cart adds, ``sessions_30d`` never exceeds ``sessions_total``,
``days_since_last_purchase`` and ``avg_order_value`` are null for users who never bought,
``cart_abandonment_rate`` is null without a cart add). The persona a user was drawn from is returned
separately: it is the ground truth segmentation is scored against, never an input.

The behaviour follows the demo's: browsers see many pages and products but rarely add to cart; buyers
come back and buy often at a high order value; cart abandoners add to cart and mostly leave; passive
visitors come once or twice, bounce and leave quickly; intent-driven shoppers search, add to cart and
buy. Each persona has its own per-session rates (pages, searches, cart adds, purchases per visit), and, as
in the demo, each user a lognormal activity level (mean 1, sigma ``ml.personas.ACTIVITY_SIGMA``)
multiplying the number of sessions: counts then mix "how active" with "what kind of visitor", while
per-session rates keep only the latter. Deterministic for a given seed. Pure numpy/pandas, no pulse import
(``ml`` stays self-contained).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml import personas

__all__ = ["PERSONAS", "PERSONA_SHARE", "synthetic_user_features"]

PERSONAS: tuple[str, ...] = personas.NAMES
PERSONA_SHARE: tuple[float, ...] = personas.SHARES


def _rates(value: Callable[[personas.Features], Any]) -> np.ndarray:
    return personas.per_persona(lambda p: value(p.features))


# Per persona (ml/personas.py: Features), in the order of PERSONAS.
_SESSIONS_LAM = _rates(lambda f: f.sessions_lam)  # sessions_total = 1 + Poisson
_PAGES_PER_SESSION = _rates(lambda f: f.pages_per_session)
_P_PRODUCT = _rates(lambda f: f.p_product)  # share of page views that are product views
_CATEGORIES_LAM = _rates(lambda f: f.categories_lam)
_SEARCH_PER_SESSION = _rates(lambda f: f.searches_per_session)
_P_ADD = _rates(lambda f: f.p_add)  # cart add per product view
_P_BUY_SESSION = _rates(lambda f: f.p_buy_per_session)  # purchase per session (capped by cart adds)
_AOV_MEDIAN = _rates(lambda f: f.aov_median)
_SESSION_SECONDS = _rates(lambda f: f.session_seconds)
_ENGAGED_SHARE = _rates(lambda f: f.engaged_share)
_SCROLL_BETA = 3 * _rates(lambda f: f.scroll_beta)
_BOUNCE_BETA = _rates(lambda f: f.bounce_beta)
_ENGAGED_RATE_BETA = _rates(lambda f: f.engaged_rate_beta)
_RECENCY_MEAN_DAYS = _rates(lambda f: f.recency_mean_days)
# Per-user activity multiplier on the session rate, lognormal with mean 1 (pulse.demo.generator draws the same): it
# makes every count (sessions, page views, cart adds, ...) mix "how active" with "what kind of visitor".
_ACTIVITY_SIGMA = personas.ACTIVITY_SIGMA


def synthetic_user_features(
    n_users: int, *, seed: int = 0, days: int = 60, as_of_date: str = "2026-09-30"
) -> tuple[pd.DataFrame, np.ndarray]:
    """``n_users`` rows of ``user_features`` and the planted persona index (into :data:`PERSONAS`) of each."""
    rng = np.random.default_rng(seed)
    n = int(n_users)
    persona = rng.choice(len(PERSONAS), size=n, p=np.asarray(PERSONA_SHARE))

    def draw(param: np.ndarray) -> np.ndarray:
        return param[persona]

    activity = rng.lognormal(-(_ACTIVITY_SIGMA**2) / 2, _ACTIVITY_SIGMA, size=n)
    sessions_total = 1 + rng.poisson(draw(_SESSIONS_LAM) * activity)
    sessions_30d = rng.binomial(sessions_total, 0.6)
    sessions_7d = rng.binomial(sessions_30d, 0.25)
    active_days_30d = np.where(sessions_30d > 0, np.maximum(1, rng.binomial(sessions_30d, 0.85)), 0)
    sessions_per_active_day = np.where(active_days_30d > 0, sessions_30d / np.maximum(active_days_30d, 1), 0.0)

    days_since_last_visit = np.minimum(days - 1, rng.gamma(8.0, draw(_RECENCY_MEAN_DAYS) / 8.0)).astype(np.int64)
    # recent sessions imply a recent visit
    days_since_last_visit = np.where(sessions_7d > 0, np.minimum(days_since_last_visit, 6), days_since_last_visit)
    days_since_last_visit = np.where(
        (sessions_30d > 0) & (sessions_7d == 0), np.clip(days_since_last_visit, 7, 29), days_since_last_visit
    )
    days_since_last_visit = np.where(sessions_30d == 0, np.maximum(days_since_last_visit, 30), days_since_last_visit)
    days_since_last_visit = np.minimum(days_since_last_visit, days - 1)
    span = np.where(sessions_total > 1, rng.integers(0, days, size=n), 0)
    days_since_first_visit = np.minimum(days - 1, days_since_last_visit + span)

    page_views = sessions_total + rng.poisson(sessions_total * (draw(_PAGES_PER_SESSION) - 1).clip(0.05))
    product_views = rng.binomial(page_views, draw(_P_PRODUCT))
    categories_viewed = np.minimum(np.minimum(12, 1 + rng.poisson(draw(_CATEGORIES_LAM))), page_views)
    searches = rng.poisson(sessions_total * draw(_SEARCH_PER_SESSION))
    cart_adds = rng.binomial(product_views, draw(_P_ADD))
    purchases = np.minimum(rng.binomial(sessions_total, draw(_P_BUY_SESSION)), cart_adds)
    aov = draw(_AOV_MEDIAN) * rng.lognormal(0.0, 0.35, size=n)
    revenue = np.round(purchases * aov * rng.lognormal(0.0, 0.1, size=n), 2)
    avg_order_value = np.where(purchases > 0, np.round(revenue / np.maximum(purchases, 1), 2), np.nan)
    cart_sessions = np.minimum(sessions_total, np.ceil(cart_adds / 1.5)).astype(np.int64)
    abandoned = np.maximum(cart_sessions - purchases, 0)
    cart_abandonment_rate = np.where(cart_sessions > 0, abandoned / np.maximum(cart_sessions, 1), np.nan)
    last_purchase = days_since_last_visit + rng.random(n) * (days_since_first_visit - days_since_last_visit)
    days_since_last_purchase = np.where(purchases > 0, np.floor(last_purchase), np.nan)

    avg_session_seconds = draw(_SESSION_SECONDS) * rng.lognormal(0.0, 0.5, size=n)
    avg_engaged_seconds = avg_session_seconds * draw(_ENGAGED_SHARE) * rng.lognormal(0.0, 0.2, size=n)
    scroll = _SCROLL_BETA[persona]
    bounce = _BOUNCE_BETA[persona]
    engaged = _ENGAGED_RATE_BETA[persona]
    frame = pd.DataFrame(
        {
            "user_key": [f"u{i:08d}" for i in range(n)],
            "as_of_date": pd.Timestamp(as_of_date).date(),
            "days_since_last_visit": days_since_last_visit,
            "days_since_first_visit": days_since_first_visit,
            "sessions_7d": sessions_7d,
            "sessions_30d": sessions_30d,
            "sessions_total": sessions_total,
            "active_days_30d": active_days_30d,
            "sessions_per_active_day": np.round(sessions_per_active_day, 3),
            "avg_session_seconds": np.round(avg_session_seconds, 1),
            "avg_engaged_seconds": np.round(np.minimum(avg_engaged_seconds, avg_session_seconds), 1),
            "avg_scroll_depth_pct": np.round(100 * rng.beta(scroll[:, 0], scroll[:, 1]), 1),
            "page_views": page_views,
            "product_views": product_views,
            "categories_viewed": categories_viewed,
            "searches": searches,
            "cart_adds": cart_adds,
            "purchases": purchases,
            "revenue": revenue,
            "avg_order_value": avg_order_value,
            "cart_abandonment_rate": np.round(cart_abandonment_rate, 3),
            "days_since_last_purchase": days_since_last_purchase,
            "bounce_rate": np.round(
                np.where(sessions_total == 1, rng.random(n) < bounce[:, 0] / bounce.sum(1), 0)
                + np.where(sessions_total > 1, rng.beta(bounce[:, 0], bounce[:, 1]), 0),
                3,
            ),
            "engaged_session_rate": np.round(rng.beta(engaged[:, 0], engaged[:, 1]), 3),
        }
    )
    return frame, persona
