-- One row per user per snapshot date: the features of user_features, computed for the latest snapshot (var
-- features_as_of; default: the day after the latest event date) and every feature_snapshot_interval_days
-- before it, back to the first date with at least one interval of history (the newest feature_snapshots_max of
-- them: feature_snapshot_dates).
-- Point in time: a snapshot at t counts only the sessions that were over at t, i.e. whose last event is more
-- than session_timeout_minutes before t. A later event cannot join such a session, so nothing that happens
-- on or after t can change a snapshot's row (a session still open at t is left out whole, with its events).
-- A user's sessions do not overlap, so the events of the counted sessions are exactly the user's events up to
-- the end of the last of them: that bound selects the days (fct_user_daily) and product views that go with
-- them. Users without such a session have no row in that snapshot.
with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

page_views as (

    select * from {{ ref('fct_page_views') }}

),

user_daily as (

    select * from {{ ref('fct_user_daily') }}

),

-- Product views are the one thing the marts do not carry per category: read just those events.
product_view_events as (

    select
        user_key,
        event_time,
        category
    from {{ ref('stg_events') }}
    where event_type = 'product_view'

),

-- The snapshot dates: feature_snapshot_dates lists every date the history allows and keeps the newest
-- feature_snapshots_max (the dbt step warns about the rest).
snapshots as (

    select
        as_of_date,
        -- sessions whose last event is before this instant are over at the snapshot
        {{ dbt.dateadd('minute', -1 * var('session_timeout_minutes'),
                       'cast(as_of_date as ' ~ dbt.type_timestamp() ~ ')') }} as closed_before
    from {{ ref('feature_snapshot_dates') }}
    where is_kept

),

past_sessions as (

    select
        sessions.*,
        snapshots.as_of_date,
        {{ dbt.datediff('sessions.session_date', 'snapshots.as_of_date', 'day') }} as days_ago
    from sessions
    inner join snapshots on sessions.session_end < snapshots.closed_before

),

session_totals as (

    select
        user_key,
        as_of_date,
        min(session_start) as first_session_start,
        max(session_end) as last_session_end,
        max(case when purchases > 0 then session_end end) as last_purchase_session_end,
        count(*) as sessions_total,
        count_if(days_ago <= 7) as sessions_7d,
        count_if(days_ago <= 30) as sessions_30d,
        count_if(is_bounce) as bounced_sessions,
        count_if(is_engaged) as engaged_sessions,
        count_if(cart_adds > 0) as cart_sessions,
        count_if(is_cart_abandoned) as abandoned_cart_sessions,
        cast(sum(duration_seconds) as {{ dbt.type_bigint() }}) as duration_seconds,
        cast(sum(engaged_seconds) as {{ dbt.type_bigint() }}) as engaged_seconds,
        cast(sum(page_views) as {{ dbt.type_bigint() }}) as page_views,
        cast(sum(product_views) as {{ dbt.type_bigint() }}) as product_views,
        cast(sum(searches) as {{ dbt.type_bigint() }}) as searches,
        cast(sum(cart_adds) as {{ dbt.type_bigint() }}) as cart_adds,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases,
        sum(revenue) as revenue
    from past_sessions
    group by user_key, as_of_date

),

scroll_depth as (

    select
        past_sessions.user_key,
        past_sessions.as_of_date,
        avg(page_views.scroll_depth_pct) as avg_scroll_depth_pct
    from page_views
    inner join past_sessions on page_views.session_key = past_sessions.session_key
    group by past_sessions.user_key, past_sessions.as_of_date

),

past_days as (

    select
        user_daily.user_key,
        session_totals.as_of_date,
        {{ dbt.datediff('user_daily.activity_date', 'session_totals.as_of_date', 'day') }}
            as days_ago
    from user_daily
    inner join session_totals on user_daily.user_key = session_totals.user_key
    where user_daily.activity_date <= cast(session_totals.last_session_end as date)

),

active_days as (

    select
        user_key,
        as_of_date,
        count(*) as active_days_total,
        count_if(days_ago <= 30) as active_days_30d
    from past_days
    group by user_key, as_of_date

),

categories as (

    select
        product_view_events.user_key,
        session_totals.as_of_date,
        count(distinct product_view_events.category) as categories_viewed
    from product_view_events
    inner join session_totals on product_view_events.user_key = session_totals.user_key
    where product_view_events.event_time <= session_totals.last_session_end
    group by product_view_events.user_key, session_totals.as_of_date

),

final as (

    select
        session_totals.user_key,
        session_totals.as_of_date,
        {{ dbt.datediff('cast(session_totals.last_session_end as date)', 'session_totals.as_of_date', 'day') }}
            as days_since_last_visit,
        {{ dbt.datediff('cast(session_totals.first_session_start as date)', 'session_totals.as_of_date', 'day') }}
            as days_since_first_visit,
        session_totals.sessions_7d,
        session_totals.sessions_30d,
        session_totals.sessions_total,
        coalesce(active_days.active_days_30d, 0) as active_days_30d,
        cast(session_totals.sessions_total as double) / nullif(active_days.active_days_total, 0) as sessions_per_active_day,
        cast(session_totals.duration_seconds as double) / nullif(session_totals.sessions_total, 0) as avg_session_seconds,
        cast(session_totals.engaged_seconds as double) / nullif(session_totals.sessions_total, 0) as avg_engaged_seconds,
        scroll_depth.avg_scroll_depth_pct,
        session_totals.page_views,
        session_totals.product_views,
        coalesce(categories.categories_viewed, 0) as categories_viewed,
        session_totals.searches,
        session_totals.cart_adds,
        session_totals.purchases,
        session_totals.revenue,
        coalesce(session_totals.revenue / nullif(session_totals.purchases, 0), 0) as avg_order_value,
        coalesce(
            cast(session_totals.abandoned_cart_sessions as double) / nullif(session_totals.cart_sessions, 0), 0
        ) as cart_abandonment_rate,
        {{ dbt.datediff('cast(session_totals.last_purchase_session_end as date)', 'session_totals.as_of_date', 'day') }}
            as days_since_last_purchase,
        cast(session_totals.bounced_sessions as double) / nullif(session_totals.sessions_total, 0) as bounce_rate,
        cast(session_totals.engaged_sessions as double) / nullif(session_totals.sessions_total, 0) as engaged_session_rate
    from session_totals
    left join active_days
        on
            session_totals.user_key = active_days.user_key
            and session_totals.as_of_date = active_days.as_of_date
    left join scroll_depth
        on
            session_totals.user_key = scroll_depth.user_key
            and session_totals.as_of_date = scroll_depth.as_of_date
    left join categories
        on
            session_totals.user_key = categories.user_key
            and session_totals.as_of_date = categories.as_of_date

)

select * from final
