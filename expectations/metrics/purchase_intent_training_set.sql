-- Suite purchase_intent_training_set (blocking): what the intent model trains and is tested on. One row per
-- user and snapshot, a label on every row, a label window that starts at the snapshot (features before it,
-- label after), no negative counts, rates within 0..1. Too few rows or labels is the training's own
-- sufficiency gate (purchase_intent_model:enough_labelled_data), with its own message. One scan.
select
    cast(count(*) as bigint) as snapshot_rows,
    cast(coalesce(count_if(user_key is null or as_of_date is null), 0) as bigint) as null_keys,
    cast(
        count(user_key || '|' || cast(as_of_date as string))
        - count(distinct user_key || '|' || cast(as_of_date as string)) as bigint
    ) as duplicate_rows,
    cast(coalesce(count_if(purchased_within_horizon is null), 0) as bigint) as null_labels,
    cast(coalesce(count_if(not label_window_end_date > as_of_date), 0) as bigint) as windows_not_after_snapshot,
    cast(coalesce(count_if(
        sessions_total < 0 or sessions_7d < 0 or sessions_30d < 0 or page_views < 0 or product_views < 0
        or searches < 0 or cart_adds < 0 or purchases < 0 or revenue < 0 or avg_session_seconds < 0
        or avg_engaged_seconds < 0 or days_since_last_visit < 0
    ), 0) as bigint) as rows_with_negative_values,
    cast(coalesce(count_if(
        cart_abandonment_rate not between 0 and 1 or bounce_rate not between 0 and 1
        or engaged_session_rate not between 0 and 1
    ), 0) as bigint) as rows_with_rates_outside_0_1
from purchase_intent_training_set
