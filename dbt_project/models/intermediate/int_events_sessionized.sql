{{ config(materialized='view') }}

-- Every deduplicated event with its visit and session. A visit longer than max_session_hours is cut
-- into sessions of that length (visit_piece 0, 1, ...); qa_sessions_cut lists such visits.
-- A view: the assignment is a join of the events with the (small) int_visits, cheap enough to run in
-- each model that reads it, where writing every event again would not be.
with

events as (

    select * from {{ ref('stg_events') }}

),

visits as (

    select * from {{ ref('int_visits') }}

),

-- An event belongs to the visit whose first event it follows (by event_time, then event_id) and whose
-- successor's first event it precedes.
assigned as (

    select
        visits.visit_key,
        visits.visit_index,
        cast(floor(
            {{ dbt.datediff('visits.start_time', 'events.event_time', 'second') }}
            / ({{ var('max_session_hours') }} * 3600)
        ) as {{ dbt.type_bigint() }}) as visit_piece,
        visits.start_time as visit_start_time,
        visits.first_event_id as visit_first_event_id,
        visits.next_start_time as next_visit_start_time,
        visits.next_first_event_id as next_visit_first_event_id,
        events.*
    from events
    inner join visits
        on
            events.user_key = visits.user_key
            and (
                events.event_time > visits.start_time
                or (events.event_time = visits.start_time and events.event_id >= visits.first_event_id)
            )
            and (
                visits.next_start_time is null
                or events.event_time < visits.next_start_time
                or (events.event_time = visits.next_start_time and events.event_id < visits.next_first_event_id)
            )

),

final as (

    select
        case
            when visit_piece = 0 then visit_key
            else md5(visit_key || '|' || cast(visit_piece as {{ dbt.type_string() }}))
        end as session_key,
        *
    from assigned

)

select * from final
