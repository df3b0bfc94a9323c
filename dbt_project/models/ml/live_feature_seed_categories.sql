-- The distinct product categories each user of live_feature_seeds viewed in the counted sessions (product views
-- up to the user's last counted session end, as user_feature_snapshots bounds categories_viewed): a distinct
-- count is not additive, so the live state seeds the set itself and adds the categories it sees later.
with

seeds as (

    select * from {{ ref('live_feature_seeds') }}

),

product_view_events as (

    select
        user_key,
        event_time,
        category
    from {{ ref('stg_events') }}
    where event_type = 'product_view' and category is not null

),

final as (

    select distinct
        product_view_events.user_key,
        product_view_events.category
    from product_view_events
    inner join seeds on product_view_events.user_key = seeds.user_key
    where product_view_events.event_time <= seeds.last_session_end

)

select * from final
