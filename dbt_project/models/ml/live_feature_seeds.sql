-- One row per user: the additive totals of user_feature_snapshots' latest snapshot (the sessions over at its
-- date), from which the stream processor seeds a user's live feature state (pulse/live/features.py). The live
-- state adds the sessions that end later; features are ratios and distinct counts of these totals, so the
-- seed carries numerators and denominators (scroll depth: sum and count of known depths), never the ratios.
-- Same point-in-time rule as user_feature_snapshots: a session counts when its last event is more than
-- session_timeout_minutes before the snapshot date. Every event of the user up to last_session_end belongs to
-- a counted session (a user's sessions do not overlap): the live state ignores events up to it.
-- The per-day detail of the last 30 days is live_feature_seed_days; the categories live_feature_seed_categories.
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

snapshot as (

    select
        max(as_of_date) as as_of_date,
        {{ dbt.dateadd('minute', -1 * var('session_timeout_minutes'),
                       'cast(max(as_of_date) as ' ~ dbt.type_timestamp() ~ ')') }} as closed_before
    from {{ ref('feature_snapshot_dates') }}
    where is_kept

),

counted_sessions as (

    select sessions.*
    from sessions
    inner join snapshot on sessions.session_end < snapshot.closed_before

),

session_totals as (

    select
        user_key,
        min(session_start) as first_session_start,
        max(session_end) as last_session_end,
        max(case when purchases > 0 then session_end end) as last_purchase_session_end,
        count(*) as sessions_total,
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
    from counted_sessions
    group by user_key

),

scroll_depth as (

    select
        counted_sessions.user_key,
        sum(page_views.scroll_depth_pct) as scroll_depth_sum,
        count(page_views.scroll_depth_pct) as scroll_depth_count
    from page_views
    inner join counted_sessions on page_views.session_key = counted_sessions.session_key
    group by counted_sessions.user_key

),

active_days as (

    select
        user_daily.user_key,
        count(*) as active_days_total
    from user_daily
    inner join session_totals on user_daily.user_key = session_totals.user_key
    where user_daily.activity_date <= cast(session_totals.last_session_end as date)
    group by user_daily.user_key

),

final as (

    select
        session_totals.user_key,
        snapshot.as_of_date,
        snapshot.closed_before,
        session_totals.first_session_start,
        session_totals.last_session_end,
        session_totals.last_purchase_session_end,
        session_totals.sessions_total,
        session_totals.bounced_sessions,
        session_totals.engaged_sessions,
        session_totals.cart_sessions,
        session_totals.abandoned_cart_sessions,
        session_totals.duration_seconds,
        session_totals.engaged_seconds,
        session_totals.page_views,
        session_totals.product_views,
        session_totals.searches,
        session_totals.cart_adds,
        session_totals.purchases,
        session_totals.revenue,
        coalesce(scroll_depth.scroll_depth_sum, 0) as scroll_depth_sum,
        coalesce(scroll_depth.scroll_depth_count, 0) as scroll_depth_count,
        coalesce(active_days.active_days_total, 0) as active_days_total
    from session_totals
    cross join snapshot
    left join scroll_depth on session_totals.user_key = scroll_depth.user_key
    left join active_days on session_totals.user_key = active_days.user_key

)

select * from final
