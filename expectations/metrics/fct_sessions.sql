-- Suite fct_sessions (blocking): every session has keys, a duration >= 0 and events, and every event of
-- stg_events is counted in exactly one session (unsessionized_events > 0: events lost; < 0: counted twice),
-- except the events that arrived later than the lookback and are kept aside until reprocessed
-- (qa_late_events, a warning of its own): those are late_events_kept_aside, not a loss.
-- A user with listed late events may miss from the sessions up to as many of their events as are listed, no
-- more; every other user must have all of theirs. So a late event never blocks publishing, and an event lost
-- for another reason still does.
-- One scan of fct_sessions (small), a count of the stg_events view, and the events of the few users
-- qa_late_events lists (nothing more is read when it is empty).
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

),

late_listed as (

    select
        user_key,
        count(distinct event_id) as listed
    from qa_late_events
    group by user_key

),

late_user_events as (

    select
        stg_events.user_key,
        count(*) as events
    from stg_events
    inner join late_listed on stg_events.user_key = late_listed.user_key
    group by stg_events.user_key

),

late_user_sessions as (

    select
        fct_sessions.user_key,
        sum(fct_sessions.events) as events
    from fct_sessions
    inner join late_listed on fct_sessions.user_key = late_listed.user_key
    group by fct_sessions.user_key

),

-- Per user with listed late events: the events missing from their sessions, as far as the listed ones
-- account for them (never below 0: an event counted twice is not excused).
kept_aside as (

    select
        coalesce(sum(
            least(
                greatest(coalesce(late_user_events.events, 0) - coalesce(late_user_sessions.events, 0), 0),
                late_listed.listed
            )
        ), 0) as events
    from late_listed
    left join late_user_events on late_listed.user_key = late_user_events.user_key
    left join late_user_sessions on late_listed.user_key = late_user_sessions.user_key

)

select
    cast(sessions.sessions as bigint) as sessions,
    cast(sessions.null_session_keys as bigint) as null_session_keys,
    cast(sessions.duplicate_session_keys as bigint) as duplicate_session_keys,
    cast(sessions.null_user_keys as bigint) as null_user_keys,
    cast(sessions.null_durations as bigint) as null_durations,
    cast(sessions.negative_durations as bigint) as negative_durations,
    cast(sessions.sessions_without_events as bigint) as sessions_without_events,
    cast(kept_aside.events as bigint) as late_events_kept_aside,
    cast(events.events - sessions.events_in_sessions - kept_aside.events as bigint) as unsessionized_events
from sessions, events, kept_aside
