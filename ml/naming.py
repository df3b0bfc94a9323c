"""Plain names for segments, and the per-segment profile table.

Names come from a segment's centroid in the scaled space, which *is* a vector of z-scores: for each model
column, (mean over the segment's users of the transformed value - population mean) / population standard
deviation, where "transformed" is log1p for counts, seconds, money, days and per-session rates
(ml.segmentation). A z of +1 on ``searches`` means the segment searches one population standard deviation
(of log searches) more than the average user.

Signals (each the mean z of the columns present; a signal without any of its columns is unknown and no
rule using it fires; a leading minus flips a column; ``*_per_session`` are the per-session rates derived
by ml.segmentation, count / max(sessions_total, 1)):
  recency     days_since_last_visit (high = not seen for long)
  frequency   sessions_30d, sessions_7d, sessions_total, active_days_30d
  browsing    product_views, page_views, categories_viewed, product_views_per_session, page_views_per_session
  engagement  avg_engaged_seconds, avg_session_seconds, avg_scroll_depth_pct, engaged_session_rate,
              -bounce_rate
  search      searches, searches_per_session
  cart        cart_adds, cart_adds_per_session
  abandon     cart_abandonment_rate
  buying      purchases, has_purchased, revenue, purchases_per_session, revenue_per_session
  spend       revenue, avg_order_value, revenue_per_session

Rules, in this order; the first that matches names the segment (thresholds in z units):
  1. "Passive visitors"     browsing <= -0.75 and engagement <= -0.5: few pages, short, bouncing visits
  2. "Lapsed buyers"        recency >= 0.75 and frequency <= 0 and buying >= 0.5
     "Dormant"              recency >= 0.75 and frequency <= 0
  3. "Loyal high spenders"  buying >= 0.5 and spend >= 1.0 and frequency >= 0.5
  4. "Intent shoppers"      search >= 0.75 and search >= buying and (cart >= 0.25 or buying >= 0.25): they
                            search, then add to cart or buy; searching is their strongest trait
  5. "Buyers"               buying >= 0.5
  6. "Cart abandoners"      cart >= 0.25 and (abandon >= 0.5 or buying <= -0.25): they add to cart and
                            abandon most carts, or buy clearly less than the average user (the second
                            test names them when the model has no abandonment column, as the defaults;
                            buyers were taken by rule 5)
  7. "Searchers"            search >= 0.75
  8. "Browsers"             browsing >= 0.25
  9. "Passive visitors"     browsing <= -0.5 or engagement <= -0.5
 10. "Casual visitors"      anything else (close to the average user)

Buyer names (:data:`BUYER_NAMES`, :func:`is_buyer_name`): "Buyers", "Loyal high spenders" and "Lapsed
buyers", also when qualified or numbered as below. "Intent shoppers" buy too but are named for searching.

Unique names. When several segments get the same name, each is qualified by the column on which it differs
most from the mean z of that group (ties: the first column in model order), phrased from
:data:`QUALIFIERS`: "Browsers (wide interests)" / "Browsers (narrow interests)". Two segments differ most on
the same column with opposite signs, so a pair always comes out distinct. Names that are *locked* (kept
from the previous champion by ml.matching) are never changed; only the others get qualified, against the
locked ones. If names still collide (three or more similar segments), the smaller segments get " 2", " 3"
in order. Everything is a pure function of the centroids: same centroids, same names.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BUYER_NAMES",
    "QUALIFIERS",
    "SIGNALS",
    "base_name",
    "is_buyer_name",
    "name_segments",
    "segment_profile",
    "signals",
    "unique_names",
]

SIGNALS: dict[str, tuple[str, ...]] = {
    "recency": ("days_since_last_visit",),
    "frequency": ("sessions_30d", "sessions_7d", "sessions_total", "active_days_30d"),
    "browsing": (
        "product_views",
        "page_views",
        "categories_viewed",
        "product_views_per_session",
        "page_views_per_session",
    ),
    "engagement": (
        "avg_engaged_seconds",
        "avg_session_seconds",
        "avg_scroll_depth_pct",
        "engaged_session_rate",
        "-bounce_rate",
    ),
    "search": ("searches", "searches_per_session"),
    "cart": ("cart_adds", "cart_adds_per_session"),
    "abandon": ("cart_abandonment_rate",),
    "buying": ("purchases", "has_purchased", "revenue", "purchases_per_session", "revenue_per_session"),
    "spend": ("revenue", "avg_order_value", "revenue_per_session"),
}

# The base names (rules 2, 3 and 5) of segments that buy; a qualified "Buyers (high spend)" is one too.
BUYER_NAMES: tuple[str, ...] = ("Buyers", "Loyal high spenders", "Lapsed buyers")

# column -> (phrase when the segment is high on it, phrase when low)
QUALIFIERS: dict[str, tuple[str, str]] = {
    "days_since_last_visit": ("lapsing", "recent"),
    "days_since_first_visit": ("long-standing", "new"),
    "sessions_7d": ("active this week", "quiet this week"),
    "sessions_30d": ("frequent", "infrequent"),
    "sessions_total": ("frequent", "infrequent"),
    "active_days_30d": ("frequent", "infrequent"),
    "sessions_per_active_day": ("repeat visits", "one visit a day"),
    "avg_session_seconds": ("long visits", "short visits"),
    "avg_engaged_seconds": ("engaged", "less engaged"),
    "avg_scroll_depth_pct": ("deep scrolling", "shallow scrolling"),
    "page_views": ("many pages", "few pages"),
    "product_views": ("many products", "few products"),
    "categories_viewed": ("wide interests", "narrow interests"),
    "searches": ("searching", "not searching"),
    "cart_adds": ("many cart adds", "few cart adds"),
    "purchases": ("frequent orders", "few orders"),
    "revenue": ("high spend", "low spend"),
    "page_views_per_session": ("many pages per visit", "few pages per visit"),
    "product_views_per_session": ("many products per visit", "few products per visit"),
    "searches_per_session": ("searching", "not searching"),
    "cart_adds_per_session": ("many cart adds", "few cart adds"),
    "purchases_per_session": ("frequent orders", "few orders"),
    "revenue_per_session": ("high spend", "low spend"),
    "avg_order_value": ("large baskets", "small baskets"),
    "cart_abandonment_rate": ("abandoning carts", "completing carts"),
    "days_since_last_purchase": ("bought long ago", "bought recently"),
    "has_purchased": ("purchasers", "non-purchasers"),
    "bounce_rate": ("bouncing", "not bouncing"),
    "engaged_session_rate": ("engaged", "disengaged"),
}

FALLBACK_NAME = "Casual visitors"


def signals(z: np.ndarray, columns: Sequence[str]) -> dict[str, float]:
    """The signals of one centroid ``z`` (one value per column); NaN when none of a signal's columns exist."""
    position = {c: i for i, c in enumerate(columns)}
    out: dict[str, float] = {}
    for signal, members in SIGNALS.items():
        values = []
        for member in members:
            sign, col = (-1.0, member[1:]) if member.startswith("-") else (1.0, member)
            if col in position:
                values.append(sign * float(z[position[col]]))
        out[signal] = float(np.mean(values)) if values else float("nan")
    return out


