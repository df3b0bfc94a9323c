"""The feature columns of the dbt `user_feature_snapshots` / `user_features` models, in table order.

One list for every model that reads them (segmentation, purchase intent); ``user_key`` and ``as_of_date``
are the key and not listed. docs/features.md describes each column.
"""

USER_FEATURE_COLUMNS: tuple[str, ...] = (
    "days_since_last_visit",
    "days_since_first_visit",
    "sessions_7d",
    "sessions_30d",
    "sessions_total",
    "active_days_30d",
    "sessions_per_active_day",
    "avg_session_seconds",
    "avg_engaged_seconds",
    "avg_scroll_depth_pct",
    "page_views",
    "product_views",
    "categories_viewed",
    "searches",
    "cart_adds",
    "purchases",
    "revenue",
    "avg_order_value",
    "cart_abandonment_rate",
    "days_since_last_purchase",
    "bounce_rate",
    "engaged_session_rate",
)
