-- Anonymous ids seen with more than one user_id (shared devices, test logins). They are not merged:
-- anonymous-only events go to the latest user_id (base_identity_map), events with a user_id keep it.
with

source as (

    select * from {{ source('raw', 'events') }}

),

identity_map as (

    select * from {{ ref('base_identity_map') }}

),

links as (

    select
        anonymous_id,
        user_id,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at
    from source
    where
        user_id is not null
        and anonymous_id in (
            select identity_map.anonymous_id
            from identity_map
            where identity_map.user_ids_seen > 1
        )
    group by anonymous_id, user_id

),

final as (

    select
        links.anonymous_id,
        links.user_id,
        links.first_seen_at,
        links.last_seen_at,
        identity_map.user_id = links.user_id as is_stitched_user
    from links
    inner join identity_map on links.anonymous_id = identity_map.anonymous_id

)

select * from final
