-- Intake change events (REDCap snapshots), cut as of the build.
with source as (
    select * from {{ source('event_store', 'events') }}
    where source = 'intake'
),

renamed as (
    select
        seq,
        event_id,
        event_type,
        payload ->> 'record_id' as record_id,
        payload,
        occurred_at as exported_at,
        recorded_at
    from source
    where {{ as_of_filter() }}
)

select * from renamed
