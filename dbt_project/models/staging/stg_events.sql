-- Contract events, typed and deduplicated: one row per event_id, the copy received first wins.
with

source as (

    select * from {{ source('raw', 'events') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by event_id
        order by received_at asc nulls last, load_date asc, source_file asc, source_line asc
    ) = 1

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