def base_name(s: Mapping[str, float]) -> str:
    """Rules 1-10 of the module docstring, on the signals of one segment."""

    def ge(signal: str, threshold: float) -> bool:
        return bool(s.get(signal, np.nan) >= threshold)  # NaN compares False: unknown never fires

    def le(signal: str, threshold: float) -> bool:
        return bool(s.get(signal, np.nan) <= threshold)

    if le("browsing", -0.75) and le("engagement", -0.5):
        return "Passive visitors"
    if ge("recency", 0.75) and le("frequency", 0.0):
        return "Lapsed buyers" if ge("buying", 0.5) else "Dormant"
    if ge("buying", 0.5) and ge("spend", 1.0) and ge("frequency", 0.5):
        return "Loyal high spenders"
    search_leads = not s.get("buying", np.nan) > s.get("search", np.nan)  # unknown buying: search leads
    if ge("search", 0.75) and search_leads and (ge("cart", 0.25) or ge("buying", 0.25)):
        return "Intent shoppers"
    if ge("buying", 0.5):
        return "Buyers"
    if ge("cart", 0.25) and (ge("abandon", 0.5) or le("buying", -0.25)):
        return "Cart abandoners"
    if ge("search", 0.75):
        return "Searchers"
    if ge("browsing", 0.25):
        return "Browsers"
    if le("browsing", -0.5) or le("engagement", -0.5):
        return "Passive visitors"
    return FALLBACK_NAME


