-- Suite stg_events (blocking): one row per event_id, every key present.
-- One scan of the stg_events view. Counting distinct ids exactly costs ~1.1 s and ~1.3 GB at 10 M events
-- (DuckDB spills past memory_limit); grouping 64-bit hashes first and re-checking the repeated ones was
-- exact too but slower here (1.9 s: every extra pass re-reads the view, an anti-join over raw.events).
select
    cast(count(*) as bigint) as events,
    cast(count_if(event_id is null) as bigint) as null_event_ids,
    cast(count_if(user_key is null) as bigint) as null_user_keys,
    cast(count_if(event_time is null) as bigint) as null_event_times,
    cast(count_if(event_type is null) as bigint) as null_event_types,
    cast(count(event_id) - count(distinct event_id) as bigint) as duplicate_event_ids
from stg_events
