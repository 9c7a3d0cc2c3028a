-- (field, code, label) for every coded field of the latest intake dictionary.
-- yes/no fields carry REDCap's implicit codes 1 = Yes, 0 = No.
with fields as (
    select field_name, field_type, choices
    from {{ ref('stg_intake__dictionary') }}
),

listed as (
    select
        field_name,
        unnest(string_split(choices, '|')) as part,
        generate_subscripts(string_split(choices, '|'), 1) as level_order
    from fields
    where field_type in ('radio', 'dropdown', 'checkbox') and choices is not null
),

coded as (
    select
        field_name,
        trim(split_part(part, ',', 1)) as code,
        trim(substr(part, strpos(part, ',') + 1)) as label,
        level_order
    from listed
    where trim(part) <> ''
),

yes_no as (
    select f.field_name, v.code, v.label, v.level_order
    from fields as f
    cross join (values ('1', 'Yes', 1), ('0', 'No', 2)) as v (code, label, level_order)
    where f.field_type = 'yesno'
),

true_false as (
    select f.field_name, v.code, v.label, v.level_order
    from fields as f
    cross join (values ('1', 'True', 1), ('0', 'False', 2)) as v (code, label, level_order)
    where f.field_type = 'truefalse'
)

select * from coded
union all
select * from yes_no
union all
select * from true_false
