{#- One row per audience: its name, the model holding its members, what it is and its rule (macros/
    audiences.sql). Publishing reads it to know which audiences to copy and what the manifest says of them. -#}
{%- set audiences = pulse_audiences() %}

with

final as (
    {%- for audience in audiences %}
        select
            '{{ audience.name }}' as audience,
            'audience_{{ audience.name }}' as audience_model,
            '{{ audience.description | replace("'", "''") }}' as description,
            '{{ audience.rule | replace("'", "''") }}' as audience_rule
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
)

select * from final
