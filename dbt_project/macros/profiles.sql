{#- When the profiles were built: the var `profiles_updated_at` ('YYYY-MM-DD HH:MM:SS', UTC) when set (a
    replay, a test comparing two builds), else the engine's clock, to the second, in UTC. -#}
{% macro pulse_profiles_updated_at() %}
    {%- set stamp = var('profiles_updated_at', none) -%}
    {%- if stamp -%}
        cast('{{ stamp }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        cast({{ dbt.date_trunc('second', dbt.current_timestamp()) }} as {{ dbt.type_timestamp() }})
    {%- endif -%}
{% endmacro %}
