-- noqa: disable=LT02
{# (sqlfluff) A macro file renders no SQL of its own, so its indentation is not checked here: the SQL the
   macros write is linted where the models call them. #}
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

{# A SQL string literal. #}
{% macro sql_text(value) -%}
    '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}

{# The raw value of a concept's field in a long (record_id, field, value) relation; a concept the
   profile fixes in `constants` is that value for every record. #}
{% macro concept_value(concept) -%}
    {%- set f = concept_field(concept) -%}
    {%- set constants = var('profile').get('constants') or {} -%}
    {%- if f -%}
        max(value) filter (where field = '{{ f }}')
    {%- elif concept in constants -%}
        {{ sql_text(constants[concept]) }}
    {%- else -%}
        cast(null as varchar)
    {%- endif -%}
{%- endmacro %}

{# The label of a code of a concept: the profile's mapping (the contract's label for sex, ethnicity and
   race), else the dictionary's own label (int_concept_codes). study=true gives the dictionary's label. #}
{% macro concept_label(concept, code_expr, study=false) -%}
    (select c.{{ 'study_label' if study else 'label' }} from {{ ref('int_concept_codes') }} as c
     where c.concept = '{{ concept }}' and c.code = {{ code_expr }})
{%- endmacro %}

{# The arms of the study in the profile's order: a VALUES body of (arm_order, arm); none when not randomized. #}
{% macro arm_rows() -%}
    {%- set labels = [] -%}
    {%- for code, label in var('profile')['arms'].items() -%}
        {%- if label not in labels %}{% do labels.append(label) %}{% endif -%}
    {%- endfor -%}
    {%- for label in labels %}({{ loop.index }}, {{ sql_text(label) }}){% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{# Whether the study is randomized (the profile has arms). #}
{% macro randomized_study() -%}
    {{- return(var('profile')['arms'] | length > 0) -}}
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

{# A staging view of one session-log event type: typed payload, local date, the as-of cut. #}
{% macro stg_session_events(event_type) -%}
with source as (
    select * from {{ source('event_store', 'events') }}
    where source = 'sessions' and event_type = '{{ event_type }}'
),

renamed as (
    select
        seq,
        event_id,
        event_type,
        -- payload version 3 leaves record_id to the stream (participant/<record_id>)
        coalesce(payload ->> 'record_id', substr(stream, length('participant/') + 1)) as record_id,
        occurred_at,
        {{ local_date('occurred_at') }} as occurred_on,
        recorded_at,
        cast(payload ->> 'scheduled_for' as timestamptz) as scheduled_for,
        payload ->> 'service' as service,
        cast(payload ->> 'session_number' as integer) as session_number,
        payload ->> 'staff_id' as staff_id,
        payload ->> 'mode' as mode,
        cast(payload ->> 'duration_min' as integer) as duration_min,
        cast(payload -> 'activities' as varchar[]) as activities,
        cast(payload ->> 'program_id' as integer) as program_id,
        payload ->> 'discharge_reason' as discharge_reason,
        payload ->> 'voids_event_id' as voids_event_id
    from source
    where {{ as_of_filter() }}
)

select * from renamed
{%- endmacro %}

{# The session-log event types (CONTRACT 1.2). #}
{% macro session_event_types() -%}
    {{ return(['session_scheduled', 'session_attended', 'session_missed', 'session_cancelled', 'contact_attempt',
               'treatment_admitted', 'treatment_visit', 'treatment_discharged', 'event_voided']) }}
{%- endmacro %}

{# The entries of a JSON object of text values, as rows of a struct (key, value); JSON null -> NULL.
   One parse per object (DuckDB's json_each re-reads the text per entry: about six times slower). #}
{% macro json_text_entries(json_expr) -%}
    unnest(map_entries(from_json({{ json_expr }}, '"MAP(VARCHAR, VARCHAR)"')))
{%- endmacro %}

{# The incremental cut of an append-only model: only events after the last one it holds.
   Events are appended with increasing seq, so the new ones are exactly those above its maximum. #}
{% macro new_events_only(seq_col='seq') -%}
    {%- if is_incremental() %}
    and {{ seq_col }} > (select coalesce(max(t.seq), 0) from {{ this }} as t)
    {%- endif %}
{%- endmacro %}

{# The cut of an incremental fold (delete+insert by record): all the events of the records that have
   events after the last one the fold holds (its `last_seq`). Refolding a record twice is harmless. #}
{% macro records_with_new_events(events_relation) -%}
    {%- if is_incremental() %}
    where
        record_id in (
            select n.record_id from {{ events_relation }} as n
            where n.seq > (select coalesce(max(t.last_seq), 0) from {{ this }} as t)
        )
    {%- endif %}
{%- endmacro %}
