-- The last 30 days of live_feature_seeds, one row per user per active day (UTC) before the latest snapshot
-- date: the days with an event of a counted session (fct_user_daily up to the date of the user's last counted
-- session, as user_feature_snapshots bounds active days) and how many counted sessions started on each. The
-- live state keeps this detail for the 7- and 30-day windows; older days are in the seed's totals.
with

seeds as (

    select * from {{ ref('live_feature_seeds') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

user_daily as (

    select * from {{ ref('fct_user_daily') }}

),

recent_days as (

    select
        user_daily.user_key,
        seeds.as_of_date,
        user_daily.activity_date
    from user_daily
    inner join seeds on user_daily.user_key = seeds.user_key
    where
        user_daily.activity_date <= cast(seeds.last_session_end as date)
        and {{ dbt.datediff('user_daily.activity_date', 'seeds.as_of_date', 'day') }} <= 30

),

sessions_started as (

    select
        sessions.user_key,
        sessions.session_date as activity_date,
        count(*) as sessions_started
    from sessions
    inner join seeds on sessions.user_key = seeds.user_key
    where
        sessions.session_end < seeds.closed_before
        and {{ dbt.datediff('sessions.session_date', 'seeds.as_of_date', 'day') }} <= 30
    group by sessions.user_key, sessions.session_date

),

final as (

    select
        recent_days.user_key,
        recent_days.as_of_date,
        recent_days.activity_date,
        coalesce(sessions_started.sessions_started, 0) as sessions_started
    from recent_days
    left join sessions_started
        on
            recent_days.user_key = sessions_started.user_key
            and recent_days.activity_date = sessions_started.activity_date

)

select * from final
