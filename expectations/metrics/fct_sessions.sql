-- Suite fct_sessions (blocking): every session has keys, a duration >= 0 and events, and every event of
-- stg_events is counted in exactly one session (unsessionized_events > 0: events lost; < 0: counted twice).
-- One scan of fct_sessions (small) and a count of the stg_events view.
with

sessions as (

    select
        count(*) as sessions,
        count_if(session_key is null) as null_session_keys,
        count(session_key) - count(distinct session_key) as duplicate_session_keys,
        count_if(user_key is null) as null_user_keys,
        count_if(duration_seconds is null) as null_durations,
        count_if(duration_seconds < 0 or session_end < session_start) as negative_durations,
        count_if(coalesce(events, 0) < 1) as sessions_without_events,
        coalesce(sum(events), 0) as events_in_sessions
    from fct_sessions

),

events as (

    select count(*) as events
    from stg_events

)

select
    cast(sessions.sessions as bigint) as sessions,
    cast(sessions.null_session_keys as bigint) as null_session_keys,
    cast(sessions.duplicate_session_keys as bigint) as duplicate_session_keys,
    cast(sessions.null_user_keys as bigint) as null_user_keys,
    cast(sessions.null_durations as bigint) as null_durations,
    cast(sessions.negative_durations as bigint) as negative_durations,
    cast(sessions.sessions_without_events as bigint) as sessions_without_events,
    cast(events.events - sessions.events_in_sessions as bigint) as unsessionized_events
from sessions, events