def is_buyer_name(name: str) -> bool:
    """Whether ``name`` (possibly qualified, "Buyers (high spend)", or numbered, "Buyers 2") is a buyer name."""
    base = name.split(" (", 1)[0].rstrip(" 0123456789")
    return base in BUYER_NAMES


def _qualifier(column: str, high: bool) -> str:
    high_phrase, low_phrase = QUALIFIERS.get(column, (f"high {column}", f"low {column}"))
    return high_phrase if high else low_phrase


def unique_names(
    names: Sequence[str],
    centroids: np.ndarray,
    columns: Sequence[str],
    locked: Sequence[bool] | None = None,
) -> list[str]:
    """Make ``names`` unique (see the module docstring); segments are assumed ordered by decreasing size."""
    out = list(names)
    locked = list(locked) if locked is not None else [False] * len(out)
    for name in dict.fromkeys(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) < 2:
            continue
        centre = centroids[group].mean(axis=0)
        for i in group:
            if locked[i]:
                continue
            diff = centroids[i] - centre
            j = int(np.argmax(np.abs(diff)))  # argmax takes the first column on ties
            out[i] = f"{name} ({_qualifier(columns[j], diff[j] > 0)})"
    # Last resort: numbered suffixes, keeping locked names and the first (largest) of each remaining clash.
    seen: set[str] = {n for n, lock in zip(out, locked, strict=True) if lock}
    for i, name in enumerate(out):
        if locked[i]:
            continue
        candidate, number = name, 1
        while candidate in seen:
            number += 1
            candidate = f"{name} {number}"
        out[i] = candidate
        seen.add(candidate)
    return out


def name_segments(centroids: np.ndarray, columns: Sequence[str]) -> list[str]:
    """One unique plain name per centroid row (rows ordered by decreasing segment size)."""
    base = [base_name(signals(c, columns)) for c in centroids]
    return unique_names(base, centroids, columns)


def segment_profile(
    raw: pd.DataFrame,
    scaled: np.ndarray,
    segment_ids: np.ndarray,
    names: Mapping[int, str],
) -> pd.DataFrame:
    """Per segment: users, share, and for every model column its mean in original units and its z-score.

    ``raw`` holds the model columns in original units (nulls filled, ``has_purchased`` added: the
    transform's ``raw``), ``scaled`` the same rows in the scaled space. ``<col>_mean`` is the plain mean
    (``days_since_last_purchase`` over buyers only, ``has_purchased`` is the buyers' share); ``<col>_z``
    is the mean scaled value, the segment's centroid coordinate (z-score of the transformed column). The
    last row, segment_id -1 "All users", has the population means (its z-scores are 0).
    """
    columns = list(raw.columns)
    ids = np.asarray(segment_ids)
    values = raw.to_numpy(dtype=np.float64, copy=True)
    if "days_since_last_purchase" in columns and "has_purchased" in columns:
        j = columns.index("days_since_last_purchase")
        values[raw["has_purchased"].to_numpy() == 0, j] = np.nan
    rows = []
    for sid, name in sorted(names.items()):
        mask = ids == sid
        rows.append(_profile_row(sid, name, mask, values, scaled, columns, len(ids)))
    rows.append(_profile_row(-1, "All users", np.ones(len(ids), dtype=bool), values, scaled, columns, len(ids)))
    return pd.DataFrame(rows)


def _profile_row(
    sid: int,
    name: str,
    mask: np.ndarray,
    values: np.ndarray,
    scaled: np.ndarray,
    columns: Sequence[str],
    total: int,
) -> dict[str, object]:
    users = int(mask.sum())
    row: dict[str, object] = {
        "segment_id": sid,
        "segment_name": name,
        "users": users,
        "share": users / total if total else float("nan"),
    }
    means = zs = None
    if users:
        with warnings.catch_warnings():  # a column that is all-NaN in a segment has a NaN mean: expected
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(values[mask], axis=0)
        zs = scaled[mask].mean(axis=0)
    for j, col in enumerate(columns):
        row[f"{col}_mean"] = float(means[j]) if means is not None else float("nan")
        row[f"{col}_z"] = float(zs[j]) if zs is not None else float("nan")
    return row
