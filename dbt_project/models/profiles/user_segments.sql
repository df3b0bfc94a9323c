{#- One row per user the segment champion assigned (segment_assignments, written by Python): its segment's
    name (segment_names: from the centroids, ml/naming.py, for the same model version) and the rule-based
    user type with the rule that fired (user_types). Empty while no version is champion. -#}

with

assignments as (
    select * from {{ source('ml', 'segment_assignments') }}
),

names as (
    select * from {{ source('ml', 'segment_names') }}
),

types as (
    select * from {{ ref('user_types') }}
),

final as (
    select
        assignments.user_key,
        assignments.segment_id,
        names.segment_name,
        assignments.distance_to_centroid,
        types.user_type,
        types.user_type_rule,
        assignments.as_of_date,
        assignments.model_version,
        assignments.model_trained_at
    from assignments
    left join names
        on
            assignments.model_version = names.model_version
            and assignments.segment_id = names.segment_id
    left join types on assignments.user_key = types.user_key
)

select * from final
