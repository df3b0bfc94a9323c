-- Anonymous ids seen with more than one user_id (shared devices, test logins). They are not merged:
-- anonymous-only events go to the latest user_id (base_identity_map), events with a user_id keep it.
with

links as (

    select * from {{ ref('base_identity_links') }}

),

identity_map as (

    select * from {{ ref('base_identity_map') }}

),

final as (

    select
        links.anonymous_id,
        links.user_id,
        links.first_linked_at as first_seen_at,
        links.last_linked_at as last_seen_at,
        identity_map.user_id = links.user_id as is_stitched_user
    from links
    inner join identity_map on links.anonymous_id = identity_map.anonymous_id
    where identity_map.user_ids_seen > 1

)

select * from final
