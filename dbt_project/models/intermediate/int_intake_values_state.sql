{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='record_id') }}
-- The fold of intake change events, kept between builds: for every record, the
-- current value of each field while it is present now (the last event by seq wins,
-- a null included), and one row with no field per record (removed ones too), so that
-- every record folded has a row. An incremental build refolds only the records with
-- events after the last one folded (their whole history) and replaces their rows;
-- `last_seq` is the last event of the record.
with events as (
    select * from {{ ref('int_intake_field_events') }}
    {{ records_with_new_events(ref('int_intake_field_events')) }}
),

lifecycle as (
    select
        record_id,
        arg_max(event_type, seq) filter (
            where event_type in ('intake_recorded', 'intake_record_removed')
        ) as last_lifecycle_event,
        max(seq) as last_seq
    from events
    group by record_id
)

select
    f.record_id,
    f.field,
    arg_max_null(f.value, f.seq) as value,
    l.last_seq
from events as f
inner join lifecycle as l on f.record_id = l.record_id
where l.last_lifecycle_event = 'intake_recorded' and f.field is not null
group by f.record_id, f.field, l.last_seq
union all
select
    record_id,
    null as field,
    null as value,
    last_seq
from lifecycle
