"""Deterministic, realistic and fast demo-shop event generator.

:func:`generate_demo` simulates the visitors of a small web shop and writes what its collector would have
received: one gzip JSONL file per day under ``landing/events/<YYYY-MM-DD>/demo.jsonl.gz`` (a day's file holds
the events *received* that UTC day), plus ``landing/personas.csv`` (``user_key,persona``), the ground truth
that segmentation can be evaluated against.

Five personas (browser, buyer, cart_abandoner, passive, intent_driven; defined in :mod:`ml.personas`) differ
in how often they visit, how many pages they see and of which categories, how long they stay engaged, how deep
they scroll, and how far they go down the cart -> checkout -> purchase funnel. Every run also injects the
unhappy paths ingestion must cope with, deterministically and counted in :class:`DemoSummary`: duplicate
deliveries, late arrivals and a few malformed lines of each kind in :data:`MALFORMED_KINDS`.

Lines are written in received_at order; absent optional fields are left out (never ``null``); keys come
in the order event_id, event_type, event_time, received_at, session_id, page_view_id, identity and consent,
page fields, then event-specific fields. Timestamps are RFC 3339 UTC with milliseconds
(``2026-09-01T18:03:07.412Z``). One custom event type, ``custom.add_to_wishlist``, exercises the
``custom.*`` path of the contract.

Speed: everything is vectorised with numpy per day (and per chunk of sessions for very busy days), the JSON
lines are assembled with pyarrow string kernels (fixed-width parts such as ids and timestamps are laid out
directly as bytes), and gzip compression runs in worker threads while the next day is generated. Same
arguments give byte-identical files.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import personas
from pulse.core.contract import EVENT_TYPES
from pulse.core.gzip_members import gzip_member
from pulse.core.progress import ProgressBar

__all__ = [
    "MALFORMED_KINDS",
    "PERSONAS",
    "DemoSummary",
    "default_start",
    "generate_demo",
    "users_for_target_events",
]

PERSONAS: tuple[str, ...] = personas.NAMES  # defined in ml/personas.py, with their behaviour
MALFORMED_KINDS: tuple[str, ...] = (
    "truncated_json",
    "missing_event_id",
    "unknown_event_type",
    "negative_price",
    "bad_timestamp",
    "missing_identity",
)
DEMO_FILE_NAME = "demo.jsonl.gz"
PERSONAS_FILE_NAME = "personas.csv"


@dataclass(frozen=True)
class DemoSummary:
    users: int
    days: int
    seed: int
    start: date
    events_written: int  # well-formed contract events written (incl. injected duplicates)
    files: list[Path]
    duplicates_injected: int  # extra copies of an existing event (same event_id)
    # well-formed lines (incl. duplicate copies) in a later day's file than their event_time date: the
    # injected late arrivals, duplicates delivered after midnight, and the odd event a few ms before midnight
    late_injected: int
    malformed_injected: dict[str, int]  # kind -> deliberately bad lines (not in events_written)
    personas: dict[str, int]  # persona -> number of users
    seconds: float


# --------------------------------------------------------------------------------------------------------
# The shop and its visitors: all behaviour parameters in one place.
# --------------------------------------------------------------------------------------------------------

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BASE_URL = "https://demo-shop.example.com"
SHOP = "Pulse Demo Shop"

INTENT = PERSONAS.index("intent_driven")
PERSONA_SHARE = np.array(personas.SHARES)

# Event types as written (the contract's, plus one custom event to exercise the ``custom.*`` path).
EVENT_NAMES: tuple[str, ...] = (*EVENT_TYPES, "custom.add_to_wishlist")
(
    E_PAGE_VIEW,
    E_PING,
    E_SCROLL,
    E_CLICK,
    E_SEARCH,
    E_PRODUCT_VIEW,
    E_ADD,
    E_REMOVE,
    E_CHECKOUT,
    E_PURCHASE,
    E_IDENTIFY,
    E_WISHLIST,
) = range(len(EVENT_NAMES))

# Page types. Browse pages are drawn per persona; the funnel pages (cart, checkout, confirmation) follow.
T_HOME, T_CATEGORY, T_PRODUCT, T_SEARCH, T_CART, T_CHECKOUT, T_CONFIRM = range(7)
TYPE_ENGAGE = np.array([0.6, 0.8, 1.2, 0.8, 0.7, 1.0, 0.4])  # engaged-time factor per page type
TYPE_DOC_HEIGHT = np.array([4200, 5200, 3600, 4800, 1800, 2200, 1400])

# Per-persona behaviour (ml/personas.py: Visits), one value per persona in the order of PERSONAS.
SESSION_RATE = personas.per_persona(lambda p: p.visits.session_rate)
PAGES_LAM = personas.per_persona(lambda p: p.visits.pages_lam)
PAGES_MAX = personas.per_persona(lambda p: p.visits.pages_max)
LANDING_P = personas.per_persona(lambda p: p.visits.landing_p)
BROWSE_P = personas.per_persona(lambda p: p.visits.browse_p)
P_FAVOURITE = personas.per_persona(lambda p: p.visits.p_favourite)
P_SHORTLIST = personas.per_persona(lambda p: p.visits.p_shortlist)
ENGAGED_MEDIAN_S = personas.per_persona(lambda p: p.visits.engaged_median_s)
IDLE_MEAN_S = personas.per_persona(lambda p: p.visits.idle_mean_s)
SCROLL_BETA = personas.per_persona(lambda p: p.visits.scroll_beta)
CLICK_RATE = personas.per_persona(lambda p: p.visits.click_rate)
P_ADD = personas.per_persona(lambda p: p.visits.p_add)
P_MISSION = personas.per_persona(lambda p: p.visits.p_mission)
P_CART = 0.4  # non-mission session with a cart add opens the cart page
P_CHECKOUT = personas.per_persona(lambda p: p.visits.p_checkout)
P_PURCHASE = personas.per_persona(lambda p: p.visits.p_purchase)
P_REMOVE = personas.per_persona(lambda p: p.visits.p_remove)
QTY_LAM = personas.per_persona(lambda p: p.visits.qty_lam)
P_WISHLIST = personas.per_persona(lambda p: p.visits.p_wishlist)

P_LOGGED_IN = 0.85
P_CONSENT_ANALYTICS = 0.97
P_CONSENT_PERSONALIZATION = 0.90
P_LATE = 0.01
P_DUPLICATE = 0.005
MALFORMED_RATE = 0.0005
MIN_SESSION_GAP_MS = 3 * HOUR_MS
MAX_BROWSE_OFFSET_MS = HOUR_MS  # browse pages starting later than this into a session are dropped

# Daily (UTC) and weekly seasonality: evening peak, later and flatter weekends, busier Sat/Sun.
HOUR_WEEKDAY = np.array(
    [0.8, 0.5, 0.35, 0.3, 0.35, 0.6, 1.2, 2.2, 3.0, 3.4, 3.6, 3.8]
    + [4.4, 4.2, 3.8, 3.7, 3.9, 4.6, 5.8, 7.0, 7.4, 6.4, 4.4, 2.2]
)
HOUR_WEEKEND = np.array(
    [1.4, 0.9, 0.6, 0.45, 0.4, 0.45, 0.7, 1.2, 2.2, 3.4, 4.4, 5.0]
    + [5.2, 5.0, 4.8, 4.8, 5.0, 5.4, 6.0, 6.6, 6.6, 5.6, 4.0, 2.4]
)
DOW_WEIGHT = np.array([0.95, 0.9, 0.9, 0.92, 0.85, 1.2, 1.3])  # Monday .. Sunday

VIEWPORTS = np.array([667, 736, 780, 844, 896, 768, 800, 900, 1024, 1080])

# (name, display, log-normal price median, sigma, product nouns, search queries)
CATEGORIES: tuple[tuple[str, str, float, float, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "electronics",
        "Electronics",
        90.0,
        0.8,
        ("Headphones", "Smartwatch", "Bluetooth Speaker", "USB-C Charger", "4K Monitor")
        + ("Mechanical Keyboard", "Wireless Mouse", "Power Bank", "Action Camera", "E-Reader"),
        ("wireless headphones", "smartwatch", "usb c charger", "bluetooth speaker")
        + ("4k monitor", "keyboard", "power bank", "camera"),
    ),
    (
        "fashion",
        "Fashion",
        45.0,
        0.5,
        ("Denim Jacket", "Sneakers", "Wool Scarf", "Chino Trousers", "Linen Shirt")
        + ("Rain Coat", "Leather Belt", "Hoodie", "Ankle Boots", "Beanie"),
        ("sneakers", "denim jacket", "hoodie", "rain coat", "linen shirt", "boots", "scarf", "belt"),
    ),
    (
        "home",
        "Home & Kitchen",
        38.0,
        0.7,
        ("Table Lamp", "Throw Blanket", "Ceramic Vase", "Cast Iron Pan", "Coffee Grinder")
        + ("Bath Towel Set", "Wall Clock", "Storage Basket", "Scented Candle", "Chef Knife"),
        ("lamp", "blanket", "coffee grinder", "pan", "candle", "towels", "vase", "knife"),
    ),
    (
        "beauty",
        "Beauty",
        22.0,
        0.6,
        ("Face Serum", "Lip Balm", "Hair Dryer", "Body Lotion", "Eau de Parfum")
        + ("Nail Polish Set", "Sheet Mask", "Beard Oil", "Sunscreen SPF50", "Shampoo"),
        ("serum", "sunscreen", "shampoo", "perfume", "lip balm", "hair dryer", "lotion", "nail polish"),
    ),
    (
        "sports",
        "Sports & Outdoors",
        48.0,
        0.7,
        ("Yoga Mat", "Running Shoes", "Dumbbell Set", "Cycling Helmet", "Water Bottle")
        + ("Resistance Bands", "Tennis Racket", "Hiking Backpack", "Foam Roller", "Swim Goggles"),
        ("yoga mat", "running shoes", "dumbbells", "helmet", "water bottle", "backpack", "tennis", "goggles"),
    ),
    (
        "books",
        "Books",
        16.0,
        0.4,
        ("Cookbook", "Thriller Novel", "Travel Guide", "Graphic Novel", "Poetry Collection")
        + ("Biography", "Picture Book", "Science Atlas", "Language Course", "Notebook"),
        ("cookbook", "thriller", "travel guide", "graphic novel", "biography", "poetry", "atlas", "notebook"),
    ),
    (
        "toys",
        "Toys & Games",
        28.0,
        0.6,
        ("Building Blocks", "Plush Bear", "Jigsaw Puzzle", "Remote Control Car", "Board Game")
        + ("Wooden Train Set", "Card Game", "Kite", "Art Kit", "Doll House"),
        ("building blocks", "puzzle", "board game", "rc car", "plush", "train set", "kite", "art kit"),
    ),
    (
        "grocery",
        "Gourmet Food",
        9.0,
        0.5,
        ("Espresso Beans", "Green Tea", "Olive Oil", "Dark Chocolate", "Granola")
        + ("Hot Sauce", "Pasta Selection", "Honey", "Spice Set", "Oat Milk"),
        ("coffee beans", "green tea", "olive oil", "chocolate", "granola", "hot sauce", "honey", "oat milk"),
    ),
)
ADJECTIVES = ("Classic", "Pro", "Eco", "Compact", "Deluxe", "Essential", "Urban", "Premium", "Everyday")
N_CATEGORIES = len(CATEGORIES)
PER_CATEGORY = 40  # products per category; index within the category = popularity rank
N_QUERIES = 8  # search queries per category
CATEGORY_POPULARITY = np.array([1.3, 1.4, 1.1, 1.0, 0.9, 0.7, 0.7, 0.6])
_ZIPF = 1.0 / np.arange(1, PER_CATEGORY + 1) ** 0.9
ZIPF_CDF = np.cumsum(_ZIPF) / _ZIPF.sum()

# Traffic sources of a session's landing page: (probability, referrer, (utm_source, utm_medium, utm_campaign))
SOURCES: tuple[tuple[float, str | None, tuple[str, str, str] | None], ...] = (
    (0.34, None, None),
    (0.18, "https://www.google.com/", None),
    (0.04, "https://www.bing.com/", None),
    (0.05, "https://www.google.com/", ("google", "cpc", "brand_search")),
    (0.07, "https://www.google.com/", ("google", "cpc", "generic_shopping")),
    (0.05, "https://www.facebook.com/", ("facebook", "paid_social", "autumn_sale")),
    (0.05, "https://www.instagram.com/", ("instagram", "paid_social", "new_arrivals")),
    (0.08, None, ("newsletter", "email", "weekly_digest")),
    (0.04, None, ("newsletter", "email", "vip_promo")),
    (0.05, "https://blog.example.org/best-gifts", None),
    (0.05, "https://deals.example.net/", ("affiliate", "referral", "partner_deals")),
)
SOURCE_CDF = np.cumsum([s[0] for s in SOURCES])

CLICK_ELEMENTS = (
    "a.nav-link",
    "a.product-card",
    "button.filter",
    "img.product-gallery",
    "button.size-select",
    "a.breadcrumb",
    "button.newsletter-close",
    "a.footer-link",
    "button.load-more",
    "a.logo",
)
EL_ADD, EL_CHECKOUT, EL_PLACE_ORDER, EL_REMOVE = range(len(CLICK_ELEMENTS), len(CLICK_ELEMENTS) + 4)
ELEMENTS = CLICK_ELEMENTS + (
    "button.add-to-cart",
    "button.checkout",
    "button.place-order",
    "button.remove-item",
)

MAX_CHUNK_SESSIONS = 20_000  # bounds memory on very busy days
MAX_MERGE_BYTES = 1 << 30  # a day's parts bigger than this are written one after the other, unmerged
GZIP_LEVEL = 1
GZIP_BLOCK = 8 << 20  # input bytes per gzip member: big days compress on all writer threads
WRITER_THREADS = 2

# --------------------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------------------

_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype=np.uint8).reshape(256, 2)


def _draw(rng: np.random.Generator, probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One categorical draw per row, from row ``group[i]`` of ``probs`` (groups x choices)."""
    cdf = np.cumsum(probs, axis=1)
    cdf = cdf / cdf[:, -1:]
    u = rng.random(len(group))
    return (u[:, None] >= cdf[group][:, :-1]).sum(axis=1)


