-- One row per user_key: when they were first and last seen, and what they did in total.
with

events as (

    select * from {{ ref('stg_events') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

-- the latest consent each user sent (ties broken by event_id there, so a rebuild gives the same answer)
consent as (

    select * from {{ ref('dim_user_consent') }}

),

event_totals as (

    select
        user_key,
        max(user_id) as user_id,
        max(anonymous_id) as anonymous_id,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at,
        count(*) as events,
        count(distinct event_date) as active_days
    from events
    group by user_key

),

session_totals as (

    select
        user_key,
        count(*) as sessions,
        count_if(is_engaged) as engaged_sessions,
        cast(sum(page_views) as {{ dbt.type_bigint() }}) as page_views,
        cast(sum(product_views) as {{ dbt.type_bigint() }}) as product_views,
        cast(sum(cart_adds) as {{ dbt.type_bigint() }}) as cart_adds,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases,
        sum(revenue) as revenue,
        cast(sum(engaged_seconds) as {{ dbt.type_bigint() }}) as engaged_seconds
    from sessions
    group by user_key

),

final as (

    select
        event_totals.user_key,
        event_totals.user_id,
        event_totals.anonymous_id,
        event_totals.user_id is not null as is_identified,
        event_totals.first_seen_at,
        event_totals.last_seen_at,
        event_totals.events,
        event_totals.active_days,
        session_totals.sessions,
        session_totals.engaged_sessions,
        session_totals.page_views,
        session_totals.product_views,
        session_totals.cart_adds,
        session_totals.purchases,
        session_totals.revenue,
        session_totals.engaged_seconds,
        consent.consent_analytics,
        consent.consent_personalization
    from event_totals
    inner join session_totals on event_totals.user_key = session_totals.user_key
    left join consent on event_totals.user_key = consent.user_key

)

select * from final
