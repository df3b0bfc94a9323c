-- Visits longer than max_session_hours: reported here, and cut into pieces in fct_sessions.
with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

visits as (

    select
        visit_key,
        user_key,
        min(event_time) as visit_start,
        max(event_time) as visit_end,
        count(*) as events,
        max(visit_piece) + 1 as pieces
    from events
    group by visit_key, user_key

),

final as (

    select
        visit_key,
        user_key,
        visit_start,
        visit_end,
        {{ dbt.datediff('visit_start', 'visit_end', 'second') }} as duration_seconds,
        events,
        pieces
    from visits
    where pieces > 1

)

select * from final
