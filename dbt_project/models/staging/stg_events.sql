-- Contract events, one row per event_id (see base_events_duplicates for which copy is kept), with
-- user_key: the event's user_id when it carries one, else the user its anonymous_id is stitched to
-- (base_identity_map), else the anonymous_id.
with

source as (

    select * from {{ source('raw', 'events') }}

),

duplicates as (

    select * from {{ ref('base_events_duplicates') }}

),

identity_map as (

    select * from {{ ref('base_identity_map') }}

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

stitched as (

    select
        deduplicated.*,
        identity_map.user_id as stitched_user_id
    from deduplicated
    left join identity_map on deduplicated.anonymous_id = identity_map.anonymous_id

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
        coalesce(user_id, stitched_user_id, anonymous_id) as user_key,
        stitched_user_id is not null and user_id is null as is_stitched,
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
        value,
        cart_value,
        search_query,
        element,
        scroll_depth_pct,
        scroll_depth_px,
        doc_height_px,
        viewport_height_px,
        consent_analytics,
        consent_personalization,
        -- set by `pulse import --consent ... --consent-basis` on events whose flags it declared (contract v1.3)
        consent_basis,
        properties
    from stitched

)

select * from final
