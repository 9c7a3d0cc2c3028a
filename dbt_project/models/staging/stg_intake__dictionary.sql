-- The latest intake data dictionary (dictionaries are not cut: the latest gives the labels).
with source as (
    select * from {{ source('event_store', 'dictionary_fields') }}
    where source = 'intake'
),

latest as (
    select batch_id from {{ source('event_store', 'batches') }}
    where source = 'intake' and batch_id in (select s.batch_id from source as s)
    order by ingested_at desc, batch_id desc
    limit 1
),

renamed as (
    select
        ordinal,
        field_name,
        form_name,
        field_type,
        field_label,
        choices,
        validation,
        identifier as is_identifier
    from source
    where batch_id = (select l.batch_id from latest as l)
)

select * from renamed
