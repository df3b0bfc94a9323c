-- One row per trigger firing, due or not yet: fct_trigger_firings emits those up to the data's horizon.
-- Each trigger fires at most once per user per episode; the rules, episodes and boundaries are in
-- docs/triggers.md and fct_trigger_firings.yml.
-- Causal: a firing depends only on events at or before its fired_at (never on what happens after it). A
-- firing that waits for something not to happen (a cart abandonment, low engagement) is a candidate with a
-- fired_at after the latest event until that time is reached; an event that prevents it changes its user,
-- whose candidates are then recomputed.
-- Incremental: a batch run recomputes the batch users' candidates from their whole history (replace_where
-- on user_key), so the table always equals a full build. With triggers_through (a replay or backtest: only
-- events before it are read) every run is a full one.
-- depends_on: {{ ref('int_batch') }}, {{ ref('int_batch_users') }}, {{ ref('stg_events') }}, {{ ref('int_visits') }}
{% set cutoff = var('triggers_through', none) %}
{% set cutoff_at = "cast('" ~ cutoff ~ "' as " ~ dbt.type_timestamp() ~ ")" %}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=(
            ['1 = 1'] if cutoff else ['DBT_INTERNAL_DEST.user_key in (select user_key from __batch_users__)']
        ),
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() and not cutoff %}
{% set timestamp_type = dbt.type_timestamp() %}
{% set string_type = dbt.type_string() %}
{% set bigint_type = dbt.type_bigint() %}
{% set intent_hours = var('high_intent_window_hours') | int %}
with

{% if batch_run %}
    -- The batch users' events and visits, sessionized here: filtering int_events_sessionized by user would
    -- sessionize every event first.
    batch_events as (

        select stg_events.*
        from {{ ref('stg_events') }} as stg_events
        inner join {{ ref('int_batch_users') }} as batch_users on stg_events.user_key = batch_users.user_key

    ),

    batch_visits as (

        select int_visits.*
        from {{ ref('int_visits') }} as int_visits
        inner join {{ ref('int_batch_users') }} as batch_users on int_visits.user_key = batch_users.user_key

    ),

    batch_sessionized as (

        {{ pulse_sessionized_events('batch_events', 'batch_visits') }}

    ),

{% endif %}
events as (

    select
        user_key,
        session_key,
        visit_index,
        visit_piece,
        event_id,
        event_type,
        event_time,
        page_view_id,
        category
    {% if batch_run %}
        from batch_sessionized
    {% else %}
        from {{ ref('int_events_sessionized') }}
    {% endif %}
    {% if cutoff %}
        where event_time < {{ cutoff_at }}
    {% endif %}

),

-- Sessions as far as the events before the cutoff go. A session's start and order are final once it has
-- begun; its end, page views and purchases are final once the user's next session has begun (or the
-- triggers below wait long enough after its last event to know it is over).
sessions as (

    select
        session_key,
        user_key,
        visit_index,
        visit_piece,
        min(event_time) as session_start,
        max(event_time) as session_end,
        count(distinct case when event_type = 'page_view' then coalesce(page_view_id, event_id) end)
            as page_views,
        coalesce(count_if(event_type = 'purchase'), 0) as purchases
    from events
    group by session_key, user_key, visit_index, visit_piece

),

sessions_ordered as (

    select
        session_key,
        user_key,
        session_start,
        session_end,
        page_views,
        purchases,
        cast(session_start as date) as session_date,
        row_number() over by_start as session_number,
        lead(session_start) over by_start as next_session_start
    from sessions
    window by_start as (partition by user_key order by visit_index, visit_piece)

),

-- 1. cart_abandonment --------------------------------------------------------------------------------
cart_and_purchase_events as (

    select
        user_key,
        session_key,
        event_id,
        event_type,
        event_time,
        category,
        case when event_type = 'purchase' then 1 else 0 end as is_purchase
    from events
    where event_type in ('add_to_cart', 'purchase')

),

-- For each add, the user's first purchase at or after it (any session; a purchase at the same instant
-- sorts after the add, so it counts).
cart_adds as (

    select
        user_key,
        session_key,
        event_id,
        event_time,
        category,
        is_purchase,
        min(case when is_purchase = 1 then event_time end) over (
            partition by user_key
            order by event_time, is_purchase, event_id
            rows between current row and unbounded following
        ) as next_purchase_at
    from cart_and_purchase_events

),

