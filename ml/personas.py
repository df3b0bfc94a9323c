"""The five visitor personas of the demo shop, defined once: who they are, how many there are, how they behave.

Read by the two generators of synthetic users:

* :mod:`pulse.demo.generator` simulates their visits event by event (:class:`Visits`: how often they come, which pages
  they see, how far down the cart -> checkout -> purchase funnel they go);
* :mod:`ml.synthetic` draws their ``user_features`` rows directly (:class:`Features`: per-session rates that
  describe the same behaviour at the level of one user's summary), for tests and benchmarks that need many
  users fast.

The two descriptions of a persona sit side by side in its :class:`Persona`, so a persona changed in one is
seen next to the other. Both generators share the names, the shares and the per-user activity level (a
lognormal with mean 1 and sigma :data:`ACTIVITY_SIGMA` multiplying the session rate: counts then mix "how
active" with "what kind of visitor"). The ground truth a segmentation is scored against is the persona a user
was drawn from (``landing/personas.csv`` for the demo). ``ml.intent_synthetic`` draws users of its own: it
plants a purchase signal an RFM model cannot express, which a persona lookup would give away.

Pure Python and numpy: no pulse import, no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ACTIVITY_SIGMA", "NAMES", "PERSONAS", "SHARES", "Features", "Persona", "Visits", "per_persona"]


@dataclass(frozen=True)
class Visits:
    """How a persona visits the demo shop (pulse.demo.generator, per session and per page)."""

    session_rate: float  # extra sessions per day, on top of the first
    pages_lam: float  # browse pages = 1 + Poisson(lam) ...
    pages_max: int  # ... at most this many
    landing_p: tuple[float, float, float, float]  # landing page type: home, category, product, search
    browse_p: tuple[float, float, float, float]  # later browse pages: home, category, product, search
    p_favourite: float  # a page's category is one of the user's favourites
    p_shortlist: float  # a product page shows one of a personal shortlist of three
    engaged_median_s: float  # engaged seconds per page (median, before the page type's factor)
    idle_mean_s: float  # idle seconds between pages (mean)
    scroll_beta: tuple[float, float]  # scroll depth ~ Beta(a, b)
    click_rate: float  # clicks per page (before engagement)
    p_add: float  # add_to_cart per product page
    p_mission: float  # the session came to buy: forces a cart add and checkout
    p_checkout: float  # not on a mission: cart page -> checkout
    p_purchase: float  # checkout -> purchase
    p_remove: float  # cart page: remove the last added item
    qty_lam: float  # quantity = 1 + Poisson(lam), at most 5
    p_wishlist: float  # custom.add_to_wishlist per page view


@dataclass(frozen=True)
class Features:
    """The same persona as one user's ``user_features`` row (ml.synthetic)."""

    sessions_lam: float  # sessions_total = 1 + Poisson(lam * activity)
    pages_per_session: float
    p_product: float  # share of page views that are product views
    categories_lam: float  # categories_viewed = 1 + Poisson(lam)
    searches_per_session: float
    p_add: float  # cart add per product view
    p_buy_per_session: float  # purchase per session (capped by the cart adds)
    aov_median: float  # order value
    session_seconds: float  # average session length (median)
    engaged_share: float  # engaged seconds / session seconds
    scroll_beta: tuple[float, float]  # scroll depth ~ Beta(3a, 3b)
    bounce_beta: tuple[float, float]  # bounce rate ~ Beta(a, b)
    engaged_rate_beta: tuple[float, float]  # engaged session rate ~ Beta(a, b)
    recency_mean_days: float  # days since the last visit (mean)


@dataclass(frozen=True)
class Persona:
    name: str
    share: float  # of all users
    visits: Visits
    features: Features


# Per-user activity: lognormal with mean 1 (mu = -sigma^2 / 2), multiplying the session rate.
ACTIVITY_SIGMA = 0.5

