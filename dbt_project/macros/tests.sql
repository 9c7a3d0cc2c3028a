-- noqa: disable=LT02
{# (sqlfluff) As in alliance.sql: a macro file renders no SQL of its own; what the macros write is
   linted where it is used. #}
{# A uniqueness test over several columns: the rows whose combination of values occurs more than once
   (nulls compare equal). Grouping on the columns themselves is cheaper than dbt's `unique` over a
   concatenated expression, which builds a string per row. #}
{% test unique_combination(model, columns) %}
select
    {{ columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{# The relations of the event store's own rows (staging views of the events, append-only incremental
   models): a row, once tested, never changes (the store is append-only; erasure only removes rows). #}
{% macro is_event_level(relation) -%}
    {{- return(relation.identifier.startswith('stg_sessions__') or relation.identifier in [
        'stg_intake__events', 'stg_alliance__survey_events', 'stg_transcripts__coded_units',
        'int_session_events', 'int_intake_field_events', 'int_survey_field_events']) -}}
{%- endmacro %}

{# What a data test reads. In an incremental build (var tested_after_seq: the event-store position the
   kept build was built to), a test of an event-level relation reads only the events after it: the
   earlier ones passed the same test in an earlier build. Every other build (fresh, full refresh,
   as-of) tests everything; so does every test of any other model. #}
{% macro duckdb__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set after = var('tested_after_seq', 0) | int -%}
    {%- if after > 0 and is_event_level(relation) -%}
        {%- set where = ('(' ~ where ~ ') and ' if where else '') ~ 'seq > ' ~ after -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{# The arm labels of the study profile (plus `extra`, e.g. All, Overall): rows with another value fail. #}
{% test accepted_arm(model, column_name, extra=[]) %}
{%- set labels = (var('profile')['arms'].values() | list) + extra %}
select {{ column_name }} as value
from {{ model }}
where
    {{ column_name }} is not null
    {%- if labels %}
    and {{ column_name }} not in ({% for v in labels %}'{{ v | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endif %}
{% endtest %}
