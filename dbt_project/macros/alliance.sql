{# The as-of cut of a build: events recorded by var('as_of') and held at or before var('max_seq'). #}
{% macro as_of_filter(recorded_col='recorded_at', seq_col='seq') -%}
    true
    {%- if var('as_of') is not none %} and {{ recorded_col }} <= cast('{{ var("as_of") }}' as timestamptz){% endif %}
    {%- if var('max_seq') is not none %} and {{ seq_col }} <= {{ var('max_seq') }}{% endif %}
{%- endmacro %}

{# The calendar date, in the site's time zone, of an instant. #}
{% macro local_date(ts) -%}
    cast(timezone('{{ var("site_tz") }}', {{ ts }}) as date)
{%- endmacro %}

{# The REDCap field a study-profile concept maps to, or none. #}
{% macro concept_field(concept) -%}
    {{- return(var('profile')['fields'].get(concept)) -}}
{%- endmacro %}

{# The raw value of a concept's field in a long (record_id, field, value) relation. #}
{% macro concept_value(concept) -%}
    {%- set f = concept_field(concept) -%}
    {%- if f -%}
        max(value) filter (where field = '{{ f }}')
    {%- else -%}
        cast(null as varchar)
    {%- endif -%}
{%- endmacro %}

{# The codes ticked in a checkbox concept (list of varchar). #}
{% macro concept_checked(concept) -%}
    {%- set f = concept_field(concept) -%}
    {%- if f -%}
        list(substr(field, {{ f | length + 4 }}) order by field) filter (where starts_with(field, '{{ f }}___') and value = '1')
    {%- else -%}
        cast(null as varchar[])
    {%- endif -%}
{%- endmacro %}

{# A SQL CASE mapping codes through a profile mapping (dict code -> value). #}
{% macro map_codes(expr, mapping, quote=true) -%}
    {%- if mapping -%}
    case {{ expr }}
        {%- for code, target in mapping.items() %}
        when '{{ code }}' then {% if quote %}'{{ target }}'{% else %}{{ target }}{% endif %}
        {%- endfor %}
    end
    {%- else -%}
    cast(null as {% if quote %}varchar{% else %}integer{% endif %})
    {%- endif -%}
{%- endmacro %}

{# The dictionary label of a code of a concept's field. #}
{% macro label_of(concept, code_expr) -%}
    {%- set f = concept_field(concept) -%}
    {%- if f -%}
        (select l.label from {{ ref('int_choice_labels') }} as l where l.field_name = '{{ f }}' and l.code = {{ code_expr }})
    {%- else -%}
        cast(null as varchar)
    {%- endif -%}
{%- endmacro %}
