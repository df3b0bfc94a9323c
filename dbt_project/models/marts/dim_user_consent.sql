-- One row per user who ever sent a consent flag: the latest value of each flag (by event_time, then
-- event_id), and when it was sent. A flag never sent is null: activation treats null as "no consent".
with

events as (

    select
        user_key,
        event_id,
        event_time,
        consent_analytics,
        consent_personalization
    from {{ ref('stg_events') }}
    where consent_analytics is not null or consent_personalization is not null

),

analytics as (

    select
        user_key,
        consent_analytics,
        event_time as consent_analytics_at
    from events
    where consent_analytics is not null
    qualify row_number() over (partition by user_key order by event_time desc, event_id desc) = 1

),

personalization as (

    select
        user_key,
        consent_personalization,
        event_time as consent_personalization_at
    from events
    where consent_personalization is not null
    qualify row_number() over (partition by user_key order by event_time desc, event_id desc) = 1

),

final as (

    select
        coalesce(analytics.user_key, personalization.user_key) as user_key,
        analytics.consent_analytics,
        analytics.consent_analytics_at,
        personalization.consent_personalization,
        personalization.consent_personalization_at
    from analytics
    full outer join personalization on analytics.user_key = personalization.user_key

)

select * from final