cart_adds_in_session as (

    select
        user_key,
        session_key,
        event_id,
        event_time,
        category,
        next_purchase_at,
        {{ dbt.dateadd('minute', var('cart_abandonment_minutes'), 'event_time') }} as deadline,
        lead(event_time) over by_session as next_add_at,
        row_number() over by_session as add_number,
        min(event_time) over (partition by session_key) as first_add_at
    from cart_adds
    where is_purchase = 0
    window by_session as (partition by session_key order by event_time, event_id)

),

-- An add is abandoned when neither a purchase by the user nor another add in the session follows it
-- within cart_abandonment_minutes (both bounds inclusive: a purchase at exactly +30:00 still counts).
-- The session's first abandoned add fires; a later add in the same session only moves the deadline.
abandoned_adds as (

    select
        user_key,
        session_key,
        event_time,
        category,
        deadline,
        add_number,
        first_add_at,
        row_number() over (partition by session_key order by event_time, event_id) as abandoned_number
    from cart_adds_in_session
    where
        (next_purchase_at is null or next_purchase_at > deadline)
        and (next_add_at is null or next_add_at > deadline)

),

cart_abandonment as (

    select
        'cart_abandonment' as trigger_name,
        user_key,
        session_key as episode_key,
        deadline as fired_at,
        add_number as evidence_count,
        first_add_at as evidence_started_at,
        event_time as evidence_ended_at,
        category as evidence_detail
    from abandoned_adds
    where abandoned_number = 1

),

-- 2. frequent_visitor --------------------------------------------------------------------------------
daily_sessions as (

    select
        user_key,
        session_date,
        session_start,
        row_number() over (partition by user_key, session_date order by session_start, session_number)
            as session_of_day,
        min(session_start) over (partition by user_key, session_date) as first_session_start
    from sessions_ordered

),

frequent_visitor as (

    select
        'frequent_visitor' as trigger_name,
        user_key,
        cast(session_date as {{ string_type }}) as episode_key,
        session_start as fired_at,
        session_of_day as evidence_count,
        first_session_start as evidence_started_at,
        session_start as evidence_ended_at,
        'sessions=' || cast(session_of_day as {{ string_type }}) as evidence_detail
    from daily_sessions
    where session_of_day = {{ var('frequent_visitor_sessions_per_day') }} + 1

),

-- 3. high_intent -------------------------------------------------------------------------------------
intent_events as (

    select
        user_key,
        event_id,
        event_type,
        event_time
    from events
    where event_type in ('product_view', 'add_to_cart')

),

-- At each product view or add: what the user did in the window that ends with it (from high_intent_window_hours
-- before it, inclusive, up to it; events at the same instant count in event_id order).
intent_windows as (

    select
        completing.user_key,
        completing.event_id,
        completing.event_time,
        coalesce(count_if(in_window.event_type = 'product_view'), 0) as product_views,
        coalesce(count_if(in_window.event_type = 'add_to_cart'), 0) as cart_adds,
        min(in_window.event_time) as window_started_at
    from intent_events as completing
    inner join intent_events as in_window
        on
            completing.user_key = in_window.user_key
            and completing.event_time <= {{ dbt.dateadd('hour', intent_hours, 'in_window.event_time') }}
            and (
                completing.event_time > in_window.event_time
                or (completing.event_time = in_window.event_time and completing.event_id >= in_window.event_id)
            )
    group by completing.user_key, completing.event_id, completing.event_time

),

-- An event qualifies when its window holds enough product views and an add. One episode per user per UTC
-- day: the day's first qualifying event fires (later ones that day do not). A day is a fixed, causal episode:
-- whether an event is the day's first qualifying one depends only on earlier events, so replay and
-- incremental runs agree, with no recursion (portable to any Spark).
intent_firings as (

    select
        user_key,
        event_id,
        event_time,
        product_views,
        cart_adds,
        window_started_at
    from intent_windows
    where product_views >= {{ var('high_intent_product_views') }} and cart_adds >= 1
    qualify row_number() over (
        partition by user_key, cast(event_time as date) order by event_time, event_id
    ) = 1

),

