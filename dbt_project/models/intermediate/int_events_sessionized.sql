-- Every deduplicated event with the session it belongs to.
-- A user's next event starts a new session when it comes more than session_timeout_minutes after the
-- previous one, or when the client session id changes (where both events carry one). A visit longer than
-- max_session_hours is cut into pieces of that length; qa_sessions_cut lists them.
with

events as (

    select * from {{ ref('stg_events') }}

),

with_previous as (

    select
        *,
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
        *,
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

visits as (

    select
        *,
        sum(is_new_visit) over (
            partition by user_key order by event_time, event_id
            rows between unbounded preceding and current row
        ) as visit_index
    from flagged

),

visit_bounds as (

    select
        *,
        min(event_time) over (partition by user_key, visit_index) as visit_start_time,
        first_value(event_id) over (
            partition by user_key, visit_index order by event_time, event_id
        ) as visit_first_event_id
    from visits

),

pieces as (

    select
        *,
        cast(floor(
            {{ dbt.datediff('visit_start_time', 'event_time', 'second') }}
            / ({{ var('max_session_hours') }} * 3600)
        ) as {{ dbt.type_bigint() }}) as visit_piece
    from visit_bounds

),

final as (

    select
        md5(
            user_key || '|' || visit_first_event_id || '|' || cast(visit_piece as {{ dbt.type_string() }})
        ) as session_key,
        md5(user_key || '|' || visit_first_event_id) as visit_key,
        visit_index,
        visit_piece,
        event_id,
        event_type,
        event_time,
        received_at,
        event_date,
        load_date,
        user_key,
        user_id,
        anonymous_id,
        client_session_id,
        page_view_id,
        page_url,
        page_title,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        product_id,
        category,
        price,
        quantity,
        order_id,
        revenue,
        search_query,
        element,
        scroll_depth_pct,
        scroll_depth_px,
        doc_height_px,
        viewport_height_px,
        consent_analytics,
        consent_personalization
    from pieces

)

select * from final
