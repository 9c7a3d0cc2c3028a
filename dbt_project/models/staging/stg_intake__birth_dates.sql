-- The date of birth of each intake record, when the study profile derives age from it
-- (`derive: age: {from: dob}`): read from the identified store, cut as of the build, the
-- latest value exported by then. A view: the date itself is never stored in the build; only the
-- age derived from it is.
{%- set derive = var('profile').get('derive_age') %}
with source as (
    select * from {{ source('identified', 'identifier_values') }}
    where
        source = 'intake'
        {%- if derive %}
        and (field = {{ sql_text(derive['field']) }} or starts_with(field, {{ sql_text(derive['field'] ~ '#') }}))
        {%- else %}
        and false
        {%- endif %}
),

renamed as (
    select
        record_id,
        arg_max(try_cast(value as date), recorded_at) filter (where try_cast(value as date) is not null) as born_on
    from source
    {%- if var('as_of') is not none %}
    where recorded_at <= cast('{{ var("as_of") }}' as timestamptz)
    {%- endif %}
    group by record_id
)

select * from renamed
