-- One row per trigger firing: the candidates (int_trigger_candidates) whose time has come. The horizon is
-- triggers_through when set (firings before it: a replay or backtest), else the latest event (firings at
-- or before it: a later one may still be prevented by an event that has not arrived yet).
-- The rules, episodes and boundaries are in docs/triggers.md and the model's yml.
{% set cutoff = var('triggers_through', none) %}
with

candidates as (

    select * from {{ ref('int_trigger_candidates') }}

),

horizon as (

    {% if cutoff %}
        select cast('{{ cutoff }}' as {{ dbt.type_timestamp() }}) as through_at
    {% else %}
        select max(fct_sessions.session_end) as through_at
        from {{ ref('fct_sessions') }} as fct_sessions
    {% endif %}

),

final as (

    select candidates.*
    from candidates
    cross join horizon
    {% if cutoff %}
        where candidates.fired_at < horizon.through_at
    {% else %}
        where candidates.fired_at <= horizon.through_at
    {% endif %}

)

select * from final
