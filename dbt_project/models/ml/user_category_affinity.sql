-- Each user's most viewed product categories in the 30 days before the latest feature snapshot
-- (user_features.as_of_date), ranked by product views, then by category name. At most the top 3.
with

product_views as (

    select
        user_key,
        category,
        event_time
    from {{ ref('stg_events') }}
    where event_type = 'product_view' and category is not null

),

snapshot as (

    select max(as_of_date) as as_of_date
    from {{ ref('user_features') }}

),

recent as (

    select
        product_views.user_key,
        product_views.category,
        count(*) as product_views
    from product_views
    cross join snapshot
    where
        product_views.event_time < cast(snapshot.as_of_date as {{ dbt.type_timestamp() }})
        and product_views.event_time
        >= cast({{ dbt.dateadd('day', -30, 'snapshot.as_of_date') }} as {{ dbt.type_timestamp() }})
    group by product_views.user_key, product_views.category

),

final as (

    select
        user_key,
        category,
        product_views,
        row_number() over (partition by user_key order by product_views desc, category asc) as category_rank
    from recent
    qualify row_number() over (partition by user_key order by product_views desc, category asc) <= 3

)

select * from final
