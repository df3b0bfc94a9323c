{{ config(materialized='table') }}

-- One row per (anonymous_id, user_id) pair seen together on an event (identify, or any event sent while
-- logged in), with when the pair was first and last seen. Millions of logged-in events make a few thousand
-- pairs; base_identity_map picks one user per anonymous id from them and qa_identity_conflicts lists the
-- anonymous ids with several.
with

source as (

    select * from {{ source('raw', 'events') }}

),

final as (

    select
        anonymous_id,
        user_id,
        min(event_time) as first_linked_at,
        max(event_time) as last_linked_at
    from source
    where anonymous_id is not null and user_id is not null
    group by anonymous_id, user_id

)

select * from final
