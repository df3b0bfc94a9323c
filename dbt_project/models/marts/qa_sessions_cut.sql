-- Visits longer than max_session_hours: reported here, and cut into pieces in fct_sessions.
with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

visits as (

    select
        visit_key,
        user_key,
        min(session_start) as visit_start,
        max(session_end) as visit_end,
        cast(sum(events) as {{ dbt.type_bigint() }}) as events,
        count(*) as pieces
    from sessions
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