high_intent as (

    select
        'high_intent' as trigger_name,
        user_key,
        cast(cast(event_time as date) as {{ string_type }}) as episode_key,
        event_time as fired_at,
        product_views + cart_adds as evidence_count,
        window_started_at as evidence_started_at,
        event_time as evidence_ended_at,
        'product_views=' || cast(product_views as {{ string_type }})
        || ', cart_adds=' || cast(cart_adds as {{ string_type }}) as evidence_detail
    from intent_firings

),

-- 4. low_engagement ----------------------------------------------------------------------------------
-- The user's first session was short and shallow and the user has not come back low_engagement_wait_days
-- after its last event (a return at exactly that instant counts as back).
low_engagement as (

    select
        'low_engagement' as trigger_name,
        user_key,
        session_key as episode_key,
        {{ dbt.dateadd('day', var('low_engagement_wait_days'), 'session_end') }} as fired_at,
        page_views as evidence_count,
        session_start as evidence_started_at,
        session_end as evidence_ended_at,
        'duration_seconds='
        || cast({{ dbt.datediff('session_start', 'session_end', 'second') }} as {{ string_type }})
        || ', page_views=' || cast(page_views as {{ string_type }}) as evidence_detail
    from sessions_ordered
    where
        session_number = 1
        and session_end < {{ dbt.dateadd('second', var('low_engagement_max_seconds'), 'session_start') }}
        and page_views <= {{ var('low_engagement_max_page_views') }}
        and (
            next_session_start is null
            or next_session_start > {{ dbt.dateadd('day', var('low_engagement_wait_days'), 'session_end') }}
        )

),

-- 5. returning_browser -------------------------------------------------------------------------------
browsed_categories as (

    select
        session_key,
        category,
        count(*) as product_views,
        min(event_time) as first_viewed_at
    from events
    where event_type = 'product_view' and category is not null
    group by session_key, category

),

-- The category viewed most in the session (ties: the one viewed first, then by name).
top_categories as (

    select
        session_key,
        category,
        product_views,
        row_number() over (
            partition by session_key order by product_views desc, first_viewed_at asc, category asc
        ) as category_rank
    from browsed_categories

),

returning_browser as (

    select
        'returning_browser' as trigger_name,
        sessions_ordered.user_key,
        sessions_ordered.session_key as episode_key,
        sessions_ordered.next_session_start as fired_at,
        top_categories.product_views as evidence_count,
        sessions_ordered.session_start as evidence_started_at,
        sessions_ordered.session_end as evidence_ended_at,
        top_categories.category as evidence_detail
    from sessions_ordered
    inner join top_categories
        on
            sessions_ordered.session_key = top_categories.session_key
            and top_categories.category_rank = 1
    where
        sessions_ordered.purchases = 0
        and sessions_ordered.next_session_start
        <= {{ dbt.dateadd('day', var('returning_browser_days'), 'sessions_ordered.session_end') }}

),

-- All triggers --------------------------------------------------------------------------------------
all_firings as (

    select * from cart_abandonment
    union all
    select * from frequent_visitor
    union all
    select * from high_intent
    union all
    select * from low_engagement
    union all
    select * from returning_browser

),

final as (

    select
        md5(all_firings.trigger_name || '|' || all_firings.user_key || '|' || all_firings.episode_key)
            as firing_key,
        cast(all_firings.trigger_name as {{ string_type }}) as trigger_name,
        cast(all_firings.user_key as {{ string_type }}) as user_key,
        cast(all_firings.episode_key as {{ string_type }}) as episode_key,
        cast(all_firings.fired_at as {{ timestamp_type }}) as fired_at,
        cast(all_firings.fired_at as date) as fired_date,
        cast(all_firings.evidence_count as {{ bigint_type }}) as evidence_count,
        cast(all_firings.evidence_started_at as {{ timestamp_type }}) as evidence_started_at,
        cast(all_firings.evidence_ended_at as {{ timestamp_type }}) as evidence_ended_at,
        cast(all_firings.evidence_detail as {{ string_type }}) as evidence_detail
    from all_firings
    where
        all_firings.trigger_name in (
            {%- for trigger in var('triggers_enabled') %}
                '{{ trigger }}'{{ ',' if not loop.last }}
            {%- endfor %}
        )

)

select * from final
