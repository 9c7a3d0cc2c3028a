-- Text and speaker of each coded unit (identified store).
with source as (
    select * from {{ source('identified', 'transcript_units') }}
),

renamed as (
    select
        unit_id,
        any_value(speaker) as speaker,
        any_value(text) as unit_text
    from source
    group by unit_id
)

select * from renamed
