-- (concept, code, label, study_label, level_order) for every coded concept of the study profile: the
-- label is the profile's mapping of the code (for sex, ethnicity and race, the contract's label,
-- resolved against the dictionary before the build), else the dictionary's own label; study_label is
-- always the dictionary's own. Codes the profile maps that the dictionary lists no choices for (a
-- text field) come from the profile alone.
{%- set p = var('profile') %}
{%- set codes = p.get('codes') or {} %}
with fields as (
    select f.concept, f.field_name
    from (
        values
        {%- for concept, field_name in p['fields'].items() %}
        ({{ sql_text(concept) }}, {{ sql_text(field_name) }}),
        {%- endfor %}
        (cast(null as varchar), cast(null as varchar))
    ) as f (concept, field_name)
    where f.concept is not null
),

mapped as (
    select m.concept, m.code, m.label, m.map_order
    from (
        values
        {%- for concept, mapping in codes.items() %}
        {%- for code, label in mapping.items() %}
        ({{ sql_text(concept) }}, {{ sql_text(code) }}, {{ sql_text(label) }}, {{ loop.index }}),
        {%- endfor %}
        {%- endfor %}
        (cast(null as varchar), cast(null as varchar), cast(null as varchar), 0)
    ) as m (concept, code, label, map_order)
    where m.concept is not null
),

listed as (
    select f.concept, l.code, l.label as study_label, l.level_order
    from fields as f
    inner join {{ ref('int_choice_labels') }} as l on f.field_name = l.field_name
)

select
    coalesce(d.concept, m.concept) as concept,
    coalesce(d.code, m.code) as code,
    coalesce(m.label, d.study_label) as label,
    d.study_label,
    coalesce(d.level_order, 1000 + m.map_order) as level_order
from listed as d
full outer join mapped as m on d.concept = m.concept and d.code = m.code