PERSONAS: tuple[Persona, ...] = (
    # Many pages and products across many categories, rarely a cart add.
    Persona(
        name="browser",
        share=0.28,
        visits=Visits(
            session_rate=0.14,
            pages_lam=8.0,
            pages_max=30,
            landing_p=(0.45, 0.35, 0.20, 0.0),
            browse_p=(0.04, 0.36, 0.56, 0.04),
            p_favourite=0.0,
            p_shortlist=0.0,
            engaged_median_s=30.0,
            idle_mean_s=12.0,
            scroll_beta=(2.5, 1.5),
            click_rate=0.7,
            p_add=0.015,
            p_mission=0.01,
            p_checkout=0.15,
            p_purchase=0.6,
            p_remove=0.15,
            qty_lam=0.1,
            p_wishlist=0.04,
        ),
        features=Features(
            sessions_lam=9.0,
            pages_per_session=9.0,
            p_product=0.55,
            categories_lam=5.0,
            searches_per_session=0.05,
            p_add=0.002,
            p_buy_per_session=0.0,
            aov_median=45.0,
            session_seconds=420.0,
            engaged_share=0.55,
            scroll_beta=(2.5, 1.5),
            bounce_beta=(1.0, 12.0),
            engaged_rate_beta=(8.0, 2.0),
            recency_mean_days=4.0,
        ),
    ),
    # Comes back and buys often, at a high order value, from a few favourite categories.
    Persona(
        name="buyer",
        share=0.14,
        visits=Visits(
            session_rate=0.09,
            pages_lam=4.0,
            pages_max=20,
            landing_p=(0.5, 0.15, 0.3, 0.05),
            browse_p=(0.05, 0.2, 0.6, 0.15),
            p_favourite=0.7,
            p_shortlist=0.0,
            engaged_median_s=22.0,
            idle_mean_s=8.0,
            scroll_beta=(2.0, 2.0),
            click_rate=0.6,
            p_add=0.3,
            p_mission=0.6,
            p_checkout=0.4,
            p_purchase=0.95,
            p_remove=0.1,
            qty_lam=0.7,
            p_wishlist=0.01,
        ),
        features=Features(
            sessions_lam=8.0,
            pages_per_session=4.5,
            p_product=0.55,
            categories_lam=1.0,
            searches_per_session=0.05,
            p_add=0.35,
            p_buy_per_session=0.7,
            aov_median=130.0,
            session_seconds=150.0,
            engaged_share=0.5,
            scroll_beta=(1.5, 3.0),
            bounce_beta=(1.0, 8.0),
            engaged_rate_beta=(7.0, 3.0),
            recency_mean_days=3.0,
        ),
    ),
    # Adds to cart and mostly leaves.
    Persona(
        name="cart_abandoner",
        share=0.18,
        visits=Visits(
            session_rate=0.07,
            pages_lam=5.0,
            pages_max=20,
            landing_p=(0.5, 0.2, 0.3, 0.0),
            browse_p=(0.05, 0.25, 0.62, 0.08),
            p_favourite=0.7,
            p_shortlist=0.0,
            engaged_median_s=28.0,
            idle_mean_s=12.0,
            scroll_beta=(2.0, 1.8),
            click_rate=0.6,
            p_add=0.3,
            p_mission=0.0,
            p_checkout=0.03,
            p_purchase=0.2,
            p_remove=0.3,
            qty_lam=0.2,
            p_wishlist=0.03,
        ),
        features=Features(
            sessions_lam=6.0,
            pages_per_session=5.5,
            p_product=0.6,
            categories_lam=1.5,
            searches_per_session=0.05,
            p_add=0.35,
            p_buy_per_session=0.0,
            aov_median=55.0,
            session_seconds=300.0,
            engaged_share=0.5,
            scroll_beta=(2.0, 1.8),
            bounce_beta=(1.0, 8.0),
            engaged_rate_beta=(7.0, 3.0),
            recency_mean_days=15.0,
        ),
    ),
    # Comes once or twice, bounces and leaves quickly.
    Persona(
        name="passive",
        share=0.25,
        visits=Visits(
            session_rate=0.012,
            pages_lam=0.3,
            pages_max=2,
            landing_p=(0.5, 0.25, 0.25, 0.0),
            browse_p=(0.5, 0.3, 0.2, 0.0),
            p_favourite=0.0,
            p_shortlist=0.0,
            engaged_median_s=5.0,
            idle_mean_s=6.0,
            scroll_beta=(0.8, 3.0),
            click_rate=0.1,
            p_add=0.0,
            p_mission=0.0,
            p_checkout=0.0,
            p_purchase=0.0,
            p_remove=0.0,
            qty_lam=0.0,
            p_wishlist=0.0,
        ),
        features=Features(
            sessions_lam=0.2,
            pages_per_session=1.2,
            p_product=0.2,
            categories_lam=0.2,
            searches_per_session=0.0,
            p_add=0.0,
            p_buy_per_session=0.0,
            aov_median=40.0,
            session_seconds=25.0,
            engaged_share=0.25,
            scroll_beta=(0.8, 3.0),
            bounce_beta=(8.0, 2.0),
            engaged_rate_beta=(1.0, 6.0),
            recency_mean_days=25.0,
        ),
    ),
    # Searches, goes straight to a shortlist of products in one favourite category, adds to cart and buys.
    Persona(
        name="intent_driven",
        share=0.15,
        visits=Visits(
            session_rate=0.06,
            pages_lam=5.0,
            pages_max=20,
            landing_p=(0.3, 0.1, 0.2, 0.4),
            browse_p=(0.02, 0.08, 0.6, 0.3),
            p_favourite=0.95,
            p_shortlist=0.85,
            engaged_median_s=40.0,
            idle_mean_s=10.0,
            scroll_beta=(3.0, 1.2),
            click_rate=0.6,
            p_add=0.2,
            p_mission=0.35,
            p_checkout=0.3,
            p_purchase=0.85,
            p_remove=0.1,
            qty_lam=0.2,
            p_wishlist=0.02,
        ),
        features=Features(
            sessions_lam=6.0,
            pages_per_session=5.5,
            p_product=0.6,
            categories_lam=0.3,
            searches_per_session=2.5,
            p_add=0.25,
            p_buy_per_session=0.5,
            aov_median=50.0,
            session_seconds=600.0,
            engaged_share=0.6,
            scroll_beta=(4.0, 1.0),
            bounce_beta=(1.0, 10.0),
            engaged_rate_beta=(9.0, 2.0),
            recency_mean_days=8.0,
        ),
    ),
)

NAMES: tuple[str, ...] = tuple(p.name for p in PERSONAS)
SHARES: tuple[float, ...] = tuple(p.share for p in PERSONAS)


def per_persona(value: Callable[[Persona], Any]) -> np.ndarray:
    """One value per persona, in the order of :data:`PERSONAS`: ``per_persona(lambda p: p.visits.p_add)``.
    Tuple values give one row per persona."""
    return np.array([value(p) for p in PERSONAS])
