{{ config(materialized='table') }}

-- One row per anonymous_id that was ever seen together with a user_id (an event carrying both ids, e.g.
-- identify or any event sent after login). Rule: the LATEST user_id seen with the anonymous_id (by
-- event_time, ties by user_id) is the one its anonymous-only events are stitched to.
-- An anonymous id seen with several user ids (a shared device) is never merged into one user: events
-- that carry a user_id keep it, and qa_identity_conflicts lists every such anonymous id.
-- Only the (anonymous_id, user_id) pairs of base_identity_links are ranked, not the events.
with

pairs as (

    select * from {{ ref('base_identity_links') }}

),

ranked as (

    select
        anonymous_id,
        user_id,
        count(*) over (partition by anonymous_id) as user_ids_seen,
        min(first_linked_at) over (partition by anonymous_id) as first_linked_at,
        max(last_linked_at) over (partition by anonymous_id) as last_linked_at,
        row_number() over (partition by anonymous_id order by last_linked_at desc, user_id desc) as recency
    from pairs

),

final as (

    select
        anonymous_id,
        user_id,
        user_ids_seen,
        first_linked_at,
        last_linked_at
    from ranked
    where recency = 1

)

select * from final
