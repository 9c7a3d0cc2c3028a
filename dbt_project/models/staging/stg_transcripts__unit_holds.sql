-- Units held back by the identifier screening (consent rule 4), one row per unit and reason.
with source as (
    select * from {{ source('identified', 'unit_holds') }}
),

renamed as (
    select unit_id, reason_code
    from source
)

select * from renamed
