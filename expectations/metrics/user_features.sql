-- Suite user_features (blocking): the feature table the segmentation and intent models train on. One row
-- per user, one snapshot date, no negative counts or durations, rates within 0..1, and not empty: a
-- model fitted on a broken or empty table would be registered as champion. One scan (one row per user).
-- count_if over no rows is null in DuckDB, hence the coalesces: an empty table fails `users` only.
select
    cast(count(*) as bigint) as users,
    cast(coalesce(count_if(user_key is null), 0) as bigint) as null_user_keys,
    cast(count(user_key) - count(distinct user_key) as bigint) as duplicate_user_keys,
    cast(count(distinct as_of_date) as bigint) as snapshot_dates,
    cast(coalesce(count_if(
        sessions_total < 0 or sessions_7d < 0 or sessions_30d < 0 or page_views < 0 or product_views < 0
        or searches < 0 or cart_adds < 0 or purchases < 0 or revenue < 0 or avg_session_seconds < 0
        or avg_engaged_seconds < 0 or days_since_last_visit < 0
    ), 0) as bigint) as users_with_negative_values,
    cast(coalesce(count_if(
        cart_abandonment_rate not between 0 and 1 or bounce_rate not between 0 and 1
        or engaged_session_rate not between 0 and 1
    ), 0) as bigint) as users_with_rates_outside_0_1,
    -- A NaN passes `< 0` and a sum with one NaN is NaN: revenue and the averages must be finite (the rates are,
    -- when they are within 0..1).
    cast(coalesce(count_if(
        isnan(revenue) or isnan(avg_session_seconds) or isnan(avg_engaged_seconds)
        or abs(revenue) = cast('Infinity' as double) or abs(avg_session_seconds) = cast('Infinity' as double)
        or abs(avg_engaged_seconds) = cast('Infinity' as double)
    ), 0) as bigint) as users_with_non_finite_values
from user_features
