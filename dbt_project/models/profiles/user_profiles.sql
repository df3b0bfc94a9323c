{#- One profile per user: what activation tools need to act on a user, in one row (docs/activation.md).
    The population is the latest feature snapshot (user_features); the segment and user type come from the
    segment champion's assignments (user_segments: what Python assigned, joined with the names and user
    types) or, for a user it did not assign, from the rule-based user_types; the intent score from user_intent_scores (null when the user is not active or
    no model is champion); triggers that fired in the 7 days before the snapshot (a cart
    abandonment stops being active once the user buys); the top categories; the consent flags (never sent =
    no consent).

    The recommended next action: a trigger overrides the user type, in the order of `trigger_rules`; then
    the user-type rules, first match wins; `next_action_reason` says which rule chose it. -#}
{%- set active_trigger_days = 7 -%}
{%- set trigger_rules = [
    ('cart_abandonment', 'abandoned-cart email'),
    ('high_intent', 'personalized offer'),
    ('returning_browser', 'product recommendations'),
    ('frequent_visitor', 'early access'),
    ('low_engagement', 'simplified content'),
] -%}
{%- set user_type_rules = [
    ("user_type = 'Active' and purchases > 0", 'loyalty rewards', 'Active, has bought'),
    ("user_type = 'Active' and engagement_score >= 60", 'exclusive content', 'Active, engagement score >= 60'),
    ("user_type = 'Active'", 'early access', 'Active'),
    ("user_type = 'Intent-driven' and intent_decile <= 2", 'personalized offer', 'Intent-driven, intent decile <= 2'),
    ("user_type = 'Intent-driven' and cart_abandonment_rate > 0", 'abandoned-cart email',
        'Intent-driven, abandons carts'),
    ("user_type = 'Intent-driven'", 'product recommendations', 'Intent-driven'),
    ('days_since_last_visit <= 14', 'email nudge', 'Passive, visited in the last 14 days'),
    ('consent_personalization', 'retargeting', 'Passive, away 15+ days'),
] -%}
{%- set fallback = ('simplified content', 'Passive, away 15+ days, no consent for retargeting') -%}
{%- set rules = [] -%}
{%- for trigger, action in trigger_rules -%}
    {%- do rules.append(("array_contains(active_triggers, '" ~ trigger ~ "')", action, 'trigger: ' ~ trigger)) -%}
{%- endfor -%}
{%- do rules.extend(user_type_rules) -%}

with

features as (
    select * from {{ ref('user_features') }}
),

snapshot as (
    select max(as_of_date) as as_of_date from features
),

last_purchases as (
    select
        user_key,
        max(session_end) as last_purchase_at
    from {{ ref('fct_sessions') }}
    where purchases > 0
    group by user_key
),

triggers as (
    select
        firings.user_key,
        {{ pulse_sorted_set('firings.trigger_name') }} as active_triggers
    from {{ ref('fct_trigger_firings') }} as firings
    cross join snapshot
    left join last_purchases on firings.user_key = last_purchases.user_key
    where
        firings.fired_at >= {{ dbt.dateadd('day', -active_trigger_days, 'cast(snapshot.as_of_date as timestamp)') }}
        and firings.fired_at < cast(snapshot.as_of_date as timestamp)
        and not (
            firings.trigger_name = 'cart_abandonment'
            and coalesce(last_purchases.last_purchase_at > firings.fired_at, false)
        )
    group by firings.user_key
),

categories as (
    select
        user_key,
        {{ pulse_ordered_list('category', 'category_rank') }} as top_categories
    from {{ ref('user_category_affinity') }}
    group by user_key
),

segment_state as (
    select
        status,
        reason
    from {{ ref('model_status') }}
    where model = 'segments'
),

intent_state as (
    select
        status,
        reason
    from {{ ref('model_status') }}
    where model = 'purchase_intent'
),

joined as (
    select
        features.user_key,
        segments.segment_id,
        segments.segment_name,
        coalesce(segments.user_type, rule_types.user_type) as user_type,
        coalesce(segments.user_type_rule, rule_types.user_type_rule) as user_type_rule,
        intent.probability as intent_probability,
        intent.decile as intent_decile,
        intent.percentile as intent_percentile,
        engagement.engagement_score,
        coalesce(triggers.active_triggers, {{ pulse_empty_string_list() }}) as active_triggers,
        coalesce(categories.top_categories, {{ pulse_empty_string_list() }}) as top_categories,
        coalesce(consent.consent_analytics, false) as consent_analytics,
        coalesce(consent.consent_personalization, false) as consent_personalization,
        features.purchases,
        features.cart_abandonment_rate,
        features.days_since_last_visit,
        features.days_since_last_purchase,
        segments.model_version as segment_model_version,
        intent.model_version as intent_model_version,
        case
            when segments.user_key is not null then segment_state.status
            when segment_state.status in ('current', 'carried') then 'not_assigned'
            else segment_state.status
        end as segment_status,
        case
            when segments.user_key is null and segment_state.status in ('current', 'carried')
                then 'not in user_segments: the champion assigned no segment to this user'
            else segment_state.reason
        end as segment_status_reason,
        case
            when intent.user_key is not null then intent_state.status
            when intent_state.status in ('current', 'carried') then 'not_scored'
            else intent_state.status
        end as intent_status,
        case
            when intent.user_key is null and intent_state.status in ('current', 'carried')
                then 'not active in the 30 days before the snapshot: only active users are scored'
            else intent_state.reason
        end as intent_status_reason,
        features.as_of_date
    from features
    cross join segment_state
    cross join intent_state
    left join {{ ref('user_segments') }} as segments on features.user_key = segments.user_key
    left join {{ ref('user_types') }} as rule_types on features.user_key = rule_types.user_key
    left join {{ ref('user_intent_scores') }} as intent on features.user_key = intent.user_key
    left join {{ ref('user_engagement_scores') }} as engagement on features.user_key = engagement.user_key
    left join triggers on features.user_key = triggers.user_key
    left join categories on features.user_key = categories.user_key
    left join {{ ref('dim_user_consent') }} as consent on features.user_key = consent.user_key
),

final as (
    select
        user_key,
        segment_id,
        segment_name,
        user_type,
        user_type_rule,
        intent_probability,
        intent_decile,
        intent_percentile,
        engagement_score,
        active_triggers,
        top_categories,
        case
            {%- for condition, action, reason in rules %}
                when {{ condition }} then '{{ action }}'
            {%- endfor %}
            else '{{ fallback[0] }}'
        end as next_action,
        case
            {%- for condition, action, reason in rules %}
                when {{ condition }} then '{{ reason }}'
            {%- endfor %}
            else '{{ fallback[1] }}'
        end as next_action_reason,
        consent_analytics,
        consent_personalization,
        purchases,
        days_since_last_visit,
        days_since_last_purchase,
        segment_model_version,
        intent_model_version,
        segment_status,
        segment_status_reason,
        intent_status,
        intent_status_reason,
        as_of_date,
        {{ pulse_profiles_updated_at() }} as updated_at
    from joined
)

select * from final
