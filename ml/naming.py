"""Plain names for segments that agree with the numbers they cite, and the per-segment profile table.

What names are computed from
  * ``centroids``: a segment's centroid in the scaled space *is* a vector of z-scores: for each model
    column, (mean over the segment's users of the transformed value - population mean) / population standard
    deviation, where "transformed" is log1p for counts, seconds, money, days and per-session rates
    (ml.segmentation). The naming *rules* use these (the space the segments were found in).
  * ``stats`` (:class:`SegmentStats`, optional): each column's mean per segment in original units, as the
    profile prints it (``<col>_mean``), and the population's mean and standard deviation. Every *claim* a name
    makes is checked against these, because they are the numbers a reader compares the name with. Without
    them (e.g. a caller with centroids only) the centroids stand in.

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

Rules (:data:`RULES`), in this order; the first whose condition holds on the centroid (thresholds in z
units) *and* whose claim holds on the segment's means (the same signal computed from the means: above /
below the population's) names the segment:
  #   name                  condition (centroid z)                         claim (means vs all users)
  1   Passive visitors      browsing <= -0.75 and engagement <= -0.5       browsing and engagement below
  2   Lapsed buyers         recency >= 0.75, frequency <= 0, buying >= 0.5  recency above, frequency not
                                                                           above, buying above
      Dormant               recency >= 0.75 and frequency <= 0             recency above, frequency not above
  3   Loyal high spenders   buying >= 0.5, spend >= 1.0, frequency >= 0.5  buying, spend, frequency above
  4   Intent shoppers       search >= 0.75, search >= buying, and          search above; cart or buying above
                            (cart >= 0.25 or buying >= 0.25)
  5   Buyers                buying >= 0.5                                  buying above
  6   Cart abandoners       cart >= 0.25 and (abandon >= 0.5 or            cart above; abandon above or
                            buying <= -0.25)                               buying below
  7   Buyers                at least half of the segment's users ever      the same
                            bought (``SegmentStats.bought``)
  8   Searchers             search >= 0.75                                 search above
  9   Browsers              browsing >= 0.25                               browsing above
  10  Passive visitors      browsing <= -0.5 or engagement <= -0.5         browsing or engagement below
  11  Casual visitors       anything else (close to the average user)      none
"Above" is strictly above the population mean. Rule 4 names searchers who go on to add to cart or buy,
searching being their strongest trait; rule 6's second test names abandoners when the model has no
abandonment column (as the defaults): they add to cart and buy clearly less than the average user. Rule 7
is absolute where the others are relative: on a purchase-only log everyone bought, so "buys more than the
average user" splits buyers from buyers, and without it the ones buying less than average would be named
"Casual visitors" (or "Passive visitors") though every one of them bought; they are buyers, told apart by
qualifiers.

Buyer names (:data:`BUYER_NAMES`, :func:`is_buyer_name`): "Buyers", "Loyal high spenders" and "Lapsed
buyers", also when qualified. "Intent shoppers" buy too but are named for searching.

Unique names (:func:`unique_names`). Segments whose rule gives the same name are told apart by comparative
qualifiers, derived from their means: the group is split on the column whose sorted means (in population
standard deviations) have the widest gap, the segments above the gap get the column's "more" phrase and
those below its "fewer" phrase (:data:`QUALIFIERS`: "Buyers (more orders per visit)" / "Buyers (fewer orders
per visit)"), and a side still holding several segments is split again, on another column ("Browsers (more
pages per visit, fewer searches per visit)") or, once, on the same one, its outer part becoming "the most" /
"the fewest" ("Buyers (fewest orders per visit)", "Buyers (fewer orders per visit)", "Buyers (more orders per
visit)", "Buyers (most orders per visit)": segments that differ on one column only). So every "more X"
segment averages more X than every "fewer X" segment it is compared with, and no two segments share a name
(no "Buyers 2"). Only five or more segments left alike on every other column exhaust the words; the last
resort then cites each one's mean of the column that differs most ("Buyers (fewer orders per visit, 1.2
purchases_per_session)").

Reading a name (:func:`claims`, :func:`contradictions`): the base name claims its rule's claim against all
users (one of its rules', for a name two rules give); two names with the same base are compared at the first
qualifier where they differ (a name without that qualifier is the one compared with), so "Buyers (fewer
orders per visit)" claims fewer orders per visit than "Buyers (more orders per visit)", and than a plain
"Buyers" kept from an earlier model. :func:`contradictions` lists every claim the numbers contradict, and
duplicates; names made here have none. Names kept from the previous champion (ml.matching) are checked the
same way and renamed when the new numbers contradict them. Everything is a pure function of its inputs: same
numbers, same names.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BUYER_NAMES",
    "QUALIFIERS",
    "RULES",
    "SIGNALS",
    "Rule",
    "SegmentStats",
    "base_name",
    "base_names",
    "bought",
    "claims",
    "contradictions",
    "is_buyer_name",
    "is_derived_name",
    "name_segments",
    "segment_profile",
    "segment_stats",
    "signals",
    "split_name",
    "unique_names",
]

LAST_PURCHASE = "days_since_last_purchase"
HAS_PURCHASED = "has_purchased"

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

# The base names (rules 2, 3 and 5) of segments that buy; a qualified "Buyers (higher spend)" is one too.
BUYER_NAMES: tuple[str, ...] = ("Buyers", "Loyal high spenders", "Lapsed buyers")

# column -> phrases for a segment that averages (more, fewer, the most, the fewest) of it than the segments it is
# told apart from. The superlatives only split a side again on the same column (see _split).
QUALIFIERS: dict[str, tuple[str, str, str, str]] = {
    "days_since_last_visit": ("seen longer ago", "seen more recently", "seen longest ago", "seen most recently"),
    "days_since_first_visit": ("longer-standing", "newer", "longest-standing", "newest"),
    "sessions_7d": (
        "more visits this week",
        "fewer visits this week",
        "most visits this week",
        "fewest visits this week",
    ),
    "sessions_30d": (
        "more visits this month",
        "fewer visits this month",
        "most visits this month",
        "fewest visits this month",
    ),
    "sessions_total": ("more visits", "fewer visits", "most visits", "fewest visits"),
    "active_days_30d": ("more active days", "fewer active days", "most active days", "fewest active days"),
    "sessions_per_active_day": ("more visits a day", "fewer visits a day", "most visits a day", "fewest visits a day"),
    "avg_session_seconds": ("longer visits", "shorter visits", "longest visits", "shortest visits"),
    "avg_engaged_seconds": ("more engaged time", "less engaged time", "most engaged time", "least engaged time"),
    "avg_scroll_depth_pct": ("deeper scrolling", "shallower scrolling", "deepest scrolling", "shallowest scrolling"),
    "page_views": ("more pages", "fewer pages", "most pages", "fewest pages"),
    "product_views": (
        "more products viewed",
        "fewer products viewed",
        "most products viewed",
        "fewest products viewed",
    ),
    "categories_viewed": ("wider interests", "narrower interests", "widest interests", "narrowest interests"),
    "searches": ("more searches", "fewer searches", "most searches", "fewest searches"),
    "cart_adds": ("more cart adds", "fewer cart adds", "most cart adds", "fewest cart adds"),
    "purchases": ("more orders", "fewer orders", "most orders", "fewest orders"),
    "revenue": ("higher spend", "lower spend", "highest spend", "lowest spend"),
    "page_views_per_session": (
        "more pages per visit",
        "fewer pages per visit",
        "most pages per visit",
        "fewest pages per visit",
    ),
    "product_views_per_session": (
        "more products per visit",
        "fewer products per visit",
        "most products per visit",
        "fewest products per visit",
    ),
    "searches_per_session": (
        "more searches per visit",
        "fewer searches per visit",
        "most searches per visit",
        "fewest searches per visit",
    ),
    "cart_adds_per_session": (
        "more cart adds per visit",
        "fewer cart adds per visit",
        "most cart adds per visit",
        "fewest cart adds per visit",
    ),
    "purchases_per_session": (
        "more orders per visit",
        "fewer orders per visit",
        "most orders per visit",
        "fewest orders per visit",
    ),
    "revenue_per_session": (
        "higher spend per visit",
        "lower spend per visit",
        "highest spend per visit",
        "lowest spend per visit",
    ),
    "avg_order_value": ("larger baskets", "smaller baskets", "largest baskets", "smallest baskets"),
    "cart_abandonment_rate": (
        "abandoning more carts",
        "abandoning fewer carts",
        "abandoning the most carts",
        "abandoning the fewest carts",
    ),
    "days_since_last_purchase": (
        "bought longer ago",
        "bought more recently",
        "bought longest ago",
        "bought most recently",
    ),
    "has_purchased": ("more of them bought", "fewer of them bought", "most of them bought", "fewest of them bought"),
    "bounce_rate": ("bouncing more", "bouncing less", "bouncing most", "bouncing least"),
    "engaged_session_rate": (
        "more engaged visits",
        "fewer engaged visits",
        "most engaged visits",
        "fewest engaged visits",
    ),
}

FALLBACK_NAME = "Casual visitors"


def _phrase(column: str, level: int) -> str:
    """The qualifier of ``column`` at ``level``: +1 more, -1 fewer, +2 the most, -2 the fewest."""
    more, fewer, most, fewest = QUALIFIERS.get(
        column, (f"more {column}", f"less {column}", f"most {column}", f"least {column}")
    )
    return {1: more, -1: fewer, 2: most, -2: fewest}[level]


# ----------------------------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class SegmentStats:
    """The numbers names cite: per segment (rows, in the centroids' order) the mean of each model column in
    original units, as the profile prints them (``days_since_last_purchase`` over buyers only), and the
    population's mean and standard deviation of the same."""

    means: np.ndarray  # (segments, columns)
    population_mean: np.ndarray  # (columns,)
    population_std: np.ndarray  # (columns,)
    bought: np.ndarray | None = None  # (segments,) share of the segment's users who ever bought; None: unknown

    def z(self) -> np.ndarray:
        """Segment means minus the population's, in population standard deviations (1 where constant); a
        segment without a value on a column (NaN) is at the population mean."""
        scale = np.where(self.population_std > 1e-12, self.population_std, 1.0)
        return np.nan_to_num((self.means - self.population_mean) / scale, nan=0.0)

    def bought_share(self) -> np.ndarray:
        """Per segment, the share of its users who ever bought (NaN when unknown)."""
        return self.bought if self.bought is not None else np.full(len(self.means), np.nan)


def _profile_values(raw: pd.DataFrame) -> np.ndarray:
    """The model columns in original units as the profile averages them: days since the last purchase only
    for users who bought (the transform fills the others with a cap)."""
    columns = list(raw.columns)
    values = raw.to_numpy(dtype=np.float64, copy=True)
    if LAST_PURCHASE in columns and HAS_PURCHASED in columns:
        values[raw[HAS_PURCHASED].to_numpy() == 0, columns.index(LAST_PURCHASE)] = np.nan
    return values


def segment_stats(raw: pd.DataFrame, labels: np.ndarray, k: int, bought: np.ndarray | None = None) -> SegmentStats:
    """:class:`SegmentStats` of segments ``0..k-1`` (``labels`` per row of ``raw``, the transform's ``raw``;
    ``bought`` per row, whether the user ever bought, when known)."""
    values = _profile_values(raw)
    labels = np.asarray(labels)
    means = np.full((k, values.shape[1]), np.nan)
    shares = np.full(k, np.nan)
    with warnings.catch_warnings():  # an all-NaN column in a segment has a NaN mean: expected
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(k):
            rows = labels == i
            if rows.any():
                means[i] = np.nanmean(values[rows], axis=0)
                if bought is not None:
                    shares[i] = float(np.mean(bought[rows]))
        population_mean = np.nanmean(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
        population_std = np.nanstd(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
    return SegmentStats(
        means, population_mean, np.nan_to_num(population_std, nan=0.0), shares if bought is not None else None
    )


def bought(df: pd.DataFrame) -> np.ndarray | None:
    """Per row of a ``user_features`` frame, whether the user ever bought (``purchases`` > 0, else a
    ``days_since_last_purchase``); None when the frame has neither column."""
    if "purchases" in df.columns:
        return pd.to_numeric(df["purchases"], errors="coerce").fillna(0).to_numpy(dtype=np.float64) > 0
    if LAST_PURCHASE in df.columns:
        return df[LAST_PURCHASE].notna().to_numpy()
    return None


# ----------------------------------------------------------------------------------------------- rules


def signals(z: np.ndarray, columns: Sequence[str]) -> dict[str, float]:
    """The signals of one segment's z row (one value per column); NaN when none of a signal's columns exist."""
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


Signals = Mapping[str, float]
BOUGHT = "bought"  # not a z signal: the share of the segment's users who ever bought (SegmentStats.bought)
MOST = 0.5


def _ge(s: Signals, signal: str, threshold: float) -> bool:
    return bool(s.get(signal, np.nan) >= threshold)  # NaN compares False: unknown never fires


def _le(s: Signals, signal: str, threshold: float) -> bool:
    return bool(s.get(signal, np.nan) <= threshold)


def _above(s: Signals, signal: str) -> bool:
    return bool(s.get(signal, np.nan) > 0)


def _below(s: Signals, signal: str) -> bool:
    return bool(s.get(signal, np.nan) < 0)


def _search_leads(s: Signals) -> bool:
    return not s.get("buying", np.nan) > s.get("search", np.nan)  # unknown buying: search leads


@dataclass(frozen=True)
class Rule:
    """A base name: the condition on the centroid's signals that gives it, and the claim it makes, checked on
    the signals of the segment's means (0 = the population's mean)."""

    name: str
    condition: Callable[[Signals], bool]
    claim: Callable[[Signals], bool]
    says: str  # the claim in words, for messages


RULES: tuple[Rule, ...] = (
    Rule(
        "Passive visitors",
        lambda s: _le(s, "browsing", -0.75) and _le(s, "engagement", -0.5),
        lambda s: _below(s, "browsing") and _below(s, "engagement"),
        "browse and engage less than the average user",
    ),
    Rule(
        "Lapsed buyers",
        lambda s: _ge(s, "recency", 0.75) and _le(s, "frequency", 0.0) and _ge(s, "buying", 0.5),
        lambda s: _above(s, "recency") and not _above(s, "frequency") and _above(s, "buying"),
        "were last seen longer ago, visit no more often and buy more than the average user",
    ),
    Rule(
        "Dormant",
        lambda s: _ge(s, "recency", 0.75) and _le(s, "frequency", 0.0),
        lambda s: _above(s, "recency") and not _above(s, "frequency"),
        "were last seen longer ago and visit no more often than the average user",
    ),
    Rule(
        "Loyal high spenders",
        lambda s: _ge(s, "buying", 0.5) and _ge(s, "spend", 1.0) and _ge(s, "frequency", 0.5),
        lambda s: _above(s, "buying") and _above(s, "spend") and _above(s, "frequency"),
        "buy, spend and visit more than the average user",
    ),
    Rule(
        "Intent shoppers",
        lambda s: _ge(s, "search", 0.75) and _search_leads(s) and (_ge(s, "cart", 0.25) or _ge(s, "buying", 0.25)),
        lambda s: _above(s, "search") and (_above(s, "cart") or _above(s, "buying")),
        "search more, and add to cart or buy more, than the average user",
    ),
    Rule(
        "Buyers",
        lambda s: _ge(s, "buying", 0.5),
        lambda s: _above(s, "buying"),
        "buy more than the average user",
    ),
    Rule(
        "Cart abandoners",
        lambda s: _ge(s, "cart", 0.25) and (_ge(s, "abandon", 0.5) or _le(s, "buying", -0.25)),
        lambda s: _above(s, "cart") and (_above(s, "abandon") or _below(s, "buying")),
        "add to cart more, and abandon more carts or buy less, than the average user",
    ),
    Rule(
        "Buyers",
        lambda s: _ge(s, BOUGHT, MOST),
        lambda s: _ge(s, BOUGHT, MOST),
        "mostly bought (at least half of them)",
    ),
    Rule(
        "Searchers",
        lambda s: _ge(s, "search", 0.75),
        lambda s: _above(s, "search"),
        "search more than the average user",
    ),
    Rule(
        "Browsers",
        lambda s: _ge(s, "browsing", 0.25),
        lambda s: _above(s, "browsing"),
        "browse more than the average user",
    ),
    Rule(
        "Passive visitors",
        lambda s: _le(s, "browsing", -0.5) or _le(s, "engagement", -0.5),
        lambda s: _below(s, "browsing") or _below(s, "engagement"),
        "browse or engage less than the average user",
    ),
)


def base_name(s: Signals, measured: Signals | None = None) -> str:
    """The first rule whose condition holds on the centroid's signals ``s`` and whose claim holds on the
    signals of the segment's means ``measured`` (when given); "Casual visitors" when none does."""
    for rule in RULES:
        if rule.condition(s) and (measured is None or rule.claim(measured)):
            return rule.name
    return FALLBACK_NAME


def _signals_of(z: np.ndarray, columns: Sequence[str], bought_share: float) -> dict[str, float]:
    return signals(z, columns) | {BOUGHT: bought_share}


def base_names(centroids: np.ndarray, columns: Sequence[str], stats: SegmentStats | None = None) -> list[str]:
    """:func:`base_name` of every segment (rows of ``centroids``)."""
    measured = stats.z() if stats is not None else centroids
    shares = stats.bought_share() if stats is not None else np.full(len(centroids), np.nan)
    return [
        base_name(_signals_of(c, columns, b), _signals_of(m, columns, b))
        for c, m, b in zip(centroids, measured, shares, strict=True)
    ]


def is_buyer_name(name: str) -> bool:
    """Whether ``name`` (possibly qualified, "Buyers (more orders per visit)") is a buyer name."""
    base = name.split(" (", 1)[0].rstrip(" 0123456789")
    return base in BUYER_NAMES


# ----------------------------------------------------------------------------------------------- unique names


Qualifier = tuple[int, int]  # (column index, level: +1 more, -1 fewer, +2 the most, -2 the fewest)


def _split(
    members: list[int], values: np.ndarray, prefix: tuple[Qualifier, ...] = (), again: bool = True
) -> dict[int, list[Qualifier]]:
    """Qualifiers that tell ``members`` (segments sharing a base name and the qualifiers ``prefix``) apart.

    The split is on the column whose sorted values have the widest gap between two consecutive segments (the
    first column on ties): above the gap "more", below "fewer"; each side holding several segments is split
    again. A column is used once per name, except that a side may be split again on the column it was just
    split on: its outer part becomes "the most" ("the fewest") and the rest stays "more" ("fewer"). So in any
    two names the first qualifier where they differ compares them truthfully (:func:`contradictions`).
    """
    out: dict[int, list[Qualifier]] = {m: list(prefix) for m in members}
    if len(members) < 2:
        return out
    used = {j for j, _ in prefix}
    last = prefix[-1] if prefix else None
    best_gap, best_col, best_cut = 0.0, -1, 0.0
    for j in range(values.shape[1]):
        if j in used and not (again and last is not None and last[0] == j and abs(last[1]) == 1):
            continue
        v = np.sort(values[members, j])
        gaps = np.diff(v)
        g = int(np.argmax(gaps))
        if gaps[g] > best_gap + 1e-12:
            best_gap, best_col, best_cut = float(gaps[g]), j, float((v[g] + v[g + 1]) / 2)
    if best_col < 0:  # equal on every column left: the caller's last resort tells them apart
        return out
    high = [m for m in members if values[m, best_col] > best_cut]
    low = [m for m in members if values[m, best_col] <= best_cut]
    if last is not None and last[0] == best_col:  # the same column again: the outer side goes superlative
        outer, inner = (high, low) if last[1] > 0 else (low, high)
        out.update(_split(outer, values, (*prefix[:-1], (best_col, 2 * last[1]))))
        out.update(_split(inner, values, prefix, again=False))
    else:
        out.update(_split(high, values, (*prefix, (best_col, 1))))
        out.update(_split(low, values, (*prefix, (best_col, -1))))
    return out


def _compose(base: str, qualifiers: Sequence[Qualifier], columns: Sequence[str]) -> str:
    if not qualifiers:
        return base
    return f"{base} ({', '.join(_phrase(columns[j], level) for j, level in qualifiers)})"


def split_name(name: str) -> tuple[str, list[str]]:
    """("Buyers", ["more orders per visit", "fewer searches per visit"]) from "Buyers (more orders per visit,
    fewer searches per visit)"."""
    if name.endswith(")") and " (" in name:
        base, rest = name.split(" (", 1)
        return base, [q.strip() for q in rest[:-1].split(",")]
    return name, []


def unique_names(
    names: Sequence[str],
    centroids: np.ndarray,
    columns: Sequence[str],
    locked: Sequence[bool] | None = None,
    stats: SegmentStats | None = None,
) -> list[str]:
    """Tell apart the segments that share a base name with comparative qualifiers (see the module docstring).

    ``names`` are base names, or for ``locked`` segments (names kept from the previous champion) full names
    that are left as they are; every segment of a base group is split, locked ones included, so that the
    newcomers' qualifiers are relative to them. Whether a locked name still agrees with the numbers is the
    caller's check (:func:`contradictions`).
    """
    out = list(names)
    locked = list(locked) if locked is not None else [False] * len(out)
    values = stats.z() if stats is not None else np.asarray(centroids, dtype=np.float64)
    bases = [split_name(n)[0] for n in names]
    for base in dict.fromkeys(bases):
        group = [i for i, b in enumerate(bases) if b == base]
        if len(group) < 2:
            continue
        for i, qualifiers in _split(group, values).items():
            if not locked[i]:
                out[i] = _compose(base, qualifiers, columns)
    # Last resort, for segments equal on every column they could still be told apart by (only possible when
    # one column separates five or more of them): cite the mean of the column that differs most.
    for name in [n for n, c in Counter(out).items() if c > 1]:
        group = [i for i, n in enumerate(out) if n == name and not locked[i]]
        if not group:
            continue
        spread = values[group].max(axis=0) - values[group].min(axis=0)
        j = int(np.argmax(spread))
        shown = stats.means[:, j] if stats is not None else values[:, j]
        for i in group:
            label = f"{shown[i]:.3g} {columns[j]}"
            out[i] = f"{name[:-1]}, {label})" if name.endswith(")") else f"{name} ({label})"
    return out


def name_segments(centroids: np.ndarray, columns: Sequence[str], stats: SegmentStats | None = None) -> list[str]:
    """One unique plain name per segment (rows of ``centroids``, scaled space; ``stats`` their means)."""
    return unique_names(base_names(centroids, columns, stats), centroids, columns, stats=stats)


# ----------------------------------------------------------------------------------------------- reading names


def _phrases(columns: Sequence[str]) -> dict[str, Qualifier]:
    return {_phrase(c, level): (j, level) for j, c in enumerate(columns) for level in (1, -1, 2, -2)}


def _cites_a_number(word: str) -> bool:
    return word[:1].isdigit() or word[:1] in "-."


def claims(name: str, columns: Sequence[str]) -> tuple[tuple[Rule, ...], list[Qualifier]]:
    """What ``name`` says: the rules that give its base name (one of their claims must hold; none for "Casual
    visitors" or a name no rule gives) and its qualifiers as (column index, level); a qualifier that is not a
    phrase of ``columns`` raises. The last resort's cited means ("1.52 purchases_per_session") claim no order
    and are left out."""
    base, words = split_name(name)
    rules = tuple(r for r in RULES if r.name == base)
    phrases = _phrases(columns)
    words = [w for w in words if not _cites_a_number(w)]
    unknown = [w for w in words if w not in phrases]
    if unknown:
        raise ValueError(f"{name!r}: qualifiers {unknown} are not phrases of the columns {list(columns)}")
    return rules, [phrases[w] for w in words]


def is_derived_name(name: str, columns: Sequence[str]) -> bool:
    """Whether ``name`` is one this naming gives with ``columns``: a rule's name or "Casual visitors", with
    qualifiers (if any) that are phrases of ``columns``."""
    base, words = split_name(name)
    if base != FALLBACK_NAME and all(r.name != base for r in RULES):
        return False
    phrases = _phrases(columns)
    return all(w in phrases for w in words)  # a last-resort cited mean is not kept: it is derived again


def contradictions(
    names: Sequence[str], columns: Sequence[str], z: np.ndarray, bought: np.ndarray | None = None
) -> list[tuple[tuple[int, ...], str]]:
    """Every claim of ``names`` that the numbers contradict, and every repeated name, as (the segments involved,
    why). ``z``: one row per segment, one column per model column, on a scale where 0 is the population mean
    and the order is that of the segments' means (:meth:`SegmentStats.z`); ``bought``: per segment the share
    of users who ever bought, when known (:meth:`SegmentStats.bought_share`)."""
    shares = np.asarray(bought, dtype=np.float64) if bought is not None else np.full(len(names), np.nan)
    problems: list[tuple[tuple[int, ...], str]] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            problems.append(((seen[name], i), f"two segments are named {name!r}"))
        seen.setdefault(name, i)
    parsed = [claims(n, columns) for n in names]
    for i, (rules, _) in enumerate(parsed):
        measured = _signals_of(z[i], columns, shares[i])
        if rules and not any(rule.claim(measured) for rule in rules):
            says = " or ".join(rule.says for rule in rules)
            problems.append(((i,), f"{names[i]!r} says its users {says}, which its numbers contradict"))
    bases = [split_name(n)[0] for n in names]
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if bases[a] != bases[b]:
                continue
            qa, qb = parsed[a][1], parsed[b][1]
            d = 0
            while d < len(qa) and d < len(qb) and qa[d] == qb[d]:
                d += 1
            if d < len(qa) and d < len(qb):
                (ja, level_a), (jb, level_b) = qa[d], qb[d]
                if ja != jb:
                    continue  # different columns: no comparison claimed
                hi, lo, j = (a, b, ja) if level_a > level_b else (b, a, ja)
            elif d < len(qa):  # b is a plain (or shorter) name; a's next qualifier is relative to it
                j, level = qa[d]
                hi, lo = (a, b) if level > 0 else (b, a)
            elif d < len(qb):
                j, level = qb[d]
                hi, lo = (b, a) if level > 0 else (a, b)
            else:
                continue  # the same claims (a last-resort pair, or a duplicate reported above)
            if not z[hi, j] > z[lo, j]:
                problems.append(
                    ((hi, lo), f"{names[hi]!r} should average more {columns[j]} than {names[lo]!r}, and does not")
                )
    return problems


# ----------------------------------------------------------------------------------------------- profile


def segment_profile(
    raw: pd.DataFrame,
    scaled: np.ndarray,
    segment_ids: np.ndarray,
    names: Mapping[int, str],
    bought: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per segment: users, share, the share who ever bought (``bought_share``, when ``bought`` per row is
    given), and for every model column its mean in original units and its z-score.

    ``raw`` holds the model columns in original units (nulls filled, ``has_purchased`` added: the
    transform's ``raw``), ``scaled`` the same rows in the scaled space. ``<col>_mean`` is the plain mean
    (``days_since_last_purchase`` over buyers only, ``has_purchased`` is the buyers' share); ``<col>_z``
    is the mean scaled value, the segment's centroid coordinate (z-score of the transformed column). The
    last row, segment_id -1 "All users", has the population means (its z-scores are 0).
    """
    columns = list(raw.columns)
    ids = np.asarray(segment_ids)
    values = _profile_values(raw)
    rows = []
    for sid, name in sorted(names.items()):
        mask = ids == sid
        rows.append(_profile_row(sid, name, mask, values, scaled, columns, len(ids), bought))
    everyone = np.ones(len(ids), dtype=bool)
    rows.append(_profile_row(-1, "All users", everyone, values, scaled, columns, len(ids), bought))
    return pd.DataFrame(rows)


def _profile_row(
    sid: int,
    name: str,
    mask: np.ndarray,
    values: np.ndarray,
    scaled: np.ndarray,
    columns: Sequence[str],
    total: int,
    bought: np.ndarray | None = None,
) -> dict[str, object]:
    users = int(mask.sum())
    row: dict[str, object] = {
        "segment_id": sid,
        "segment_name": name,
        "users": users,
        "share": users / total if total else float("nan"),
    }
    if bought is not None:
        row["bought_share"] = float(np.mean(bought[mask])) if users else float("nan")
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
