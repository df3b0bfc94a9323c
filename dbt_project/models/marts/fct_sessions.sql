-- One row per session: a visit, or one piece of a visit cut at max_session_hours.
-- Incremental: a batch run replaces each batch user's sessions from its bound's visit on (int_batch_bounds).
-- depends_on: {{ ref('int_batch') }}
{% set batch_bounds = ref('int_batch_bounds') %}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=pulse_rows_from_bound('DBT_INTERNAL_DEST.visit_index >= bounds.from_visit_index'),
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
{% set scan_from = pulse_batch_scan_from("select * from " ~ batch_bounds) if batch_run else none %}
with

events as (

    select sessionized.*
    from {{ ref('int_events_sessionized') }} as sessionized
    {% if batch_run %}
        {{ pulse_events_from_bound('sessionized', batch_bounds, scan_from) }}
    {% endif %}

),

page_views as (

    select fct_page_views.*
    from {{ ref('fct_page_views') }} as fct_page_views
    {% if batch_run %}
        where {{ pulse_at_or_after_bound('fct_page_views', 'started_at', batch_bounds) }}
    {% endif %}

),

session_events as (

    select
        session_key,
        visit_key,
        visit_index,
        visit_piece,
        user_key,
        max(user_id) as user_id,
        min(client_session_id) as client_session_id,
        min(event_time) as session_start,
        max(event_time) as session_end,
        count(*) as events,
        count_if(event_type = 'product_view') as product_views,
        count_if(event_type = 'add_to_cart') as cart_adds,
        count_if(event_type = 'checkout') as checkouts,
        count_if(event_type = 'purchase') as purchases,
        count_if(event_type = 'search') as searches,
        coalesce(sum(case when event_type = 'purchase' then revenue end), 0) as revenue,
        -- Carts as Snowplow's ecommerce package counts them, from the cart total the tracker reports
        -- (cart_value): an add that makes the total equal to what it added began a cart. (coalesce:
        -- DuckDB's count_if is null when every input is null.)
        coalesce(count_if(
            event_type = 'add_to_cart'
            and abs(cart_value - coalesce(value, price * coalesce(quantity, 1))) < 0.005
        ), 0) as carts_created,
        coalesce(count_if(event_type in ('add_to_cart', 'remove_from_cart') and cart_value = 0), 0) as carts_emptied,
        count_if(event_type in ('add_to_cart', 'remove_from_cart') and cart_value is not null) as cart_total_events,
        max(case when event_type = 'add_to_cart' then event_time end) as last_cart_add_at,
        max(case when event_type = 'purchase' then event_time end) as last_purchase_at
    from events
    group by session_key, visit_key, visit_index, visit_piece, user_key

),

page_view_totals as (

    select
        session_key,
        -- page views as in fct_page_views: a page_view_id sent twice is one page view
        count(*) as page_views,
        cast(sum(engaged_seconds) as {{ dbt.type_bigint() }}) as engaged_seconds,
        max(scroll_depth_pct) as max_scroll_depth_pct,
        {{ pulse_min_by('page_url', 'started_at') }} as entry_page_url,
        {{ pulse_max_by('page_url', 'started_at') }} as exit_page_url,
        {{ pulse_min_by('referrer', 'started_at') }} as referrer,
        {{ pulse_min_by('utm_source', 'started_at') }} as utm_source,
        {{ pulse_min_by('utm_medium', 'started_at') }} as utm_medium,
        {{ pulse_min_by('utm_campaign', 'started_at') }} as utm_campaign
    from page_views
    group by session_key

),

final as (

    select
        session_events.session_key,
        session_events.visit_key,
        session_events.visit_index,
        session_events.visit_piece,
        max(session_events.visit_piece) over (partition by session_events.visit_key) > 0 as is_cut,
        session_events.user_key,
        session_events.user_id,
        session_events.client_session_id,
        session_events.session_start,
        session_events.session_end,
        cast(session_events.session_start as date) as session_date,
        {{ dbt.datediff('session_events.session_start', 'session_events.session_end', 'second') }}
            as duration_seconds,
        session_events.events,
        coalesce(page_view_totals.page_views, 0) as page_views,
        session_events.product_views,
        session_events.cart_adds,
        session_events.checkouts,
        session_events.purchases,
        session_events.searches,
        session_events.revenue,
        -- Cart abandoned: something was added to the cart after the session's last purchase (or with no
        -- purchase at all). An add at the same instant as a purchase counts as bought.
        case
            when session_events.last_cart_add_at is null then false
            when session_events.last_purchase_at is null then true
            else session_events.last_cart_add_at > session_events.last_purchase_at
        end as is_cart_abandoned,
        session_events.carts_created,
        session_events.carts_emptied,
        -- A cart begun in this session did not end in a purchase (Snowplow's session_cart_abandoned).
        -- Unknown (null) when the session's cart events carry no cart total.
        case
            when session_events.cart_total_events > 0
                then session_events.carts_created > session_events.purchases
        end as has_unconverted_cart,
        coalesce(page_view_totals.engaged_seconds, 0) as engaged_seconds,
        page_view_totals.max_scroll_depth_pct,
        page_view_totals.entry_page_url,
        page_view_totals.exit_page_url,
        page_view_totals.referrer,
        page_view_totals.utm_source,
        page_view_totals.utm_medium,
        page_view_totals.utm_campaign,
        coalesce(page_view_totals.page_views, 0) = 1 as is_bounce,
        coalesce(page_view_totals.engaged_seconds, 0) > {{ var('engaged_session_seconds') }}
        or session_events.purchases > 0
        or coalesce(page_view_totals.page_views, 0) >= 2 as is_engaged
    from session_events
    left join page_view_totals on session_events.session_key = page_view_totals.session_key

)

select * from final
