-- Working-alliance survey change events (REDCap repeating-instrument snapshots), cut as of the build.
with source as (
    select * from {{ source('event_store', 'events') }}
    where source = 'alliance'
),

renamed as (
    select
        seq,
        event_id,
        event_type,
        payload ->> 'record_id' as record_id,
        payload ->> 'instrument' as instrument,
        coalesce(payload ->> 'instance', '1') as instance,
        payload,
        occurred_at as exported_at,
        recorded_at
    from source
    where {{ as_of_filter() }}
)

select * from renamed
