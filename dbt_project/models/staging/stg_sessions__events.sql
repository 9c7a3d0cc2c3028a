-- Session-log events, typed, cut as of the build.
with source as (
    select * from {{ source('event_store', 'events') }}
    where source = 'sessions'
),

renamed as (
    select
        seq,
        event_id,
        event_type,
        payload ->> 'record_id' as record_id,
        occurred_at,
        {{ local_date('occurred_at') }} as occurred_on,
        recorded_at,
        payload ->> 'service' as service,
        cast(payload ->> 'session_number' as integer) as session_number,
        payload ->> 'staff_id' as staff_id,
        payload ->> 'mode' as mode,
        cast(payload ->> 'duration_min' as integer) as duration_min,
        cast(payload ->> 'program_id' as integer) as program_id,
        payload ->> 'discharge_reason' as discharge_reason,
        payload ->> 'voids_event_id' as voids_event_id
    from source
    where {{ as_of_filter() }}
)

select * from renamed
