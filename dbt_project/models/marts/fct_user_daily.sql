-- One row per user per day with activity (UTC).
-- Incremental: a batch run replaces each batch user's rows from its bound's day on (int_batch_bounds).
-- depends_on: {{ ref('int_batch') }}
{% set batch_bounds = ref('int_batch_bounds') %}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=pulse_rows_from_bound('DBT_INTERNAL_DEST.activity_date >= bounds.from_date'),
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
{% set scan_from = pulse_batch_scan_from('select * from ' ~ batch_bounds, 'from_date') if batch_run else none %}
with

events as (

    select stg_events.*
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        inner join {{ batch_bounds }} as bounds on stg_events.user_key = bounds.user_key
        where stg_events.event_time >= {{ scan_from }} and stg_events.event_date >= bounds.from_date
    {% endif %}

),

-- Distinct categories viewed, from the product views alone: a distinct count inside daily_events would make
-- DuckDB group all 10 M events by category too. Reads stg_events itself (a second reader of `events` would
-- have DuckDB write that CTE out).
daily_categories as (

    select
        stg_events.user_key,
        stg_events.event_date as activity_date,
        count(distinct stg_events.category) as categories_viewed
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        inner join {{ batch_bounds }} as bounds on stg_events.user_key = bounds.user_key
    {% endif %}
    where
        stg_events.event_type = 'product_view'
    {% if batch_run %}
        and stg_events.event_time >= {{ scan_from }} and stg_events.event_date >= bounds.from_date
    {% endif %}
    group by stg_events.user_key, stg_events.event_date

),

sessions as (

    select fct_sessions.*
    from {{ ref('fct_sessions') }} as fct_sessions
    {% if batch_run %}
        inner join {{ batch_bounds }} as bounds on fct_sessions.user_key = bounds.user_key
        where fct_sessions.session_date >= bounds.from_date
    {% endif %}

),

page_views as (

    select fct_page_views.*
    from {{ ref('fct_page_views') }} as fct_page_views
    {% if batch_run %}
        inner join {{ batch_bounds }} as bounds on fct_page_views.user_key = bounds.user_key
        where fct_page_views.event_date >= bounds.from_date
    {% endif %}

),

daily_events as (

    select
        user_key,
        event_date as activity_date,
        count(*) as events,
        count_if(event_type = 'page_view') as page_views,
        count_if(event_type = 'product_view') as product_views,
        count_if(event_type = 'search') as searches,
        count_if(event_type = 'add_to_cart') as cart_adds,
        count_if(event_type = 'remove_from_cart') as cart_removes,
        count_if(event_type = 'checkout') as checkouts,
        count_if(event_type = 'purchase') as purchases,
        coalesce(sum(case when event_type = 'purchase' then revenue end), 0) as revenue,
        min(event_time) as first_event_at,
        max(event_time) as last_event_at
    from events
    group by user_key, event_date

),

daily_sessions as (

    select
        user_key,
        session_date as activity_date,
        count(*) as sessions_started,
        count_if(is_engaged) as engaged_sessions_started
    from sessions
    group by user_key, session_date

),

daily_engagement as (

    select
        user_key,
        event_date as activity_date,
        cast(sum(engaged_seconds) as {{ dbt.type_bigint() }}) as engaged_seconds,
        max(scroll_depth_pct) as max_scroll_depth_pct
    from page_views
    group by user_key, event_date

),

final as (

    select
        daily_events.user_key,
        daily_events.activity_date,
        daily_events.events,
        coalesce(daily_sessions.sessions_started, 0) as sessions_started,
        coalesce(daily_sessions.engaged_sessions_started, 0) as engaged_sessions_started,
        daily_events.page_views,
        daily_events.product_views,
        coalesce(daily_categories.categories_viewed, 0) as categories_viewed,
        daily_events.searches,
        daily_events.cart_adds,
        daily_events.cart_removes,
        daily_events.checkouts,
        daily_events.purchases,
        daily_events.revenue,
        coalesce(daily_engagement.engaged_seconds, 0) as engaged_seconds,
        daily_engagement.max_scroll_depth_pct,
        daily_events.first_event_at,
        daily_events.last_event_at
    from daily_events
    left join daily_categories
        on
            daily_events.user_key = daily_categories.user_key
            and daily_events.activity_date = daily_categories.activity_date
    left join daily_sessions
        on
            daily_events.user_key = daily_sessions.user_key
            and daily_events.activity_date = daily_sessions.activity_date
    left join daily_engagement
        on
            daily_events.user_key = daily_engagement.user_key
            and daily_events.activity_date = daily_engagement.activity_date

)

select * from final
