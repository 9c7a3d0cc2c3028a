{{ config(tags=['check']) }}
-- depends_on: {{ ref('participants') }}
-- depends_on: {{ ref('sessions') }}
-- depends_on: {{ ref('engagement') }}
-- depends_on: {{ ref('retention') }}
-- depends_on: {{ ref('alliance_scores') }}
-- depends_on: {{ ref('alliance_trajectory') }}
-- depends_on: {{ ref('coded_units') }}
-- depends_on: {{ ref('code_matrix') }}
-- depends_on: {{ ref('coder_agreement') }}
-- depends_on: {{ ref('table1') }}
-- depends_on: {{ ref('consort_flow') }}
-- For the anonymity rule: every column of every published mart, flagged when its name
-- is a dictionary identifier or free-text field, a record_id, a note or a pseudonym.
{%- set marts = ['participants', 'sessions', 'engagement', 'retention', 'alliance_scores', 'alliance_trajectory',
                 'coded_units', 'code_matrix', 'coder_agreement', 'table1', 'consort_flow'] %}
with columns as (
    {%- set parts = [] %}
    {%- if execute %}
    {%- for m in marts %}
    {%- for col in adapter.get_columns_in_relation(ref(m)) %}
    {%- do parts.append("select '" ~ m ~ "' as mart, '" ~ col.name ~ "' as column_name") %}
    {%- endfor %}
    {%- endfor %}
    {%- endif %}
    {%- if parts %}
    {{ parts | join('\n    union all\n    ') }}
    {%- else %}
    select cast(null as varchar) as mart, cast(null as varchar) as column_name where false
    {%- endif %}
),

forbidden as (
    select lower(field_name) as name
    from {{ ref('stg_intake__dictionary') }}
    where is_identifier or field_type in ('notes', 'file')
    union
    select v.name
    from (values ('record_id'), ('pseudonym'), ('note'), ('notes'), ('speaker'), ('staff_notes')) as v (name)
)

select c.mart, c.column_name, lower(c.column_name) in (select f.name from forbidden as f) as is_identifying
from columns as c
