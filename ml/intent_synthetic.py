"""Synthetic ``purchase_intent_training_set`` frames, for the purchase intent tests and benchmark.

:func:`synthetic_training_frame` draws ``users`` x ``snapshots`` rows (every user at every snapshot, as_of
dates ``interval_days`` apart) with the columns of the dbt table: the features of
:data:`ml.purchase_intent.FEATURES`, the label ``purchased_within_horizon`` and ``label_window_end_date``
(taken here as the last day of the window, ``as_of_date + horizon_days - 1``).

Each user is drawn from the demo's personas (:mod:`ml.personas`, in their shares) and has fixed traits centred
on the persona's (:class:`ml.personas.Features`: activity level, pages per visit, search habit, cart-add and
buying propensity, order value, session length, bounce and engagement rates) and spread around it, so users of
one persona differ; tenure and an unobserved intent are the user's own. Each snapshot redraws how active the
user was lately, and the counts follow from it, consistent with each other (``sessions_7d <= sessions_30d <=
sessions_total``, purchases never exceed cart adds, ``days_since_last_purchase`` / ``avg_order_value`` /
``cart_abandonment_rate`` are null without a purchase / cart add, a few scroll depths are null).

The label is drawn from a logit that is deliberately *not* an RFM model: beside recency and past purchases
it rewards open carts (cart adds without a purchase) only for users active in the last 7 days, search-led
browsing, a purchase 21-35 days ago (a replenishment cycle: non-monotone in the days), and penalises
bouncing, plus unobserved per-user noise. It never reads the persona, only the features and that noise. A
model that sees every feature and can form interactions (XGBoost) then ranks genuinely better than a
logistic regression on recency, frequency and monetary value.
Deterministic for a given seed. Pure numpy/pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml import personas

__all__ = ["synthetic_training_frame"]


def synthetic_training_frame(
    users: int,
    snapshots: int,
    *,
    seed: int = 0,
    interval_days: int = 7,
    horizon_days: int = 7,
    first_as_of: str = "2026-01-05",
) -> pd.DataFrame:
    """``users * snapshots`` rows of a purchase intent training set (see the module docstring)."""
    rng = np.random.default_rng(seed)
    u, s = int(users), int(snapshots)
    n = u * s
    user = np.repeat(np.arange(u), s)  # row -> user (rows grouped by user, snapshots in date order)
    snap = np.tile(np.arange(s), u)

    def per_user(values: np.ndarray) -> np.ndarray:
        return values[user]

    # Fixed user traits: centred on the user's persona (ml.personas), spread around it.
    persona = rng.choice(len(personas.NAMES), size=u, p=np.asarray(personas.SHARES))

    def trait(value: Callable[[personas.Features], Any]) -> np.ndarray:
        return personas.per_persona(lambda p: value(p.features))[persona]

    def spread(sigma: float) -> np.ndarray:
        return rng.lognormal(-(sigma**2) / 2, sigma, size=u)

    # activity: the persona's session rate relative to the average user's (mean 1 over all personas)
    sessions = personas.per_persona(lambda p: p.features.sessions_lam)
    activity = per_user(sessions[persona] / float(np.dot(personas.SHARES, sessions)) * spread(0.6))
    pages_per_session = per_user(np.maximum(1.0, trait(lambda f: f.pages_per_session) * spread(0.3)))
    search_rate = per_user(trait(lambda f: f.searches_per_session) * spread(0.5))
    p_add = per_user(np.clip(trait(lambda f: f.p_add) * spread(0.5), 0.0, 0.9))
    p_buy = per_user(np.clip(trait(lambda f: f.p_buy_per_session) * spread(0.5), 0.0, 1.0))
    aov = per_user(trait(lambda f: f.aov_median) * rng.lognormal(0.0, 0.5, size=u))
    session_seconds = per_user(trait(lambda f: f.session_seconds) * rng.lognormal(0.0, 0.6, size=u))
    engaged_share = per_user(np.clip(trait(lambda f: f.engaged_share) * spread(0.2), 0.0, 1.0))
    bounce = trait(lambda f: f.bounce_beta)
    bounce_level = per_user(rng.beta(bounce[:, 0], bounce[:, 1]))
    engaged = trait(lambda f: f.engaged_rate_beta)
    engaged_level = per_user(rng.beta(engaged[:, 0], engaged[:, 1]))
    scroll_ab = per_user(trait(lambda f: f.scroll_beta))
    tenure0 = per_user(rng.integers(0, 180, size=u))
    hidden = per_user(rng.normal(0.0, 0.6, size=u))  # unobserved intent

    # Per snapshot: how active lately, and the counts that follow.
    lately = activity * rng.lognormal(-0.18, 0.6, size=n)
    sessions_30d = rng.poisson(3.0 * lately)
    sessions_7d = rng.binomial(sessions_30d, 0.28)
    tenure = tenure0 + interval_days * snap
    sessions_total = np.maximum(1, sessions_30d + rng.poisson(activity * tenure / 10.0))
    active_days_30d = np.where(sessions_30d > 0, np.maximum(1, rng.binomial(sessions_30d, 0.8)), 0)
    sessions_per_active_day = np.where(active_days_30d > 0, sessions_30d / np.maximum(active_days_30d, 1), 0.0)

    days_since_last_visit = np.where(
        sessions_7d > 0,
        rng.integers(0, 7, size=n),
        np.where(sessions_30d > 0, rng.integers(7, 30, size=n), 30 + rng.geometric(1 / 30, size=n)),
    )
    days_since_first_visit = np.maximum(tenure, days_since_last_visit)
    days_since_last_visit = np.minimum(days_since_last_visit, days_since_first_visit)

    page_views = sessions_total + rng.poisson(sessions_total * (pages_per_session - 1.0))
    product_views = rng.binomial(page_views, per_user(trait(lambda f: f.p_product)))
    categories_viewed = np.minimum(np.minimum(12, 1 + rng.poisson(1.5, size=n)), page_views)
    searches = rng.poisson(sessions_total * search_rate)
    cart_adds = rng.binomial(product_views, p_add)
    purchases = np.minimum(cart_adds, rng.binomial(sessions_total, 0.3 * p_buy))
    revenue = np.round(purchases * aov * rng.lognormal(0.0, 0.15, size=n), 2)
    avg_order_value = np.where(purchases > 0, np.round(revenue / np.maximum(purchases, 1), 2), np.nan)
    cart_sessions = np.minimum(sessions_total, np.ceil(cart_adds / 1.5)).astype(np.int64)
    abandoned = np.maximum(cart_sessions - purchases, 0)
    cart_abandonment_rate = np.where(cart_sessions > 0, abandoned / np.maximum(cart_sessions, 1), np.nan)
    last_purchase = days_since_last_visit + rng.random(n) * (days_since_first_visit - days_since_last_visit)
    days_since_last_purchase = np.where(purchases > 0, np.floor(last_purchase), np.nan)

    avg_session_seconds = session_seconds * rng.lognormal(0.0, 0.25, size=n)
    avg_engaged_seconds = avg_session_seconds * engaged_share
    scroll = 100.0 * rng.beta(scroll_ab[:, 0], scroll_ab[:, 1])
    scroll = np.where(rng.random(n) < 0.05, np.nan, scroll)
    bounce_rate = np.clip(bounce_level + rng.normal(0.0, 0.08, size=n), 0.0, 1.0)
    engaged_session_rate = np.clip(engaged_level + rng.normal(0.0, 0.08, size=n), 0.0, 1.0)

    # The label: recency and past purchases, plus interactions and a non-monotone cycle RFM cannot express.
    recent = sessions_7d > 0
    open_carts = cart_adds - purchases
    logit = (
        -3.4
        + 1.0 * recent
        - 0.03 * np.minimum(days_since_last_visit, 60)
        + 2.2 * ((open_carts >= 2) & recent)
        + 1.4 * ((searches >= sessions_total) & (product_views >= 5))
        + 1.2 * ((days_since_last_purchase >= 21) & (days_since_last_purchase <= 35))
        + 0.35 * np.log1p(purchases)
        - 1.0 * (bounce_rate > 0.4)
        + hidden
    )
    label = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    start = np.datetime64(first_as_of, "D")
    as_of = start + (interval_days * snap).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "user_key": pd.Series([f"u{i:08d}" for i in range(u)]).to_numpy()[user],
            "as_of_date": pd.to_datetime(as_of),
            "days_since_last_visit": days_since_last_visit.astype(np.int64),
            "days_since_first_visit": days_since_first_visit.astype(np.int64),
            "sessions_7d": sessions_7d,
            "sessions_30d": sessions_30d,
            "sessions_total": sessions_total,
            "active_days_30d": active_days_30d,
            "sessions_per_active_day": np.round(sessions_per_active_day, 3),
            "avg_session_seconds": np.round(avg_session_seconds, 1),
            "avg_engaged_seconds": np.round(avg_engaged_seconds, 1),
            "avg_scroll_depth_pct": np.round(scroll, 1),
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
            "bounce_rate": np.round(bounce_rate, 3),
            "engaged_session_rate": np.round(engaged_session_rate, 3),
            "purchased_within_horizon": label,
            "label_window_end_date": pd.to_datetime(as_of + np.timedelta64(horizon_days - 1, "D")),
        }
    )
