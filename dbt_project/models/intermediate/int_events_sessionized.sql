-- Every deduplicated event with the session it belongs to.
-- A user's next event starts a new session when it comes more than session_timeout_minutes after the
-- previous one, or when the client session id changes (where both events carry one). A visit longer than
-- max_session_hours is cut into pieces of that length; qa_sessions_cut lists them.
with

events as (

    select * from {{ ref('stg_events') }}

),

-- Sessionize a narrow projection (4 columns), then join the result back to the wide rows by event_id:
-- window sorts cost in proportion to row width.
with_previous as (

    select
        event_id,
        user_key,
        event_time,
        client_session_id,
        lag(event_time) over (
            partition by user_key order by event_time, event_id
        ) as previous_event_time,
        lag(client_session_id) over (
            partition by user_key order by event_time, event_id
        ) as previous_client_session_id
    from events

),

flagged as (

    select
        event_id,
        user_key,
        event_time,
        case
            when previous_event_time is null then 1
            when
                {{ dbt.datediff('previous_event_time', 'event_time', 'second') }}
                > {{ var('session_timeout_minutes') }} * 60
                then 1
            when client_session_id <> previous_client_session_id then 1
            else 0
        end as is_new_visit
    from with_previous

),

indexed as (

    select
        event_id,
        user_key,
        event_time,
        is_new_visit,
        sum(is_new_visit) over (
            partition by user_key order by event_time, event_id
            rows between unbounded preceding and current row
        ) as visit_index
    from flagged

),

-- The first event of each visit is the row that opened it.
visit_starts as (

    select
        user_key,
        visit_index,
        event_id as visit_first_event_id,
        event_time as visit_start_time
    from indexed
    where is_new_visit = 1

),

event_visits as (

    select
        indexed.event_id,
        indexed.user_key,
        indexed.visit_index,
        visit_starts.visit_first_event_id,
        cast(floor(
            {{ dbt.datediff('visit_starts.visit_start_time', 'indexed.event_time', 'second') }}
            / ({{ var('max_session_hours') }} * 3600)
        ) as {{ dbt.type_bigint() }}) as visit_piece
    from indexed
    inner join visit_starts
        on
            indexed.user_key = visit_starts.user_key
            and indexed.visit_index = visit_starts.visit_index

),

final as (

    select
        md5(
            event_visits.user_key || '|' || event_visits.visit_first_event_id
            || '|' || cast(event_visits.visit_piece as {{ dbt.type_string() }})
        ) as session_key,
        md5(event_visits.user_key || '|' || event_visits.visit_first_event_id) as visit_key,
        event_visits.visit_index,
        event_visits.visit_piece,
        events.event_id,
        events.event_type,
        events.event_time,
        events.received_at,
        events.event_date,
        events.load_date,
        events.user_key,
        events.user_id,
        events.anonymous_id,
        events.client_session_id,
        events.page_view_id,
        events.page_url,
        events.page_title,
        events.referrer,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.product_id,
        events.category,
        events.price,
        events.quantity,
        events.order_id,
        events.revenue,
        events.search_query,
        events.element,
        events.scroll_depth_pct,
        events.scroll_depth_px,
        events.doc_height_px,
        events.viewport_height_px,
        events.consent_analytics,
        events.consent_personalization
    from events
    inner join event_visits on events.event_id = event_visits.event_id

)

select * from final
