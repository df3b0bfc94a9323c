-- Suite stg_events (blocking): one row per event_id, every key present, every amount finite.
-- One scan of the stg_events view. Counting distinct ids exactly costs ~1.1 s and ~1.3 GB at 10 M events
-- (DuckDB spills past memory_limit); grouping 64-bit hashes first and re-checking the repeated ones was
-- exact too but slower here (1.9 s: every extra pass re-reads the view, an anti-join over raw.events).
select
    cast(count(*) as bigint) as events,
    cast(count_if(event_id is null) as bigint) as null_event_ids,
    cast(count_if(user_key is null) as bigint) as null_user_keys,
    cast(count_if(event_time is null) as bigint) as null_event_times,
    cast(count_if(event_type is null) as bigint) as null_event_types,
    cast(count(event_id) - count(distinct event_id) as bigint) as duplicate_event_ids,
    -- Ingestion refuses NaN and infinity (pulse/core/contract.py); rows ingested before it did would turn every sum
    -- of revenue into NaN while the other rules stay green. NaN compares as the greatest double on both engines,
    -- hence isnan and not a range. count_if skips the rows where every amount is null.
    cast(coalesce(count_if(
        isnan(price) or isnan(revenue) or isnan(value) or isnan(cart_value) or isnan(scroll_depth_pct)
        or abs(price) = cast('Infinity' as double) or abs(revenue) = cast('Infinity' as double)
        or abs(value) = cast('Infinity' as double) or abs(cart_value) = cast('Infinity' as double)
        or abs(scroll_depth_pct) = cast('Infinity' as double)
    ), 0) as bigint) as events_with_non_finite_numbers
from stg_events
