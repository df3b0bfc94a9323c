-- One row per user who ever sent a consent flag: the latest value of each flag (by event_time, then
-- event_id), and when it was sent. A flag never sent is null: activation treats null as "no consent".
-- Incremental: a batch run replaces the rows of the batch's users, recomputed from their whole history (a
-- re-stitched user may lose events, so the latest flag is not simply the newer of old and new).
-- depends_on: {{ ref('int_batch') }}, {{ ref('int_batch_users') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=['DBT_INTERNAL_DEST.user_key in (select user_key from __batch_users__)'],
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
with

events as (

    select
        stg_events.user_key,
        stg_events.event_id,
        stg_events.event_time,
        stg_events.consent_analytics,
        stg_events.consent_personalization
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        inner join {{ ref('int_batch_users') }} as batch_users on stg_events.user_key = batch_users.user_key
    {% endif %}
    where stg_events.consent_analytics is not null or stg_events.consent_personalization is not null

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
