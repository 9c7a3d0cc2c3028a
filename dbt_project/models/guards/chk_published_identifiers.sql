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
-- For the anonymity rule: every text cell of every published mart that equals an
-- identifier value held for any participant, or a record_id. Not published.
{%- set marts = ['participants', 'sessions', 'engagement', 'retention', 'alliance_scores', 'alliance_trajectory',
                 'coded_units', 'code_matrix', 'coder_agreement', 'table1', 'consort_flow'] %}
with held as (
    select distinct lower(trim(value)) as value
    from {{ source('identified', 'identifier_values') }}
    where kind = 'identifier' and value is not null and length(trim(value)) >= 3
    union
    select distinct lower(record_id) from {{ ref('int_participants_projected') }}
    -- a surname that is also a dictionary label (White, Black) is not a leak in a labelled column
    except
    select lower(label) from {{ ref('int_choice_labels') }}
),

cells as (
    {%- set parts = [] %}
    {%- for m in marts %}
    {%- if execute %}
    {%- for col in adapter.get_columns_in_relation(ref(m)) if col.dtype | lower in ('varchar', 'text', 'string') %}
    {%- do parts.append("select '" ~ m ~ "' as mart, '" ~ col.name ~ "' as column_name, lower(trim(cast("
                        ~ adapter.quote(col.name) ~ " as varchar))) as cell from " ~ ref(m)) %}
    {%- endfor %}
    {%- endif %}
    {%- endfor %}
    {%- if parts %}
    {{ parts | join('\n    union all\n    ') }}
    {%- else %}
    select cast(null as varchar) as mart, cast(null as varchar) as column_name, cast(null as varchar) as cell
    where false
    {%- endif %}
)

select c.mart, c.column_name, count(h.value) as identifier_cells
from cells as c
left join held as h on c.cell = h.value
group by c.mart, c.column_name
