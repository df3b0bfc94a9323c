{#- The audiences: who is in each (a rule over user_profiles), why (a reason per user) and in which order
    (a score, highest first). One definition: the audience models (models/audiences/audience_<name>.sql) and
    audience_definitions (what the published manifest says about each) are rendered from it. -#}
{% macro pulse_audiences() %}
    {%- set s = dbt.type_string() -%}
    {{ return([
        {
            'name': 'cart_abandoners',
            'description': 'Users whose cart-abandonment trigger fired in the last 7 days and who have not bought since.',
            'rule': "array_contains(active_triggers, 'cart_abandonment')",
            'reason': "'cart abandoned; next: ' || next_action",
            'score': 'coalesce(intent_probability, 0)',
        },
        {
            'name': 'high_intent',
            'description': 'The top decile of purchase-intent scores, or a high-intent trigger in the last 7 days.',
            'rule': "intent_decile = 1 or array_contains(active_triggers, 'high_intent')",
            'reason': "case when intent_decile = 1 then 'intent decile 1' else 'high-intent trigger' end",
            'score': 'coalesce(intent_probability, 0)',
        },
        {
            'name': 'loyal_buyers',
            'description': 'Users with at least 2 purchases, the last within 30 days.',
            'rule': 'purchases >= 2 and days_since_last_purchase <= 30',
            'reason': "cast(purchases as " ~ s ~ ") || ' purchases, last ' || cast(days_since_last_purchase as "
                ~ s ~ ") || ' days ago'",
            'score': 'coalesce(engagement_score, 0)',
        },
        {
            'name': 'win_back',
            'description': 'Past buyers with no visit for 30 days or more.',
            'rule': 'purchases >= 1 and days_since_last_visit >= 30',
            'reason': "'bought before, away ' || cast(days_since_last_visit as " ~ s ~ ") || ' days'",
            'score': 'cast(purchases as double)',
        },
    ]) }}
{% endmacro %}


{#- The audience `name`'s members: consented users (consent applied here, in SQL) who match its rule. -#}
{% macro pulse_audience(name) %}
    {%- set matches = pulse_audiences() | selectattr('name', 'equalto', name) | list -%}
    {%- if matches | length != 1 -%}
        {{ exceptions.raise_compiler_error("pulse_audience: no audience named '" ~ name ~ "' in pulse_audiences()") }}
    {%- endif -%}
    {%- set audience = matches[0] %}
with

profiles as (
    select * from {{ ref('user_profiles') }}
),

final as (
    select
        user_key,
        {{ audience.reason }} as reason,
        {{ audience.score }} as score,
        next_action,
        segment_name,
        user_type,
        intent_probability,
        as_of_date
    from profiles
    where consent_personalization and ({{ audience.rule }})
)

select * from final
{%- endmacro %}
