-- One row per user who ever sent a consent flag: for each flag the value that holds, when it was sent, and
-- the basis an import declared for it (consent_basis; null: the user's own flag). A flag the user sent
-- outranks one an import declared (`pulse import --consent`, docs/importers.md), whatever their times: a
-- declaration fills in for users who never chose, it does not overrule a choice. Among flags of the same kind
-- the latest holds (by event_time, then event_id). A flag never sent is null: activation treats null as "no
-- consent".
-- Incremental: a batch run replaces the rows of the batch's users. Their events from the bound on are read
-- again; what came before is unchanged, and the user's current row stands for it (its flags are strictly
-- earlier than the bound). A user whose holding flag was at or after the bound and has no event from the bound
-- on that would outrank every earlier one (a retracted or re-stitched event; a declared flag outranks no
-- earlier flag of the user's own) is read whole.
-- on_schema_change append_new_columns: the *_basis columns came with contract v1.3; older rows keep them
-- null, which is right (no import declared anything before).
-- depends_on: {{ ref('int_batch') }}, {{ ref('int_batch_users') }}, {{ ref('int_batch_bounds') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=['DBT_INTERNAL_DEST.user_key in (select user_key from __batch_users__)'],
        on_schema_change='append_new_columns',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
{% set batch_bounds = ref('int_batch_bounds') %}
{% set flags = ['consent_analytics', 'consent_personalization'] %}
{#- a table built before contract v1.3 has no *_basis columns yet (dbt appends them after this select) -#}
{% set current_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list
    if batch_run else [] %}
with

{% if batch_run %}
    recent_events as (

        select
            stg_events.user_key,
            stg_events.event_id,
            stg_events.event_time,
            stg_events.consent_analytics,
            stg_events.consent_personalization,
            stg_events.consent_basis
        from {{ ref('stg_events') }} as stg_events
        {{ pulse_events_from_bound('stg_events', batch_bounds, pulse_batch_scan_from('select * from ' ~ batch_bounds)) }}
            and (stg_events.consent_analytics is not null or stg_events.consent_personalization is not null)

    ),

    current_rows as (

        select
            current_consent.user_key,
            {%- for flag in flags %}
                current_consent.{{ flag }},
                current_consent.{{ flag }}_at,
                {% if flag ~ '_basis' in current_columns -%}
                    current_consent.{{ flag }}_basis,
                {%- else -%}
                    cast(null as {{ dbt.type_string() }}) as {{ flag }}_basis,
                {%- endif %}
            {%- endfor %}
            bounds.from_start_time
        from {{ this }} as current_consent
        inner join {{ batch_bounds }} as bounds on current_consent.user_key = bounds.user_key

    ),

    -- the holding flag was at or after the bound, and nothing from the bound on outranks the flags before the
    -- bound: no event sends that flag any more, or the holding flag was the user's own and only declared
    -- ones are left (an own flag before the bound, not read, would outrank them)
    whole_history_users as (

        select current_rows.user_key
        from current_rows
        where
            {%- for flag in flags %}
                {{ 'or' if not loop.first }} (
                    current_rows.{{ flag }}_at >= current_rows.from_start_time
                    and not exists (
                        select 1 from recent_events
                        where
                            recent_events.user_key = current_rows.user_key
                            and recent_events.{{ flag }} is not null
                            and (recent_events.consent_basis is null or current_rows.{{ flag }}_basis is not null)
                    )
                )
            {%- endfor %}

    ),

{% endif %}
events as (

    {% if batch_run %}
        select * from recent_events
        where user_key not in (select whole_history_users.user_key from whole_history_users)
        {% for flag in flags %}
            union all
            select
                user_key,
                '' as event_id,
                {{ flag }}_at as event_time,
                {{ flag if flag == 'consent_analytics' else 'cast(null as boolean)' }} as consent_analytics,
                {{ flag if flag == 'consent_personalization' else 'cast(null as boolean)' }}
                    as consent_personalization,
                {{ flag }}_basis as consent_basis
            from current_rows
            where
                {{ flag }}_at < from_start_time
                and user_key not in (select whole_history_users.user_key from whole_history_users)
        {% endfor %}
        union all
    {% endif %}
    select
        stg_events.user_key,
        stg_events.event_id,
        stg_events.event_time,
        stg_events.consent_analytics,
        stg_events.consent_personalization,
        stg_events.consent_basis
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        inner join whole_history_users on stg_events.user_key = whole_history_users.user_key
    {% endif %}
    where stg_events.consent_analytics is not null or stg_events.consent_personalization is not null

),

analytics as (

    select
        user_key,
        consent_analytics,
        event_time as consent_analytics_at,
        consent_basis as consent_analytics_basis
    from events
    where consent_analytics is not null
    qualify
        row_number() over (
            partition by user_key order by case when consent_basis is null then 0 else 1 end, event_time desc, event_id desc
        ) = 1

),

personalization as (

    select
        user_key,
        consent_personalization,
        event_time as consent_personalization_at,
        consent_basis as consent_personalization_basis
    from events
    where consent_personalization is not null
    qualify
        row_number() over (
            partition by user_key order by case when consent_basis is null then 0 else 1 end, event_time desc, event_id desc
        ) = 1

),

final as (

    select
        coalesce(analytics.user_key, personalization.user_key) as user_key,
        analytics.consent_analytics,
        analytics.consent_analytics_at,
        personalization.consent_personalization,
        personalization.consent_personalization_at,
        analytics.consent_analytics_basis,
        personalization.consent_personalization_basis
    from analytics
    full outer join personalization on analytics.user_key = personalization.user_key

)

select * from final