def _draw1(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(cdf) - 1)


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _rank_in_group(counts: np.ndarray) -> np.ndarray:
    """0, 1, .. counts[g]-1 for each group g, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(_group_starts(counts), counts)


def _exclusive_cumsum_by_group(values: np.ndarray, group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows sorted by group: sum of the earlier values of the same group."""
    c = np.cumsum(values) - values
    return c - c[_group_starts(counts)][group]


def _uuid(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random (version 4) UUIDs as an (n, 36) uint8 matrix of ASCII."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = _HEX_PAIRS.view(np.uint16).ravel()[raw].view(np.uint8)  # (n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for lo, hi, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):  # 8-4-4-4-12
        out[:, at : at + hi - lo] = digits[:, lo:hi]
    return out


def _digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    v = values.astype(np.int64, copy=True)
    for i in range(width - 1, -1, -1):
        out[:, col + i] = 48 + v % 10
        v //= 10


def _timestamps(ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds -> (n, 24) uint8 of ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    n = len(ms)
    out = np.empty((n, 24), dtype=np.uint8)
    if n == 0:
        return out
    day = ms // DAY_MS
    rem = ms - day * DAY_MS
    d0, d1 = int(day.min()), int(day.max())
    dates = np.arange(d0, d1 + 1).astype("datetime64[D]").astype(str)
    table = np.frombuffer("".join(dates).encode(), dtype=np.uint8).reshape(-1, 10)
    out[:, 0:10] = table[day - d0]
    out[:, 10] = ord("T")
    _digits(out, 11, rem // HOUR_MS, 2)
    out[:, 13] = ord(":")
    _digits(out, 14, rem // 60_000 % 60, 2)
    out[:, 16] = ord(":")
    _digits(out, 17, rem // 1000 % 60, 2)
    out[:, 19] = ord(".")
    _digits(out, 20, rem % 1000, 3)
    out[:, 23] = ord("Z")
    return out


def _fixed(n: int, parts: list[bytes | np.ndarray]) -> pa.StringArray:
    """Concatenate constant byte strings and (n, w) uint8 matrices column-wise into one string array."""
    widths = [len(p) if isinstance(p, bytes) else p.shape[1] for p in parts]
    width = sum(widths)
    buf = np.empty((n, width), dtype=np.uint8)
    col = 0
    for part, w in zip(parts, widths, strict=True):
        buf[:, col : col + w] = np.frombuffer(part, dtype=np.uint8) if isinstance(part, bytes) else part
        col += w
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))


def _take(table: pa.Array, idx: np.ndarray) -> pa.Array:
    """``table[idx]``, null where ``idx < 0``."""
    return table.take(pa.array(idx, mask=idx < 0))


def _join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate strings element-wise; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def _join_skip(*parts: pa.Array | str) -> pa.Array:
    """Concatenate strings element-wise, leaving out null parts."""
    return pc.binary_join_element_wise(*parts, "", null_handling="skip")


def _numbers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values.astype(np.int64)), pa.string())


def _money(cents: np.ndarray) -> pa.Array:
    """Integer cents -> ``"123.45"`` strings."""
    cents = cents.astype(np.int64)
    return _join(_numbers(cents // 100), ".", _take(_pieces()["two_digits"], cents % 100))


def _string_bytes(arr: pa.Array) -> memoryview:
    """The UTF-8 bytes of all values of a string array, back to back."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or len(offsets) == 0:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


# --------------------------------------------------------------------------------------------------------
# The world: catalogue, pages and users, built once per run.
# --------------------------------------------------------------------------------------------------------


@dataclass
class _World:
    start_ms: int
    days: int
    range_end_ms: int
    # catalogue
    price_cents: np.ndarray
    product_piece: pa.Array  # ,"product_id":..,"category":..,"price":..
    search_piece: pa.Array  # ,"search_query":..
    page_url: pa.Array  # by page key
    title_piece: pa.Array  # ,"page_title":.. by page key
    k_category: int
    k_product: int
    k_search: int
    k_cart: int
    source_ref_piece: pa.Array
    source_utm_piece: pa.Array
    source_qs: pa.Array
    source_qs_amp: pa.Array
    # users
    persona: np.ndarray
    logged_in: np.ndarray
    activity: np.ndarray
    favourite: np.ndarray  # (users, 2) categories; intent_driven's intent category is column 0
    shortlist: np.ndarray  # (users, 3) products in the intent category
    viewport: np.ndarray
    user_piece: pa.Array | None  # ,"user_id":..,"anonymous_id":..,"consent_analytics":..,..
    user_key: pa.Array | None


_CONSTANT_PIECES: dict[str, pa.Array] = {}


def _pieces() -> dict[str, pa.Array]:
    if not _CONSTANT_PIECES:
        _CONSTANT_PIECES["type"] = pa.array([f',"event_type":"{t}"' for t in EVENT_NAMES])
        _CONSTANT_PIECES["quantity"] = pa.array([f',"quantity":{q}' for q in range(100)])
        _CONSTANT_PIECES["element"] = pa.array([f',"element":"{e}"' for e in ELEMENTS])
        _CONSTANT_PIECES["pct"] = pa.array([f',"scroll_depth_pct":{p},"scroll_depth_px":' for p in (25, 50, 75, 100)])
        _CONSTANT_PIECES["props"] = pa.array([',"properties":{"list":"default"}'])
        _CONSTANT_PIECES["bool"] = pa.array(["false", "true"])
        _CONSTANT_PIECES["two_digits"] = pa.array([f"{i:02d}" for i in range(100)])
    return _CONSTANT_PIECES


def _build_world(users: int, days: int, seed: int, start: date, with_strings: bool) -> _World:
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
    # The catalogue is the shop's, the same for every seed.
    crng = np.random.default_rng(20260901)
    names: list[str] = []
    cats: list[str] = []
    prices = np.empty(N_CATEGORIES * PER_CATEGORY, dtype=np.int64)
    for c, (cat, _display, median, sigma, nouns, _queries) in enumerate(CATEGORIES):
        combos = [f"{a} {n}" for a in ADJECTIVES for n in nouns]
        pick = crng.choice(len(combos), PER_CATEGORY, replace=False)
        names += [combos[i] for i in pick]
        cats += [cat] * PER_CATEGORY
        raw = crng.lognormal(np.log(median), sigma, PER_CATEGORY)
        prices[c * PER_CATEGORY : (c + 1) * PER_CATEGORY] = np.maximum(np.round(raw), 2) * 100 - 1
    skus = [f"SKU-{(i // PER_CATEGORY + 1) * 1000 + i % PER_CATEGORY:04d}" for i in range(len(names))]
    price_str = [f"{p / 100:.2f}" for p in prices]
    product_piece = pa.array(
        [f',"product_id":"{s}","category":"{c}","price":{p}' for s, c, p in zip(skus, cats, price_str, strict=True)]
    )
    queries = [q for c in CATEGORIES for q in c[5]]
    search_piece = pa.array([f',"search_query":"{q}"' for q in queries])

    def slug(text: str) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")

    urls = [f"{BASE_URL}/"]
    titles = [SHOP]
    urls += [f"{BASE_URL}/c/{c[0]}" for c in CATEGORIES]
    titles += [f"{c[1]} | {SHOP}" for c in CATEGORIES]
    urls += [f"{BASE_URL}/p/{s.lower()}-{slug(n)}" for s, n in zip(skus, names, strict=True)]
    titles += [f"{n} | {SHOP}" for n in names]
    urls += [f"{BASE_URL}/search?q={q.replace(' ', '+')}" for q in queries]
    titles += [f"Search: {q} | {SHOP}" for q in queries]
    urls += [f"{BASE_URL}/cart", f"{BASE_URL}/checkout", f"{BASE_URL}/checkout/confirmation"]
    titles += [f"Your cart | {SHOP}", f"Checkout | {SHOP}", f"Order confirmed | {SHOP}"]
    k_category = 1
    k_product = k_category + N_CATEGORIES
    k_search = k_product + len(names)
    k_cart = k_search + len(queries)

    source_ref_piece = pa.array([None if r is None else f',"referrer":"{r}"' for _, r, _ in SOURCES])
    source_utm_piece = pa.array(
        [
            None if u is None else f',"utm_source":"{u[0]}","utm_medium":"{u[1]}","utm_campaign":"{u[2]}"'
            for _, _, u in SOURCES
        ]
    )
    qs = [None if u is None else f"utm_source={u[0]}&utm_medium={u[1]}&utm_campaign={u[2]}" for _, _, u in SOURCES]

    # Users.
    urng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    persona = _draw1(urng, np.cumsum(PERSONA_SHARE), users)
    logged_in = urng.random(users) < P_LOGGED_IN
    activity = urng.lognormal(-(personas.ACTIVITY_SIGMA**2) / 2, personas.ACTIVITY_SIGMA, users)
    fav0 = _draw1(urng, np.cumsum(CATEGORY_POPULARITY), users)
    fav1 = (fav0 + 1 + urng.integers(0, N_CATEGORIES - 1, users)) % N_CATEGORIES
    favourite = np.stack([fav0, fav1], axis=1)
    shortlist = fav0[:, None] * PER_CATEGORY + _draw1(urng, ZIPF_CDF, users * 3).reshape(users, 3)
    viewport = VIEWPORTS[urng.integers(0, len(VIEWPORTS), users)]
    consent_a = (urng.random(users) < P_CONSENT_ANALYTICS).astype(np.int64)
    consent_p = (urng.random(users) < P_CONSENT_PERSONALIZATION).astype(np.int64)
    anonymous = _uuid(urng, users)
    user_piece = user_key = None
    if with_strings:
        # user_id: a bijection of the user index into 8 digits, so ids look random but never collide
        offset = int(urng.integers(0, 90_000_000))
        number = 10_000_000 + (np.arange(users, dtype=np.int64) * 48_271 + offset) % 90_000_000
        uid = _fixed(users, [b"cust_", _digits_matrix(number, 8)])
        anon = _fixed(users, [anonymous])
        boolean = _pieces()["bool"]
        uid_piece = _take(_join(',"user_id":"', uid, '"'), np.where(logged_in, np.arange(users), -1))
        user_piece = _join_skip(
            uid_piece,
            _join(',"anonymous_id":"', anon, '","consent_analytics":'),
            _take(boolean, consent_a),
            ',"consent_personalization":',
            _take(boolean, consent_p),
        )
        user_key = pc.if_else(pa.array(logged_in), uid, anon)
    return _World(
        start_ms=start_ms,
        days=days,
        range_end_ms=start_ms + days * DAY_MS,
        price_cents=prices,
        product_piece=product_piece,
        search_piece=search_piece,
        page_url=pa.array(urls),
        title_piece=pa.array([f',"page_title":"{t}"' for t in titles]),
        k_category=k_category,
        k_product=k_product,
        k_search=k_search,
        k_cart=k_cart,
        source_ref_piece=source_ref_piece,
        source_utm_piece=source_utm_piece,
        source_qs=pa.array([None if q is None else "?" + q for q in qs]),
        source_qs_amp=pa.array([None if q is None else "&" + q for q in qs]),
        persona=persona,
        logged_in=logged_in,
        activity=activity,
        favourite=favourite,
        shortlist=shortlist,
        viewport=viewport,
        user_piece=user_piece,
        user_key=user_key,
    )


def _digits_matrix(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.uint8)
    _digits(out, 0, values, width)
    return out


def _plan_sessions(w: _World, seed: int, start: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session start times of every user over the whole range: (user, start_ms, is_first), by start time.

    Every user gets at least one session; returning users get more, at persona-specific rates, with daily
    and weekly seasonality and at least :data:`MIN_SESSION_GAP_MS` between two sessions of the same user.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    users, days = len(w.persona), w.days
    accept_p = DOW_WEIGHT / DOW_WEIGHT.max()
    rate = SESSION_RATE[w.persona] * w.activity * days / accept_p.mean()
    k = 1 + rng.poisson(rate)
    n = int(k.sum())
    user = np.repeat(np.arange(users), k)
    first_candidate = np.zeros(n, dtype=bool)
    first_candidate[_group_starts(k)] = True
    day = rng.integers(0, days, n)
    dow = (start.weekday() + day) % 7
    hour = np.where(dow >= 5, _draw1(rng, np.cumsum(HOUR_WEEKEND), n), _draw1(rng, np.cumsum(HOUR_WEEKDAY), n))
    accept = first_candidate | (rng.random(n) < accept_p[dow])
    ms = w.start_ms + day * DAY_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, n)
    user, ms = user[accept], ms[accept]
    order = np.lexsort((ms, user))
    user, ms = user[order], ms[order]
    same_user = np.r_[False, user[1:] == user[:-1]]
    keep = ~same_user | (np.r_[0, np.diff(ms)] >= MIN_SESSION_GAP_MS)
    user, ms = user[keep], ms[keep]
    first = np.r_[True, user[1:] != user[:-1]]
    order = np.argsort(ms, kind="stable")
    return user[order], ms[order], first[order]


# --------------------------------------------------------------------------------------------------------
# One chunk of sessions -> events
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    lines: pa.Array | None  # formatted JSON lines (with trailing newline), sorted by received_at
    received: np.ndarray  # received_at (epoch ms) of each line
    events: int  # well-formed events incl. duplicates
    duplicates: int
    late: int
    bad_lines: list[str]
    bad_received: np.ndarray
    bad_kinds: list[str]


class _Events:
    """Columns of the events of a chunk, assembled kind by kind."""

    COLUMNS = ("page", "etype", "t", "product", "qty", "order", "query", "element", "pct", "props")

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, page: np.ndarray, etype: int, t: np.ndarray, **extra: np.ndarray) -> None:
        n = len(page)
        part = {"page": page, "etype": np.full(n, etype, dtype=np.int64), "t": t.astype(np.int64)}
        for name in self.COLUMNS[3:]:
            part[name] = extra.get(name, np.full(n, -1, dtype=np.int64))
        self.parts.append(part)

    def columns(self) -> dict[str, np.ndarray]:
        return {c: np.concatenate([p[c] for p in self.parts]).astype(np.int64) for c in self.COLUMNS}


@dataclass
class _Pages:
    """The page views of a chunk of sessions, in session order, and each session's cart and funnel."""

    sess: np.ndarray  # session (index into the chunk's sessions) of each page
    pos: np.ndarray  # position of the page in its session
    type: np.ndarray
    persona: np.ndarray
    category: np.ndarray  # -1 for funnel pages
    product: np.ndarray  # -1 unless a product page
    query: np.ndarray  # -1 for funnel pages
    engaged: np.ndarray  # engaged time (ms): pings every 10 s during it
    dwell: np.ndarray  # ms until the next page of the session
    t0: np.ndarray  # page_view time (epoch ms)
    span: np.ndarray  # window (ms) for in-page events: engaged, at least a few seconds, before the next page
    add: np.ndarray  # the page adds its product to the cart
    qty: np.ndarray
    # per session
    removes: np.ndarray  # the cart page removes the last added item ...
    rm_product: np.ndarray  # ... this one
    rm_qty: np.ndarray
    checkout: np.ndarray
    buys: np.ndarray
    cart_cents: np.ndarray  # the cart at checkout: revenue of the purchase
    cart_qty: np.ndarray


def _simulate_pages(w: _World, s_user: np.ndarray, s_start: np.ndarray, rng: np.random.Generator) -> _Pages:
    S = len(s_user)
    pers_s = w.persona[s_user]
    mission = rng.random(S) < P_MISSION[pers_s]

    # ---- browse pages: landing page, then home / category / product / search pages by persona
    nb = np.minimum(1 + rng.poisson(PAGES_LAM[pers_s]), PAGES_MAX[pers_s])
    nb = np.where(mission, np.maximum(nb, 2), nb)
    bs = np.repeat(np.arange(S), nb)
    bpos = _rank_in_group(nb)
    bpers = pers_s[bs]
    buser = s_user[bs]
    nP = len(bs)
    btype = np.where(bpos == 0, _draw(rng, LANDING_P, bpers), _draw(rng, BROWSE_P, bpers))
    btype[(bpos == nb[bs] - 1) & mission[bs]] = T_PRODUCT
    favourite = w.favourite[buser, rng.integers(0, 2, nP)]
    favourite = np.where(bpers == INTENT, w.favourite[buser, 0], favourite)
    bcat = np.where(rng.random(nP) < P_FAVOURITE[bpers], favourite, rng.integers(0, N_CATEGORIES, nP))
    bprod = bcat * PER_CATEGORY + _draw1(rng, ZIPF_CDF, nP)
    use_shortlist = (bcat == w.favourite[buser, 0]) & (rng.random(nP) < P_SHORTLIST[bpers])
    bprod = np.where(use_shortlist, w.shortlist[buser, rng.integers(0, 3, nP)], bprod)
    bquery = bcat * N_QUERIES + rng.integers(0, N_QUERIES, nP)
    bengaged = rng.lognormal(np.log(ENGAGED_MEDIAN_S[bpers] * TYPE_ENGAGE[btype] * 1000.0), 0.8)
    bengaged = np.minimum(bengaged, 600_000).astype(np.int64)
    idle = np.minimum(rng.exponential(IDLE_MEAN_S[bpers] * 1000.0), 300_000).astype(np.int64)
    bdwell = bengaged + 1500 + idle
    # long sessions are cut: no browse page starts later than an hour into the session
    keep = _exclusive_cumsum_by_group(bdwell, bs, nb) <= MAX_BROWSE_OFFSET_MS
    bs, bpers, btype, bcat, bprod, bquery, bengaged, bdwell = (
        a[keep] for a in (bs, bpers, btype, bcat, bprod, bquery, bengaged, bdwell)
    )
    nP = len(bs)

    # ---- cart adds (a session that came to buy adds at least its last product), the cart
    is_product = btype == T_PRODUCT
    badd = is_product & (rng.random(nP) < P_ADD[bpers])
    has_add = np.bincount(bs[badd], minlength=S) > 0
    prod_idx = np.flatnonzero(is_product)
    if len(prod_idx):
        last_prod = prod_idx[np.r_[bs[prod_idx][1:] != bs[prod_idx][:-1], True]]
        force = mission[bs[last_prod]] & ~has_add[bs[last_prod]]
        badd[last_prod[force]] = True
    bqty = np.where(badd, np.minimum(1 + rng.poisson(QTY_LAM[bpers]), 5), 0)
    add_idx = np.flatnonzero(badd)
    add_s = bs[add_idx]
    amount = w.price_cents[bprod[add_idx]] * bqty[add_idx]
    n_add = np.bincount(add_s, minlength=S)
    cart_cents = np.bincount(add_s, weights=amount, minlength=S).astype(np.int64)
    cart_qty = np.bincount(add_s, weights=bqty[add_idx], minlength=S).astype(np.int64)
    last_add = add_idx[np.r_[add_s[1:] != add_s[:-1], True]] if len(add_idx) else add_idx
    rm_product = np.full(S, -1, dtype=np.int64)
    rm_qty = np.zeros(S, dtype=np.int64)
    rm_product[bs[last_add]] = bprod[last_add]
    rm_qty[bs[last_add]] = bqty[last_add]

    # ---- the funnel: cart page (maybe removing an item) -> checkout -> order confirmation
    goes_cart = (n_add > 0) & (mission | (rng.random(S) < P_CART))
    removes = goes_cart & (rng.random(S) < P_REMOVE[pers_s])
    cart_cents -= np.where(removes, w.price_cents[np.maximum(rm_product, 0)] * rm_qty, 0)
    cart_qty -= np.where(removes, rm_qty, 0)
    left = n_add - removes
    checkout = goes_cart & (left > 0) & (mission | (rng.random(S) < P_CHECKOUT[pers_s]))
    buys = checkout & (rng.random(S) < P_PURCHASE[pers_s])
    nf = goes_cart.astype(np.int64) + checkout + buys
    fs = np.repeat(np.arange(S), nf)
    ftype = T_CART + _rank_in_group(nf)
    fengaged = np.minimum(rng.lognormal(np.log(20_000.0 * TYPE_ENGAGE[ftype]), 0.6), 180_000).astype(np.int64)
    fdwell = fengaged + 1500 + rng.integers(0, 10_000, len(fs))

    # ---- all pages, in session order (the funnel pages after the browse pages)
    order = np.argsort(np.concatenate([bs, fs]), kind="stable")
    none = np.full(len(fs), -1, dtype=np.int64)

    def merged(browse: np.ndarray, funnel: np.ndarray) -> np.ndarray:
        return np.concatenate([browse, funnel])[order]

    sess = merged(bs, fs)
    engaged = merged(bengaged, fengaged)
    dwell = merged(bdwell, fdwell)
    n_pages = np.bincount(sess, minlength=S)
    return _Pages(
        sess=sess,
        pos=_rank_in_group(n_pages),
        type=merged(btype, ftype),
        persona=merged(bpers, pers_s[fs]),
        category=merged(bcat, none),
        product=merged(np.where(is_product, bprod, -1), none),
        query=merged(bquery, none),
        engaged=engaged,
        dwell=dwell,
        t0=s_start[sess] + _exclusive_cumsum_by_group(dwell, sess, n_pages),
        span=np.maximum(engaged, np.minimum(dwell - 300, 4000)),
        add=merged(badd, np.zeros(len(fs), dtype=bool)),
        qty=merged(bqty, np.zeros(len(fs), dtype=np.int64)),
        removes=removes,
        rm_product=rm_product,
        rm_qty=rm_qty,
        checkout=checkout,
        buys=buys,
        cart_cents=cart_cents,
        cart_qty=cart_qty,
    )


def _page_events(
    w: _World, p: _Pages, s_user: np.ndarray, s_first: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The events of every page (columns of :class:`_Events`), and each page's document height."""
    NP = len(p.sess)
    t0, span, dwell = p.t0, p.span, p.dwell
    ev = _Events()
    all_pages = np.arange(NP)
    ev.add(all_pages, E_PAGE_VIEW, t0)
    ident = np.flatnonzero((p.pos == 0) & s_first[p.sess] & w.logged_in[s_user[p.sess]])
    ev.add(ident, E_IDENTIFY, t0[ident] + np.minimum(rng.integers(500, 2500, len(ident)), dwell[ident] - 100))
    pv = np.flatnonzero(p.type == T_PRODUCT)
    ev.add(pv, E_PRODUCT_VIEW, t0[pv] + rng.integers(150, 1200, len(pv)), product=p.product[pv])
    se = np.flatnonzero(p.type == T_SEARCH)
    ev.add(se, E_SEARCH, t0[se] + rng.integers(50, 400, len(se)), query=p.query[se])
    co = np.flatnonzero(p.type == T_CHECKOUT)
    ev.add(co, E_CHECKOUT, t0[co] + rng.integers(200, 800, len(co)))
    cf = np.flatnonzero(p.type == T_CONFIRM)
    order_of_session = np.cumsum(p.buys) - 1
    ev.add(cf, E_PURCHASE, t0[cf] + rng.integers(100, 500, len(cf)), order=order_of_session[p.sess[cf]])
    # page pings every 10 s while engaged
    n_ping = p.engaged // 10_000
    pp = np.repeat(all_pages, n_ping)
    ev.add(pp, E_PING, t0[pp] + 10_000 * (1 + _rank_in_group(n_ping)))
    # scroll milestones (25/50/75/100 %) up to a maximum depth drawn per page
    ab = SCROLL_BETA[p.persona]
    depth = rng.beta(ab[:, 0], ab[:, 1])
    n_scroll = (depth[:, None] >= np.array([0.25, 0.5, 0.75, 0.97])).sum(axis=1)
    sp = np.repeat(all_pages, n_scroll)
    level = _rank_in_group(n_scroll)  # 0..3 -> 25..100 %
    frac = (level + 1) / 4 / np.maximum(depth[sp], 0.25)
    doc_height = (TYPE_DOC_HEIGHT[p.type] * rng.uniform(0.8, 1.25, NP)).astype(np.int64)
    ev.add(sp, E_SCROLL, t0[sp] + 200 + (0.9 * frac * (span[sp] - 200)).astype(np.int64), pct=level)
    # clicks
    n_click = np.minimum(rng.poisson(CLICK_RATE[p.persona] * (0.5 + p.engaged / 30_000)), 8)
    cp = np.repeat(all_pages, n_click)
    ev.add(
        cp,
        E_CLICK,
        t0[cp] + 100 + (rng.random(len(cp)) * (span[cp] - 100)).astype(np.int64),
        element=rng.integers(0, len(CLICK_ELEMENTS), len(cp)),
    )
    # cart adds (with the button click just before), wishlist, removal, funnel buttons
    ad = np.flatnonzero(p.add)
    t_add = t0[ad] + 300 + (rng.uniform(0.4, 0.9, len(ad)) * (span[ad] - 300)).astype(np.int64)
    ev.add(ad, E_CLICK, t_add - 120, element=np.full(len(ad), EL_ADD))
    ev.add(ad, E_ADD, t_add, product=p.product[ad], qty=p.qty[ad])
    wl = pv[rng.random(len(pv)) < P_WISHLIST[p.persona[pv]]]
    ev.add(
        wl,
        E_WISHLIST,
        t0[wl] + 200 + (rng.random(len(wl)) * (span[wl] - 200)).astype(np.int64),
        product=p.product[wl],
        props=np.zeros(len(wl), dtype=np.int64),
    )
    cart_pages = np.flatnonzero(p.type == T_CART)
    rm = cart_pages[p.removes[p.sess[cart_pages]]]
    t_rm = t0[rm] + 300 + span[rm] // 2
    ev.add(rm, E_CLICK, t_rm - 150, element=np.full(len(rm), EL_REMOVE))
    ev.add(rm, E_REMOVE, t_rm, product=p.rm_product[p.sess[rm]], qty=p.rm_qty[p.sess[rm]])
    ck = cart_pages[p.checkout[p.sess[cart_pages]]]
    ev.add(ck, E_CLICK, t0[ck] + dwell[ck] - 400, element=np.full(len(ck), EL_CHECKOUT))
    po = co[p.buys[p.sess[co]]]
    ev.add(po, E_CLICK, t0[po] + dwell[po] - 400, element=np.full(len(po), EL_PLACE_ORDER))
    return ev.columns(), doc_height


def _deliver(w: _World, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When the collector received each event: a small delay; some late (next day), some twice.

    Returns (event row, received_at, is a duplicate copy) per line, sorted by received_at.
    """
    n = len(t)
    received = t + np.clip(rng.lognormal(np.log(250.0), 0.9, n), 50, 3000).astype(np.int64)
    in_range = t < w.range_end_ms  # late/duplicate injection only for events inside the date range
    late = in_range & (rng.random(n) < P_LATE)
    next_midnight = (t[late] // DAY_MS + 1) * DAY_MS
    received[late] = next_midnight + rng.integers(HOUR_MS // 2, 10 * HOUR_MS, int(late.sum()))
    dup_src = np.flatnonzero(in_range & (rng.random(n) < P_DUPLICATE))
    nd = len(dup_src)
    dup_delay = np.where(rng.random(nd) < 0.7, rng.integers(1000, 300_000, nd), rng.integers(HOUR_MS, 12 * HOUR_MS, nd))
    rows = np.concatenate([np.arange(n), dup_src])
    recv = np.concatenate([received, received[dup_src] + dup_delay])
    is_dup = np.concatenate([np.zeros(n, dtype=bool), np.ones(nd, dtype=bool)])
    by_received = np.argsort(recv, kind="stable")
    return rows[by_received], recv[by_received], is_dup[by_received]


def _format_lines(
    w: _World,
    p: _Pages,
    s_user: np.ndarray,
    cols: dict[str, np.ndarray],
    doc_height: np.ndarray,
    rows: np.ndarray,
    received: np.ndarray,
    rng: np.random.Generator,
) -> pa.Array:
    """One JSON line per row: fixed-width byte blocks (ids, timestamps) and looked-up pieces, joined by
    arrow kernels; absent fields are left out."""
    NP, S = len(p.sess), len(s_user)
    all_pages = np.arange(NP)
    event_uuid = _uuid(rng, len(cols["t"]))
    session_uuid = _uuid(rng, S)
    page_uuid = _uuid(rng, NP)
    # per page: url (a landing page may carry utm parameters), title, referrer, utm
    source = np.where(p.pos == 0, _draw1(rng, SOURCE_CDF, S)[p.sess], -1)
    key = np.select(
        [p.type == T_HOME, p.type == T_CATEGORY, p.type == T_PRODUCT, p.type == T_SEARCH],
        [np.zeros(NP, dtype=np.int64), w.k_category + p.category, w.k_product + p.product, w.k_search + p.query],
        w.k_cart + (p.type - T_CART),
    )
    url = _join_skip(
        _take(w.page_url, key),
        _take(w.source_qs, np.where(p.type == T_SEARCH, -1, source)),
        _take(w.source_qs_amp, np.where(p.type == T_SEARCH, source, -1)),
    )
    page_piece = _join(',"page_url":"', url, '"')
    internal_ref = _join(',"referrer":"', _take(url, np.where(p.pos > 0, all_pages - 1, -1)), '"')
    pv_piece = _join_skip(
        _take(w.title_piece, key),
        internal_ref,
        _take(w.source_ref_piece, source),
        _take(w.source_utm_piece, source),
    )
    viewport = w.viewport[s_user[p.sess]]

    page = cols["page"][rows]
    etype = cols["etype"][rows]
    sc = np.flatnonzero(etype == E_SCROLL)
    sc_page = page[sc]
    sc_pct = cols["pct"][rows[sc]]
    scroll_piece = _join(
        _take(_pieces()["pct"], sc_pct),
        _numbers(np.minimum((sc_pct + 1) * doc_height[sc_page] // 4, doc_height[sc_page])),
        ',"doc_height_px":',
        _numbers(doc_height[sc_page]),
        ',"viewport_height_px":',
        _numbers(viewport[sc_page]),
    )
    scroll_idx = np.full(len(rows), -1, dtype=np.int64)
    scroll_idx[sc] = np.arange(len(sc))
    n_orders = int(p.buys.sum())
    order_id = _fixed(n_orders, [b',"order_id":"ord_', _uuid(rng, n_orders)[:, 24:36], b'"'])
    order_piece = _join(
        order_id,
        ',"revenue":',
        _money(p.cart_cents[p.buys]),
        ',"quantity":',
        _numbers(p.cart_qty[p.buys]),
        ',"properties":{"currency":"EUR"}',
    )
    sess = p.sess[page]
    core = _fixed(len(rows), [b'{"event_id":"', event_uuid[rows], b'"'])
    times = _fixed(
        len(rows),
        [
            b',"event_time":"',
            _timestamps(cols["t"][rows]),
            b'","received_at":"',
            _timestamps(received),
            b'","session_id":"',
            session_uuid[sess],
            b'","page_view_id":"',
            page_uuid[page],
            b'"',
        ],
    )
    pieces = _pieces()
    qty = cols["qty"][rows]
    return _join_skip(
        core,
        _take(pieces["type"], etype),
        times,
        _take(w.user_piece, s_user[sess]),
        _take(page_piece, page),
        _take(pv_piece, np.where(etype == E_PAGE_VIEW, page, -1)),
        _take(w.product_piece, cols["product"][rows]),
        _take(pieces["quantity"], np.where(qty > 0, qty, -1)),
        _take(order_piece, cols["order"][rows]),
        _take(w.search_piece, cols["query"][rows]),
        _take(pieces["element"], cols["element"][rows]),
        _take(scroll_piece, scroll_idx),
        _take(pieces["props"], cols["props"][rows]),
        "}\n",
    )


def _malformed_lines(
    lines: pa.Array, candidates: np.ndarray, priced: np.ndarray, first_kind: int, n: int, rng: np.random.Generator
) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` bad lines, each a copy of a real line (from ``candidates``; ``priced`` for negative prices)
    with a fresh event_id and one defect; kinds cycle through :data:`MALFORMED_KINDS` from ``first_kind``.

    Returns (lines, kinds, the source rows)."""
    out: list[str] = []
    kinds: list[str] = []
    src = candidates[rng.integers(0, len(candidates), n)]
    fresh = _uuid(rng, n)
    for i in range(n):  # a handful per day: a Python loop is fine here
        kind = MALFORMED_KINDS[(first_kind + i) % len(MALFORMED_KINDS)]
        if kind == "negative_price" and len(priced):
            src[i] = priced[rng.integers(0, len(priced))]
        obj = json.loads(lines[int(src[i])].as_py())
        obj["event_id"] = fresh[i].tobytes().decode()
        if kind == "missing_event_id":
            del obj["event_id"]
        elif kind == "unknown_event_type":
            obj["event_type"] = ("pageView", "add-to-cart", "custom.", "page_veiw")[i % 4]
        elif kind == "negative_price":
            obj["price"] = -abs(obj.get("price", 19.99))
        elif kind == "bad_timestamp":
            obj["event_time"] = ("yesterday", "2026-13-45T25:61:00Z", "1 Sept 2026 18:03")[i % 3]
        elif kind == "missing_identity":
            obj.pop("user_id", None)
            obj.pop("anonymous_id", None)
        text = json.dumps(obj, separators=(",", ":"))
        if kind == "truncated_json":
            text = text[: max(10, len(text) * 3 // 5)]
        out.append(text + "\n")
        kinds.append(kind)
    return out, kinds, src


def _generate_chunk(
    w: _World,
    s_user: np.ndarray,
    s_start: np.ndarray,
    s_first: np.ndarray,
    rng: np.random.Generator,
    events_before: int,
    bad_before: int,
    fmt: bool,
) -> _Chunk:
    """The lines of the sessions ``s_*`` (a day's, or a slice of them), sorted by received_at.

    Malformed lines are added so that, counting the earlier chunks (``events_before`` events and
    ``bad_before`` bad lines), they make :data:`MALFORMED_RATE` of the events and every kind occurs.
    With ``fmt`` false only the counts are computed (for :func:`users_for_target_events`).
    """
    pages = _simulate_pages(w, s_user, s_start, rng)
    cols, doc_height = _page_events(w, pages, s_user, s_first, rng)
    t = cols["t"]
    rows, received, is_dup = _deliver(w, t, rng)
    duplicates = int(is_dup.sum())
    late = int(np.count_nonzero(received // DAY_MS > t[rows] // DAY_MS))
    no_bad = np.empty(0, dtype=np.int64)
    if not fmt:
        return _Chunk(None, received, len(rows), duplicates, late, [], no_bad, [])
    lines = _format_lines(w, pages, s_user, cols, doc_height, rows, received, rng)
    target = max(len(MALFORMED_KINDS), int(MALFORMED_RATE * (events_before + len(rows))))
    candidates = np.flatnonzero(~is_dup & (t[rows] < w.range_end_ms))
    if target <= bad_before or len(candidates) == 0:
        return _Chunk(lines, received, len(rows), duplicates, late, [], no_bad, [])
    etype = cols["etype"][rows[candidates]]
    priced = candidates[(etype == E_PRODUCT_VIEW) | (etype == E_ADD)]
    bad, kinds, src = _malformed_lines(lines, candidates, priced, bad_before, target - bad_before, rng)
    return _Chunk(lines, received, len(rows), duplicates, late, bad, received[src], kinds)


# --------------------------------------------------------------------------------------------------------
# Writing day files
# --------------------------------------------------------------------------------------------------------


class _DayFiles:
    """Collects lines per received day; a day's file is written once no later chunk can add to it.

    A file is compressed as consecutive gzip members of :data:`GZIP_BLOCK` input bytes each, in worker
    threads (zlib releases the GIL) while the main thread generates the next day; readers see one stream.
    """

    def __init__(self, events_dir: Path, start_ms: int, pool: ThreadPoolExecutor) -> None:
        self.events_dir = events_dir
        self.start_ms = start_ms
        self.pool = pool
        self.pending: dict[int, list[tuple[pa.Array, np.ndarray]]] = {}
        self.inflight: deque[tuple[Path, list[Future[bytes]], list[pa.Array]]] = deque()
        self.files: list[Path] = []

    def add(self, lines: pa.Array, received: np.ndarray) -> None:
        """``received`` must be sorted."""
        if len(received) == 0:
            return
        day = (received - self.start_ms) // DAY_MS
        bounds = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(day)], strict=True):
            self.pending.setdefault(int(day[lo]), []).append((lines.slice(lo, hi - lo), received[lo:hi]))

    def flush(self, day: int) -> None:
        """Start writing the file of ``day`` (relative to the start date), even if it has no lines."""
        parts = self.pending.pop(day, [])
        if len(parts) > 1 and sum(a.nbytes for a, _ in parts) < MAX_MERGE_BYTES:
            received = np.concatenate([r for _, r in parts])
            merged = pa.concat_arrays([a for a, _ in parts])
            parts = [(merged.take(pa.array(np.argsort(received, kind="stable"))), received)]
        arrays = [a for a, _ in parts]
        blocks = []
        for arr in arrays:
            data = _string_bytes(arr)
            blocks += [data[i : i + GZIP_BLOCK] for i in range(0, len(data), GZIP_BLOCK)]
        name = datetime.fromtimestamp((self.start_ms + day * DAY_MS) / 1000, tz=UTC).strftime("%Y-%m-%d")
        path = self.events_dir / name / DEMO_FILE_NAME
        self.files.append(path)
        futures = [self.pool.submit(gzip_member, b, GZIP_LEVEL) for b in blocks or [memoryview(b"")]]
        self.inflight.append((path, futures, arrays))  # the arrays own the memory the blocks view
        while len(self.inflight) > 2:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        path, futures, _ = self.inflight.popleft()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # readers never see a half-written file
        with open(tmp, "wb") as fh:
            for f in futures:
                fh.write(f.result())
        os.replace(tmp, path)

    def remaining_days(self) -> list[int]:
        return sorted(self.pending)

    def wait(self) -> None:
        while self.inflight:
            self._finish_oldest()


def _clean(landing: Path) -> None:
    """Remove the files an earlier demo run wrote; nothing else in the landing zone."""
    for old in (landing / "events").glob(f"*/{DEMO_FILE_NAME}"):
        old.unlink()
    for old in (landing / "events").glob(f"*/{DEMO_FILE_NAME}.tmp"):
        old.unlink()
    (landing / PERSONAS_FILE_NAME).unlink(missing_ok=True)


def _chunks_by_day(w: _World, s_start: np.ndarray) -> list[tuple[int, int, int]]:
    """(day, lo, hi) slices of the sessions (sorted by start) per day, split into bounded chunks."""
    day = (s_start - w.start_ms) // DAY_MS
    bounds = np.searchsorted(day, np.arange(w.days + 1))
    out = []
    for d in range(w.days):
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        for c in range(lo, hi, MAX_CHUNK_SESSIONS):
            out.append((d, c, min(hi, c + MAX_CHUNK_SESSIONS)))
    return out


def _check_args(users: int, days: int, seed: int) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")


def default_start(days: int, today: date | None = None) -> date:
    """The first day of a demo history of ``days`` days that ends yesterday (UTC): ``today - days``.

    A history that ends yesterday is one the live demo (``pulse live``: today's clicks in the demo shop) adds
    to; a fixed range in the past would make today's events the only recent ones (every profile's recency,
    engagement and audiences move to today). ``today`` defaults to the current UTC date.
    """
    return (today or datetime.now(UTC).date()) - timedelta(days=days)


def generate_demo(
    landing: Path,
    users: int = 5000,
    days: int = 60,
    seed: int = 7,
    start: date | None = None,
    progress: bool = True,
) -> DemoSummary:
    """Write a deterministic demo shop's events into ``landing`` (see the module docstring).

    ``start`` is the first day (UTC); by default :func:`default_start`: the history ends yesterday. The same
    arguments, ``start`` included, give byte-identical files (tests pass a fixed ``start``).
    """
    _check_args(users, days, seed)
    if start is None:
        start = default_start(days)
    t_begin = time.perf_counter()
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    _clean(landing)
    w = _build_world(users, days, seed, start, with_strings=True)
    s_user, s_start, s_first = _plan_sessions(w, seed, start)

    events = duplicates = late = 0
    malformed = dict.fromkeys(MALFORMED_KINDS, 0)
    n_bad = 0
    bar = ProgressBar("pulse demo", days, progress, unit="day")
    chunks = _chunks_by_day(w, s_start)
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        out = _DayFiles(landing / "events", w.start_ms, pool)
        try:
            next_chunk = 0
            for day in range(days):
                while next_chunk < len(chunks) and chunks[next_chunk][0] == day:
                    _, lo, hi = chunks[next_chunk]
                    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, day, lo]))
                    chunk = _generate_chunk(w, s_user[lo:hi], s_start[lo:hi], s_first[lo:hi], rng, events, n_bad, True)
                    events += chunk.events
                    duplicates += chunk.duplicates
                    late += chunk.late
                    assert chunk.lines is not None
                    out.add(chunk.lines, chunk.received)
                    if chunk.bad_lines:
                        order = np.argsort(chunk.bad_received, kind="stable")
                        out.add(pa.array([chunk.bad_lines[i] for i in order]), chunk.bad_received[order])
                        for kind in chunk.bad_kinds:
                            malformed[kind] += 1
                        n_bad += len(chunk.bad_lines)
                    next_chunk += 1
                out.flush(day)
                bar.advance_to(day + 1, events=events)
            for day in out.remaining_days():
                out.flush(day)
        finally:
            out.wait()
            bar.close()

    assert w.user_key is not None
    keys = w.user_key.to_pylist()
    rows = "".join(f"{k},{PERSONAS[p]}\n" for k, p in zip(keys, w.persona.tolist(), strict=True))
    (landing / PERSONAS_FILE_NAME).write_text("user_key,persona\n" + rows, encoding="utf-8")
    counts = np.bincount(w.persona, minlength=len(PERSONAS))
    return DemoSummary(
        users=users,
        days=days,
        seed=seed,
        start=start,
        events_written=events,
        files=out.files,
        duplicates_injected=duplicates,
        late_injected=late,
        malformed_injected=malformed,
        personas={p: int(c) for p, c in zip(PERSONAS, counts, strict=True)},
        seconds=time.perf_counter() - t_begin,
    )


def _count_events(users: int, days: int, seed: int, start: date) -> int:
    """Well-formed events (incl. duplicates) a run of this size would write; nothing is formatted."""
    w = _build_world(users, days, seed, start, with_strings=False)
    s_user, s_start, s_first = _plan_sessions(w, seed, start)
    total = 0
    for day, lo, hi in _chunks_by_day(w, s_start):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, day, lo]))
        total += _generate_chunk(w, s_user[lo:hi], s_start[lo:hi], s_first[lo:hi], rng, 0, 0, False).events
    return total


def users_for_target_events(target_events: int, days: int = 60, seed: int = 7) -> int:
    """How many users make :func:`generate_demo` write about ``target_events`` events over ``days`` days.

    Simulates a sample of users (without formatting or writing) and scales linearly; events per user are
    independent of the number of users, so the estimate is typically within a few per cent.
    """
    _check_args(1, days, seed)
    sample = int(np.clip(240_000 // days, 500, 4000))  # ~1.5 M simulated events at most
    per_user = _count_events(sample, days, seed, date(2026, 9, 1)) / sample
    return max(1, round(target_events / per_user))
