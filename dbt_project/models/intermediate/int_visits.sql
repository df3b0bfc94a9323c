-- One row per visit: a user's run of events with no gap longer than session_timeout_minutes and no
-- change of client session id. Found with ONE window pass over four columns of the events; each visit's
-- end is the next visit's start. Events are assigned to visits in int_events_sessionized.
with

events as (

    select
        event_id,
        user_key,
        event_time,
        client_session_id
    from {{ ref('stg_events') }}

),

with_previous as (

    select
        event_id,
        user_key,
        event_time,
        client_session_id,
        lag(event_time) over by_time as previous_event_time,
        lag(client_session_id) over by_time as previous_client_session_id
    from events
    window by_time as (partition by user_key order by event_time, event_id)

),

visit_starts as (

    select
        user_key,
        event_id as first_event_id,
        event_time as start_time,
        client_session_id
    from with_previous
    where
        previous_event_time is null
        or {{ dbt.datediff('previous_event_time', 'event_time', 'second') }}
        > {{ var('session_timeout_minutes') }} * 60
        or client_session_id <> previous_client_session_id

),

final as (

    select
        md5(user_key || '|' || first_event_id) as visit_key,
        user_key,
        row_number() over by_start as visit_index,
        first_event_id,
        start_time,
        client_session_id,
        lead(first_event_id) over by_start as next_first_event_id,
        lead(start_time) over by_start as next_start_time
    from visit_starts
    window by_start as (partition by user_key order by start_time, first_event_id)

)

select * from final
