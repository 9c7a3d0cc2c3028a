-- The latest pseudonym list delivered (identified store).
with source as (
    select * from {{ source('identified', 'pseudonyms') }}
),

latest as (
    select batch_id from source order by recorded_at desc, batch_id desc limit 1
),

renamed as (
    select record_id, pseudonym
    from source
    where batch_id = (select l.batch_id from latest as l)
)

select * from renamed
