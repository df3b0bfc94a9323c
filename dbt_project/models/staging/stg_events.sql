-- Contract events, one row per event_id (see base_events_duplicates for which copy is kept), with
-- user_key: user_id when the event carries one, else anonymous_id.
with

source as (

    select * from {{ source('raw', 'events') }}

),

duplicates as (

    select * from {{ ref('base_events_duplicates') }}

),

deduplicated as (

    select source.*
    from source
    left join duplicates
        on
            source.source_file = duplicates.source_file
            and source.source_line = duplicates.source_line
    where duplicates.source_line is null

),

final as (

    select
        event_id,
        event_type,
        event_time,
        received_at,
        cast(event_time as date) as event_date,
        load_date,
        user_id,
        anonymous_id,
        coalesce(user_id, anonymous_id) as user_key,
        session_id as client_session_id,
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
        consent_personalization,
        properties
    from deduplicated

)

select * from final
