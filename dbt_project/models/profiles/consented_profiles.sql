{#- The profiles that may leave the warehouse: users whose latest consent_personalization is true (a user
    who never sent the flag has not consented). Publishing copies this table as it is (pulse/activation/publish.py). -#}

with

profiles as (
    select * from {{ ref('user_profiles') }}
),

final as (
    select
        user_key,
        segment_id,
        segment_name,
        user_type,
        intent_probability,
        cast(intent_decile as int) as intent_decile,
        engagement_score,
        active_triggers,
        top_categories,
        next_action,
        next_action_reason,
        consent_analytics,
        consent_personalization,
        segment_model_version,
        intent_model_version,
        segment_status,
        segment_status_reason,
        intent_status,
        intent_status_reason,
        as_of_date,
        updated_at
    from profiles
    where consent_personalization
)

select * from final
